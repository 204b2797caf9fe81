"""Tunnels and VPNs between hosts: one module each, registered on import."""

from seconetbench.discovery import import_submodules

import_submodules(__name__)
