"""What a deployed setup looks like, whatever the backend."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from seconetbench.fsutil import write_text_atomic
from seconetbench.spec import SetupSpec
from seconetbench.testbed.naming import Names


@dataclass
class Host:
    name: str  # "h1"
    index: int
    netns: str
    underlay_ip: str | None = None
    underlay_dev: str | None = None


@dataclass
class Container:
    name: str  # "c01"
    index: int  # 1-based across all hosts
    host: str  # host name
    netns: str
    ifname: str
    ip: str
    # How to run a generator inside the container, when that is more than entering its network
    # namespace (docker: nsenter into the container's namespaces; kubernetes: exec in the pod).
    # None = `ip netns exec <netns>` with this machine's binaries (the netns backend).
    exec_prefix: list[str] | None = None


@dataclass
class Deployment:
    setup: SetupSpec
    prefix: str
    hosts: list[Host]
    containers: list[Container]
    pairs: list[tuple[str, str]]  # (sender, sink) container names, measured concurrently
    facts: dict[str, Any] = field(default_factory=dict)  # timings, technology facts, verification

    @property
    def names(self) -> Names:
        return Names(self.prefix)

    def container(self, name: str) -> Container:
        for container in self.containers:
            if container.name == name:
                return container
        raise KeyError(f"no container '{name}' in setup {self.setup.id}")

    def host(self, name: str) -> Host:
        for host in self.hosts:
            if host.name == name:
                return host
        raise KeyError(f"no host '{name}' in setup {self.setup.id}")

    def host_of(self, container: Container) -> Host:
        return self.host(container.host)

    def containers_on(self, host: Host) -> list[Container]:
        return [c for c in self.containers if c.host == host.name]

    def allowed(self, a: str, b: str) -> bool:
        """The whitelist: a pair may talk in both directions."""
        return (a, b) in self.pairs or (b, a) in self.pairs

    @staticmethod
    def pair_name(sender: str, sink: str) -> str:
        return f"{sender}-{sink}"

    def describe(self) -> dict[str, Any]:
        """The JSON printed by `seconetbench deploy` (scripts rely on these keys: extend only)."""
        return {
            "setup": self.setup.id,
            "spec": self.setup.to_dict(),
            "prefix": self.prefix,
            "containers": [{"name": c.name, "netns": c.netns, "ip": c.ip, "host": c.host,
                            "ifname": c.ifname, "exec_prefix": c.exec_prefix} for c in self.containers],
            "allowed_pairs": [[a, b] for a, b in self.pairs],
            "hosts": [{"name": h.name, "netns": h.netns, "underlay_ip": h.underlay_ip,
                       "underlay_dev": h.underlay_dev} for h in self.hosts],
            "facts": self.facts,
        }

    def to_state(self) -> dict[str, Any]:
        return {
            "setup": self.setup.to_dict(),
            "prefix": self.prefix,
            "hosts": [asdict(h) for h in self.hosts],
            "containers": [asdict(c) for c in self.containers],
            "pairs": [list(p) for p in self.pairs],
            "facts": self.facts,
        }

    def save(self, path: Path) -> None:
        """Write the state file from which a later target reuses this deployment."""
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, json.dumps(self.to_state(), indent=1))

    @classmethod
    def load(cls, path: Path) -> Deployment | None:
        """The deployment :meth:`save` wrote to *path*; None when there is none or it is unreadable."""
        try:
            return cls.from_state(json.loads(path.read_text()))
        except (FileNotFoundError, json.JSONDecodeError, KeyError, TypeError, ValueError):
            return None

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Deployment:
        return cls(
            setup=SetupSpec.from_dict(state["setup"]),
            prefix=state["prefix"],
            hosts=[Host(**h) for h in state["hosts"]],
            containers=[Container(**c) for c in state["containers"]],
            pairs=[tuple(p) for p in state["pairs"]],
            facts=state.get("facts", {}),
        )
