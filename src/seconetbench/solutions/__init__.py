"""Single-host network solutions: one module each, registered on import (see technology.py)."""

from seconetbench.discovery import import_submodules

import_submodules(__name__)
