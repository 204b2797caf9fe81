"""One way to register things by name: technologies, workloads, parsers, figures and backends.

A :class:`Registry` maps a name to an item (a class, a function, a figure spec). Items come in
three ways, all keyed by name:

* ``@REGISTRY.register("name")`` (or ``@REGISTRY.register`` when the registry knows how to name
  an item, e.g. a workload class by its ``kind``) in the module that defines the item;
* discovery: a registry given a *package* imports every public module of it on its first lookup,
  so adding an item is one new module, and importing the package itself stays cheap;
* ``REGISTRY.lazy("name", "module:attribute")`` for items whose module is expensive to import
  (the docker and kubernetes backends import their clients): the module is imported on first use.

A lookup of an unknown name raises :class:`~seconetbench.errors.UnknownNameError` listing the
known names. A registry is a read-only mapping (``in``, iteration in name order, ``len``,
``items()``), so code that read the former dicts keeps working.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Generic, TypeVar

from seconetbench.discovery import import_submodules
from seconetbench.errors import InvalidValueError, UnknownNameError

T = TypeVar("T")
_NO_DEFAULT: Any = object()


class Registry(Mapping[str, T], Generic[T]):
    """Items of one sort (*what*, used in error messages) by name."""

    def __init__(self, what: str, package: str | None = None,
                 name_of: Callable[[T], str] | None = None):
        self.what = what
        self.package = package  # imported module by module on the first lookup
        self.name_of = name_of  # names an item registered without an explicit name
        self._items: dict[str, T] = {}
        self._lazy: dict[str, str] = {}  # name -> "module:attribute", imported on first use
        self._discovered = package is None
        self._discovering = False
        # Snakemake runs targets in threads. Two locks: a module that registers while another
        # thread discovers must not wait for that discovery (it may wait for this module's import).
        self._lock = threading.Lock()  # guards _items and _lazy, held briefly
        self._discovery_lock = threading.RLock()

    # ------------------------------------------------------------------ registration
    def add(self, name: str, item: T) -> T:
        """Register *item* under *name*; a name registered twice is a programming error."""
        with self._lock:
            if name in self._items or name in self._lazy:
                raise InvalidValueError(f"{self.what} '{name}' is registered twice")
            self._items[name] = item
        return item

    def register(self, item_or_name: T | str | None = None):
        """Decorator: ``@registry.register("name")``, or bare ``@registry.register`` when the
        registry has *name_of*. Called with an item, registers it and returns it."""
        if isinstance(item_or_name, str):
            name = item_or_name
            return lambda item: self.add(name, item)
        if item_or_name is None:
            return self.register
        if self.name_of is None:
            raise InvalidValueError(f"the {self.what} registry needs a name: use register('name')")
        return self.add(self.name_of(item_or_name), item_or_name)

    def lazy(self, name: str, target: str) -> None:
        """Register the item *target* ("package.module:attribute") without importing it yet."""
        with self._lock:
            if name in self._items or name in self._lazy:
                raise InvalidValueError(f"{self.what} '{name}' is registered twice")
            self._lazy[name] = target

    # ------------------------------------------------------------------ lookup
    def get(self, name: str, default: Any = _NO_DEFAULT) -> T:
        """The item *name*; an unknown name raises UnknownNameError listing the known ones
        (or returns *default* when one is given)."""
        self._discover()
        with self._lock:
            if name in self._items:
                return self._items[name]
            target = self._lazy.get(name)
        if target is None:
            if default is not _NO_DEFAULT:
                return default
            raise UnknownNameError(self.what, name, self.names())
        module, _, attribute = target.partition(":")
        item = getattr(importlib.import_module(module), attribute)
        with self._lock:
            self._lazy.pop(name, None)
            self._items.setdefault(name, item)
            return self._items[name]

    def names(self) -> list[str]:
        """Every registered name, sorted (lazy items are listed without importing them)."""
        self._discover()
        with self._lock:
            return sorted({*self._items, *self._lazy})

    def __getitem__(self, name: str) -> T:
        return self.get(name)

    def __contains__(self, name: object) -> bool:
        self._discover()
        with self._lock:
            return name in self._items or name in self._lazy

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    def __repr__(self) -> str:
        return f"Registry({self.what!r}, {self.names()})"

    def _discover(self) -> None:
        if self._discovered:
            return
        with self._discovery_lock:
            if self._discovered or self._discovering:
                return  # done meanwhile, or a module being discovered looks up this registry
            self._discovering = True
            try:
                import_submodules(self.package)
            finally:
                self._discovering = False
            self._discovered = True
