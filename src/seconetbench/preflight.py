"""Which technologies and tools this machine supports, and why not."""

from __future__ import annotations

import itertools
import platform
import shutil
from typing import Any

from seconetbench import probes, technology
from seconetbench.spec import SetupSpec

# Tools the workloads run, with what each is for.
TOOLS = {
    "ip": "iproute2: namespaces and exec into them",
    "ping": "latency workload",
    "iperf3": "throughput workload (default generator)",
    "uperf": "throughput workload (used instead of iperf3 when installed)",
    "ITGSend": "D-ITG workloads",
    "tcpdump": "captures for the security checks",
}


def setup_technologies(setup: SetupSpec) -> list[technology.Technology]:
    """The technologies of *setup* in the order they are applied (removed in reverse): the
    solution attaches containers to their host, the tunnel joins hosts, the filter goes on top."""
    techs = [technology.get("solution", setup.solution)]
    if setup.scenario == "multi":
        techs.append(technology.get("tunnel", setup.tunnel, **({"suite": setup.cipher} if setup.cipher else {})))
    techs.append(technology.get("filter", setup.filter))
    techs[_named(setup)].requested_implementation = setup.implementation
    return techs


def _named(setup: SetupSpec) -> int:
    # the technology that names the setup (the middle of its id): the tunnel, or the solution
    return 1 if setup.scenario == "multi" else 0


def implementation_technology(setup: SetupSpec) -> technology.Technology:
    """The technology whose implementation the setup's `implementation` names: the tunnel of a
    multi-host setup, the solution of a single-host one (the middle of the setup id)."""
    return setup_technologies(setup)[_named(setup)]


def resolved_implementation(setup: SetupSpec) -> str:
    """What runs *setup*'s named technology here: kernel, userspace or tc-bpf (probes decide `auto`)."""
    return implementation_technology(setup).resolved_implementation()


def implementation_facts(setup: SetupSpec) -> dict[str, Any]:
    """meta.json's record of the implementation: which technology, what the config asked, what
    ran, and the probe's verdict and evidence (when a probe decides)."""
    tech = implementation_technology(setup)
    facts: dict[str, Any] = {"technology": tech.name, "kind": tech.kind, "offered": list(tech.implementations),
                             "requested": setup.implementation, "resolved": tech.resolved_implementation()}
    if tech.kernel_probe:
        facts["probe"] = probes.results()[tech.kernel_probe].to_dict()
    return facts


def pinned_unavailable(setup: SetupSpec) -> str | None:
    """Why the implementation *setup* pins cannot run here (None for auto, or when it can)."""
    if setup.implementation == "auto":
        return None
    tech = implementation_technology(setup)
    return probes.unavailable(tech.name, setup.implementation, tech.kernel_probe, tech.implementations)


def incompatibility(setup: SetupSpec) -> str | None:
    """Why a combination can never work, whatever the machine (None when it can)."""
    try:
        techs = setup_technologies(setup)
    except KeyError as exc:
        return str(exc.args[0])
    for tech in techs:
        if setup.backend not in tech.backends:
            names = ", ".join(tech.backends[:-1]) + " and " * (len(tech.backends) > 1) + tech.backends[-1]
            return (f"{tech.kind} '{tech.name}' runs on the {names} backend"
                    f"{'s' if len(tech.backends) > 1 else ''}, not on '{setup.backend}' (testbed.backend)")
        reason = tech.incompatibility(setup)
        if reason:
            return reason
    return None


def unsupported_reason(setup: SetupSpec) -> str | None:
    """What this machine lacks for *setup* (None when it can run it)."""
    missing = []
    for tech in setup_technologies(setup):
        for requirement in tech.requires(setup):
            problem = requirement.missing()
            if problem:
                missing.append(f"{tech.kind} {tech.name}: {problem}")
    return "; ".join(missing) or None


def implementations(found: dict[str, probes.ProbeResult]) -> list[dict[str, Any]]:
    """Each solution and tunnel that a probe decides or that offers a choice: what it offers,
    what `auto` resolves to here, and the probe's verdict and evidence."""
    rows = []
    for kind in ("solution", "tunnel"):
        for name in technology.names(kind, backend="netns"):
            tech = technology.get(kind, name)
            if tech.kernel_probe is None and len(tech.implementations) < 2:
                continue
            result = found[tech.kernel_probe] if tech.kernel_probe else None
            rows.append({
                "kind": kind, "technology": name, "offered": list(tech.implementations),
                "resolved": probes.choose(tech.implementations, "auto", tech.kernel_probe, found),
                "kernel_available": result.kernel_available if result else None,
                "probe": result.explain() if result else None,
                "evidence": result.to_dict()["evidence"] if result else [],
            })
    return rows


def pinned(config: dict[str, Any]) -> list[dict[str, Any]]:
    """The implementations *config* pins (sweep.*.implementations) and whether this machine has them."""
    from seconetbench.sweep import candidate_setups

    rows = {}
    for setup in candidate_setups(config):
        if setup.implementation == "auto":
            continue
        name = implementation_technology(setup).name
        key = f"sweep.{setup.scenario}.implementations.{name}"
        rows[(key, setup.implementation)] = {"key": key, "technology": name, "implementation": setup.implementation,
                                             "refused": pinned_unavailable(setup)}
    return list(rows.values())


def report(config: dict[str, Any] | None = None, prefix: str | None = None) -> dict[str, Any]:
    """Everything preflight knows, as JSON-ready data. The probes run afresh (in the scratch
    namespace <prefix>-probe); with *config*, its pinned implementations are checked too."""
    found = probes.results(prefix, fresh=True)
    solutions = technology.names("solution", backend="netns")
    filters = technology.names("filter", backend="netns")
    combos = []
    for solution, filter_name in itertools.product(solutions, filters):
        setup = SetupSpec("single", solution, filter_name, 2)
        reason = incompatibility(setup) or unsupported_reason(setup)
        combos.append({"scenario": "single", "solution": solution, "filter": filter_name,
                       "supported": reason is None, "reason": reason})
    tunnels = []
    for tunnel in technology.names("tunnel", backend="netns"):
        setup = SetupSpec("multi", "bridge", "none", 2, tunnel=tunnel, hosts=2)
        reason = incompatibility(setup) or unsupported_reason(setup)
        tunnels.append({"scenario": "multi", "tunnel": tunnel, "supported": reason is None, "reason": reason})
    return {
        "kernel": platform.release(),
        "tunnels": tunnels,
        "implementations": implementations(found),
        "pinned": pinned(config) if config else [],
        "kernel_config_available": bool(technology.kernel_config()),
        "tools": {name: {"path": shutil.which(name), "purpose": purpose} for name, purpose in TOOLS.items()},
        "combinations": combos,
    }
