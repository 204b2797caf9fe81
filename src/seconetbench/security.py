"""Checks of the isolation a setup claims.

:func:`check_whitelist` runs at every deploy, before anything is measured: each whitelisted pair
must connect, and for every container one non-whitelisted peer is probed, which must be dropped
when the filter enforces the whitelist (and reachable when the filter is ``none``, which proves
the probe itself can see a path). Probes are bounded (one echo, 1 s timeout) and only address the
setup's own namespaces.
"""

from __future__ import annotations

import subprocess
import time
from typing import TYPE_CHECKING, Any

from seconetbench import proc, technology

if TYPE_CHECKING:
    from seconetbench.backends.base import Deployment

PROBE_TIMEOUT_S = 1


def probe_plan(deployment: Deployment) -> list[tuple[str, str, bool]]:
    """(source, destination, expected_reachable) for every whitelisted pair (both directions)
    and one non-whitelisted peer per container (the next container that is not its partner)."""
    enforced = getattr(technology.get("filter", deployment.setup.filter), "enforces_whitelist", True)
    plan = []
    for sender, sink in deployment.pairs:
        plan += [(sender, sink, True), (sink, sender, True)]
    names = [c.name for c in deployment.containers]
    for i, source in enumerate(names):
        for step in range(1, len(names)):
            other = names[(i + step) % len(names)]
            if not deployment.allowed(source, other):
                plan.append((source, other, not enforced))
                break
    return plan


def check_whitelist(backend: Any, deployment: Deployment) -> dict[str, Any]:
    """Probe the plan with ICMP echo, all probes at once; return the result for meta.json."""
    plan = probe_plan(deployment)
    started = time.monotonic()
    running = []
    for source, destination, expected in plan:
        argv = ["ping", "-n", "-q", "-c", "1", "-W", str(PROBE_TIMEOUT_S), deployment.container(destination).ip]
        process = subprocess.Popen(proc.in_netns(deployment.container(source).netns, argv),
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        running.append((source, destination, expected, process))
    failures = []
    for source, destination, expected, process in running:
        reached = process.wait(timeout=PROBE_TIMEOUT_S + 10) == 0
        if reached != expected:
            what = "reachable but not whitelisted" if reached else "whitelisted but unreachable"
            failures.append(f"{source}->{destination} icmp: {what}")
    return {
        "passed": not failures,
        "protocols": ["icmp"],
        "probes": len(plan),
        "expected_dropped": sum(1 for *_, e in plan if not e),
        "failures": failures,
        "duration_s": round(time.monotonic() - started, 3),
    }
