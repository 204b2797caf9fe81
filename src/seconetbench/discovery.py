"""Import every public module of a package, so that adding a technology, a workload, a parser
or a figure is one new file: the modules register themselves when imported. Called by
:class:`seconetbench.registry.Registry` on its first lookup, not when the package is imported."""

from __future__ import annotations

import importlib
import pkgutil


def import_submodules(package_name: str) -> list[str]:
    package = importlib.import_module(package_name)
    names = []
    for module in pkgutil.iter_modules(package.__path__):
        if not module.name.startswith("_"):
            importlib.import_module(f"{package_name}.{module.name}")
            names.append(module.name)
    return names
