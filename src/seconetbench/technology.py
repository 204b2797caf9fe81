"""The registry of technologies: network solutions, packet filters and tunnels.

A technology is a small class registered by kind and name. It states what it needs from the
machine (:meth:`Technology.requires`), builds itself on a deployment (:meth:`apply`) and, where
deleting the namespaces is not enough, removes itself (:meth:`remove`). Adding one touches its own
module (its package's registry finds it, see registry.py) and a test.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from seconetbench.errors import InvalidValueError
from seconetbench.registry import Registry

if TYPE_CHECKING:
    from seconetbench.backends.base import Deployment
    from seconetbench.spec import SetupSpec

KINDS = ("solution", "filter", "tunnel")


@lru_cache(maxsize=1)
def kernel_config() -> dict[str, str]:
    """Options of the running kernel from /boot/config-$(uname -r) or /proc/config.gz ({} when
    neither is readable). A hint only: a module (=m) still has to load, see Requirement.missing."""
    from seconetbench import probes

    for path in probes.config_files():
        options = probes.read_config(path)
        if options:
            return options
    return {}


# The module that provides a kernel option a requirement names, where it can be one (=m).
OPTION_MODULES = {"CONFIG_VETH": "veth", "CONFIG_TUN": "tun", "CONFIG_BRIDGE": "bridge",
                  "CONFIG_MACVLAN": "macvlan", "CONFIG_BRIDGE_NETFILTER": "br_netfilter",
                  "CONFIG_NET_CLS_BPF": "cls_bpf", "CONFIG_NET_SCH_INGRESS": "sch_ingress",
                  "CONFIG_NF_TABLES_INET": "nf_tables"}


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
                return self._module_missing()
            return f"the running kernel lacks {self.name}{' (' + self.why + ')' if self.why else ''}"
        raise InvalidValueError(f"unknown requirement kind {self.kind}; use 'binary' or 'kernel'")

    @lru_cache(maxsize=None)  # noqa: B019 - a few frozen requirements; planning asks per setup
    def _module_missing(self) -> str | None:
        """A kernel option built as a module is satisfied when the module is loaded or loads now
        (stock kernels build veth, tun, bridge and macvlan as modules): probed, not read. Once
        per requirement and process: planning asks for every setup, and modprobe is a process."""
        from seconetbench import probes

        module = OPTION_MODULES.get(self.name)
        if module is None:
            return f"kernel option {self.name} is a module; load it (modprobe) before the sweep"
        if Path(f"/sys/module/{module}").exists():
            return None
        cannot = probes.modprobe_possible()
        if cannot:
            return f"kernel option {self.name} is a module ({module}) that cannot be loaded here: {cannot}"
        loaded, said = probes.run_probe_command(["modprobe", module])
        return None if loaded else f"kernel option {self.name} is a module; `modprobe {module}` said: {said}"


class Technology:
    kind: ClassVar[str]
    name: ClassVar[str]
    description: ClassVar[str] = ""
    # Backends it can be built on: the framework wires netns and docker containers alike, and
    # namespaces on ssh hosts (each host's part in its agent, backends/ssh.py); on
    # kubernetes the cluster's CNI does it (solutions/cni.py and its kin).
    backends: ClassVar[tuple[str, ...]] = ("netns", "docker", "ssh", "vm")
    # The implementations it comes in, as sweep.*.implementations names them ("kernel",
    # "userspace", "tc-bpf"); `auto` takes the kernel's when the probe named kernel_probe
    # (seconetbench.probes) passes, else the first other one. The setup's choice (SetupSpec
    # .implementation) lands in requested_implementation (preflight.setup_technologies).
    implementations: ClassVar[tuple[str, ...]] = ("kernel",)
    kernel_probe: ClassVar[str | None] = None
    requested_implementation: str = "auto"

    def resolved_implementation(self) -> str:
        """The implementation that runs here: the pinned one, or what `auto` resolves to."""
        from seconetbench import probes

        return probes.choose(self.implementations, self.requested_implementation, self.kernel_probe)

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

    def flush_flow_caches(self, deployment: Deployment) -> list[dict]:
        """Empty the per-flow caches this technology keeps beyond the kernel's conntrack (which
        the first_packet workload flushes in every namespace itself), so that the next packet of
        a flow pays its flow setup again. One record per cache and host: {"cache", "where",
        "deleted", "remaining"} (entries before and right after). Default: no such cache, as in
        a Linux bridge, routing, netfilter rule sets and the eBPF programs, which decide every
        packet by its own lookups. Runs where the hosts' datapaths are local (netns, docker)."""
        return []


# One registry per kind (seconetbench.registry), each discovering its package on first lookup.
REGISTRIES: dict[str, Registry[type[Technology]]] = {
    kind: Registry(kind, package=f"seconetbench.{kind}s", name_of=lambda cls: cls.name) for kind in KINDS}


def register(cls: type[Technology]) -> type[Technology]:
    """Class decorator: register *cls* under its kind and name."""
    if cls.kind not in KINDS:
        raise InvalidValueError(f"{cls.__name__}.kind must be one of {KINDS}")
    return REGISTRIES[cls.kind].register(cls)


def get(kind: str, name: str, **options) -> Technology:
    """An instance of the technology; *options* go to its constructor (e.g. a tunnel's suite)."""
    return REGISTRIES[kind].get(name)(**options)


def names(kind: str, backend: str | None = None) -> list[str]:
    """Names of the technologies of *kind* (that run on *backend*, when given)."""
    registry = REGISTRIES[kind]
    return [name for name in registry.names() if backend is None or backend in registry[name].backends]
