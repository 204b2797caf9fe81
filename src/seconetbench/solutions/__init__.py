"""Single-host network solutions: one module each, registered on import; technology.REGISTRIES
imports the modules on the first lookup (see registry.py)."""
