"""The registry of technologies: network solutions, packet filters and tunnels.

A technology is a small class registered by kind and name. It states what it needs from the
machine (:meth:`Technology.requires`), builds itself on a deployment (:meth:`apply`) and, where
deleting the namespaces is not enough, removes itself (:meth:`remove`). Adding one touches its own
module, the import in its package's ``__init__`` and a test.
"""

from __future__ import annotations

import gzip
import shutil
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from seconetbench.backends.base import Deployment
    from seconetbench.spec import SetupSpec

KINDS = ("solution", "filter", "tunnel")


@lru_cache(maxsize=1)
def kernel_config() -> dict[str, str]:
    """Options of the running kernel from /proc/config.gz ({} when the kernel does not expose it)."""
    path = Path("/proc/config.gz")
    if not path.exists():
        return {}
    options = {}
    for line in gzip.decompress(path.read_bytes()).decode().splitlines():
        if line.startswith("CONFIG_") and "=" in line:
            key, value = line.split("=", 1)
            options[key] = value
    return options


@dataclass(frozen=True)
class Requirement:
    """Something a technology needs: a binary on PATH or a kernel option built in (=y)."""

    kind: str  # "binary" or "kernel"
    name: str  # e.g. "iptables-restore" or "CONFIG_BRIDGE"
    why: str = ""

    def missing(self) -> str | None:
        """None when satisfied, else a sentence saying what is missing and how to get it."""
        if self.kind == "binary":
            if shutil.which(self.name):
                return None
            return f"binary '{self.name}' is not on PATH{' (' + self.why + ')' if self.why else ''}"
        if self.kind == "kernel":
            config = kernel_config()
            if not config:
                return None  # cannot tell; the deploy itself will fail loudly if it is absent
            value = config.get(self.name)
            if value == "y":
                return None
            if value == "m":
                return f"kernel option {self.name} is a module; load it (modprobe) before the sweep"
            return f"the running kernel lacks {self.name}{' (' + self.why + ')' if self.why else ''}"
        raise ValueError(f"unknown requirement kind {self.kind}")


class Technology:
    kind: ClassVar[str]
    name: ClassVar[str]
    description: ClassVar[str] = ""
    # Backends it can be built on: the framework wires netns and docker containers alike; on
    # kubernetes the cluster's CNI does it (solutions/cni.py and its kin).
    backends: ClassVar[tuple[str, ...]] = ("netns", "docker")

    def requires(self, setup: SetupSpec) -> list[Requirement]:
        return []

    def incompatibility(self, setup: SetupSpec) -> str | None:
        """Why this technology can never work in *setup* (None when it can)."""
        return None

    def apply(self, deployment: Deployment) -> None:
        raise NotImplementedError

    def remove(self, deployment: Deployment) -> None:
        """Undo what deleting the deployment's namespaces does not undo (default: nothing)."""

    def describe(self, deployment: Deployment) -> dict:
        """Facts for meta.json (versions, implementation actually used)."""
        return {}


REGISTRY: dict[tuple[str, str], type[Technology]] = {}


def register(cls: type[Technology]) -> type[Technology]:
    if cls.kind not in KINDS:
        raise ValueError(f"{cls.__name__}.kind must be one of {KINDS}")
    key = (cls.kind, cls.name)
    if key in REGISTRY:
        raise ValueError(f"{cls.kind} '{cls.name}' is registered twice")
    REGISTRY[key] = cls
    return cls


def get(kind: str, name: str, **options) -> Technology:
    """An instance of the technology; *options* go to its constructor (e.g. a tunnel's suite)."""
    _load_all()
    try:
        return REGISTRY[(kind, name)](**options)
    except KeyError:
        known = sorted(n for k, n in REGISTRY if k == kind)
        raise KeyError(f"no {kind} '{name}'; known: {known}") from None


def names(kind: str, backend: str | None = None) -> list[str]:
    """Names of the technologies of *kind* (that run on *backend*, when given)."""
    _load_all()
    return sorted(n for (k, n), cls in REGISTRY.items() if k == kind and (backend is None or backend in cls.backends))


def _load_all() -> None:
    # Importing the packages registers their technologies.
    import seconetbench.filters  # noqa: F401
    import seconetbench.solutions  # noqa: F401
    import seconetbench.tunnels  # noqa: F401
