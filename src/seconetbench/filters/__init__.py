"""Packet filters enforcing default deny plus the whitelist: one module each, registered on import."""

from seconetbench.discovery import import_submodules

import_submodules(__name__)
