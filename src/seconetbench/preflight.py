"""Which technologies and tools this machine supports, and why not."""

from __future__ import annotations

import itertools
import platform
import shutil
from typing import Any

from seconetbench import technology
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
    return techs


def incompatibility(setup: SetupSpec) -> str | None:
    """Why a combination can never work, whatever the machine (None when it can)."""
    try:
        techs = setup_technologies(setup)
    except KeyError as exc:
        return str(exc.args[0])
    for tech in techs:
        if setup.backend not in tech.backends:
            return (f"{tech.kind} '{tech.name}' runs on the {' and '.join(tech.backends)} backend"
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


def report() -> dict[str, Any]:
    """Everything preflight knows, as JSON-ready data."""
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
        "kernel_config_available": bool(technology.kernel_config()),
        "tools": {name: {"path": shutil.which(name), "purpose": purpose} for name, purpose in TOOLS.items()},
        "combinations": combos,
    }
