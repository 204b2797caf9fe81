"""Frozen descriptions of what is measured: setups, workloads and targets, and their ids.

Ids are slugs made of ``[a-z0-9_-]`` only (no ``/`` or ``.``) so that they are safe as path
components and Snakemake wildcards:

- setup ``single-bridge-iptables-c32``, ``multi-wireguard-none-c8``; a non-default backend or
  rule-set size is appended (``-docker``, ``-r1000``), and so is a pinned implementation
  (``multi-wireguard-none-c8-ikernel``, ``-iuserspace``, ``-itc_bpf``; ``auto`` adds nothing);
- workload ``latency``, ``throughput_653``, ...;
- target ``{setup}/{workload}/rep{rep}``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from seconetbench.errors import InvalidValueError

SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
SCENARIOS = ("single", "multi")
DEFAULT_BACKEND = "netns"
SETUP_ID = re.compile(
    r"^(?P<scenario>single|multi)-(?P<middle>[a-z0-9_]+)-(?P<filter>[a-z0-9_]+)-c(?P<containers>\d+)"
    r"(?:-h(?P<hosts>\d+))?(?:-r(?P<rules>\d+))?(?:-x(?P<cipher>[a-z0-9_]+))?"
    r"(?:-i(?P<implementation>kernel|userspace|tc_bpf))?(?:-(?P<backend>[a-z][a-z0-9_]*))?$"
)
# What SetupSpec.implementation may say: auto (resolved by probes, seconetbench.probes) or a
# pinned implementation (which ones a technology offers: Technology.implementations).
IMPLEMENTATIONS = ("auto", "kernel", "userspace", "tc-bpf")


def check_slug(kind: str, value: str) -> str:
    if not isinstance(value, str) or not SLUG.match(value):
        raise InvalidValueError(
            f"{kind} '{value}' is not a slug: use lower-case letters, digits, '_' and '-' only"
        )
    return value


@dataclass(frozen=True)
class SetupSpec:
    """One point of the design space: how containers are connected, filtered and joined."""

    scenario: str  # "single" (one host) or "multi" (hosts joined by a tunnel or VPN)
    solution: str  # network solution on each host: bridge, routing, macvlan, ovs, ebpf
    filter: str  # packet filter: none, iptables, nftables, ebpf, ovs
    containers: int  # total containers; sender/sink pairs = containers // 2
    tunnel: str = "none"  # between hosts (multi only): routing, vxlan, ipip, gre, wireguard, ...
    hosts: int = 1
    backend: str = DEFAULT_BACKEND
    extra_rules: int = 0  # non-matching rules installed before the whitelist
    cipher: str | None = None  # the tunnel's cipher suite (multi-host); None = the tunnel's default
    # of the technology that names the setup (the tunnel, or the single-host solution): auto,
    # or a pinned one (sweep.*.implementations)
    implementation: str = "auto"

    def __post_init__(self) -> None:
        if self.scenario not in SCENARIOS:
            raise InvalidValueError(f"scenario '{self.scenario}' is not one of {SCENARIOS}")
        for kind in ("solution", "filter", "tunnel", "backend"):
            check_slug(kind, getattr(self, kind))
        if self.containers < 2 or self.containers % 2:
            raise InvalidValueError(f"containers={self.containers}: need an even number >= 2 (sender/sink pairs)")
        if self.scenario == "single" and (self.hosts != 1 or self.tunnel != "none"):
            raise InvalidValueError("a single-host setup has hosts=1 and tunnel 'none'")
        if self.scenario == "multi" and (self.hosts < 2 or self.tunnel == "none"):
            raise InvalidValueError("a multi-host setup needs hosts >= 2 and a tunnel")
        if self.cipher and self.scenario != "multi":
            raise InvalidValueError("a cipher suite belongs to a tunnel: only multi-host setups have one")
        if self.implementation not in IMPLEMENTATIONS:
            raise InvalidValueError(f"implementation '{self.implementation}' is not one of {IMPLEMENTATIONS}")

    @property
    def id(self) -> str:
        middle = self.solution if self.scenario == "single" else self.tunnel
        parts = [self.scenario, middle, self.filter, f"c{self.containers}"]
        if self.scenario == "multi" and self.hosts != 2:
            parts.append(f"h{self.hosts}")
        if self.extra_rules:
            parts.append(f"r{self.extra_rules}")
        if self.cipher:
            parts.append("x" + self.cipher.replace("-", "_"))  # suite names use '-', ids separate with it
        if self.implementation != "auto":
            parts.append("i" + self.implementation.replace("-", "_"))
        if self.backend != DEFAULT_BACKEND:
            parts.append(self.backend)
        return "-".join(parts)

    @property
    def pairs(self) -> int:
        return self.containers // 2

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "scenario": self.scenario,
            "solution": self.solution,
            "filter": self.filter,
            "tunnel": self.tunnel,
            "containers": self.containers,
            "hosts": self.hosts,
            "backend": self.backend,
            "extra_rules": self.extra_rules,
            "cipher": self.cipher,
            # null for auto, as in the setups recorded before the key existed (cells.params_of
            # counts null as absent); what auto resolved to is meta.json deployment.implementation
            "implementation": None if self.implementation == "auto" else self.implementation,
        }

    @classmethod
    def parse(cls, setup_id: str, multi_solution: str | None = None) -> SetupSpec:
        """The inverse of :attr:`id`: 'single-bridge-iptables-c8' -> SetupSpec(...).

        A multi-host id does not name how containers attach to their host: *multi_solution*
        (the config's ``sweep.multi.solution``) says it. To get exactly the setup a sweep
        measures, look the id up in the sweep (:func:`seconetbench.sweep.resolve_setup`)."""
        match = SETUP_ID.match(setup_id or "")
        if not match:
            raise InvalidValueError(
                f"'{setup_id}' is not a setup id; expected single-<solution>-<filter>-c<N> or "
                "multi-<tunnel>-<filter>-c<N>, optionally followed by -r<rules>, -x<cipher>, "
                "-i<implementation> and -<backend>, "
                "e.g. single-bridge-iptables-c8")
        parts = match.groupdict()
        scenario = parts["scenario"]
        fields: dict[str, Any] = {"scenario": scenario, "filter": parts["filter"],
                                  "containers": int(parts["containers"])}
        if scenario == "single":
            fields["solution"] = parts["middle"]
        else:
            if multi_solution is None:
                raise InvalidValueError(f"'{setup_id}' is a multi-host setup, and its id does not name the solution on "
                                        "each host: pass the config's sweep.multi.solution")
            fields.update(solution=multi_solution, tunnel=parts["middle"], hosts=int(parts["hosts"] or 2))
        if parts["rules"]:
            fields["extra_rules"] = int(parts["rules"])
        if parts["cipher"]:
            fields["cipher"] = parts["cipher"].replace("_", "-")
        if parts["implementation"]:
            fields["implementation"] = parts["implementation"].replace("_", "-")
        if parts["backend"]:
            fields["backend"] = parts["backend"]
        spec = cls(**fields)
        if spec.id != setup_id:
            raise InvalidValueError(f"'{setup_id}' is not in canonical form; did you mean '{spec.id}'?")
        return spec

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SetupSpec:
        fields = {k: data[k] for k in ("scenario", "solution", "filter", "containers") }
        for k in ("tunnel", "hosts", "backend", "extra_rules", "cipher"):
            if k in data:
                fields[k] = data[k]
        return cls(**fields, implementation=data.get("implementation") or "auto")


@dataclass(frozen=True)
class WorkloadSpec:
    """A traffic pattern run between every sender/sink pair of a setup."""

    name: str  # id used in paths, e.g. "throughput_653"
    kind: str  # latency, throughput, ... (selects the implementation in seconetbench.workloads)
    params: dict[str, Any] = field(default_factory=dict, hash=False, compare=True)

    def __post_init__(self) -> None:
        check_slug("workload", self.name)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, **self.params}


@dataclass(frozen=True)
class TargetId:
    setup: str
    workload: str
    rep: int

    @property
    def path(self) -> str:
        return f"{self.setup}/{self.workload}/rep{self.rep}"

    @classmethod
    def parse(cls, path: str) -> TargetId:
        """The target of a :attr:`path` (``setup/workload/repN``)."""
        setup, workload, rep = path.split("/")
        return cls(setup, workload, int(rep.removeprefix("rep")))
