#!/usr/bin/env python3
"""How fast is a deploy? single-bridge-iptables-c32 built by the framework (netlink through
pyroute2, one iptables-restore) against the same topology built with one `ip`/`iptables` command
per step, as a shell script would, alternating, median of --reps. The isolation check is timed
separately (it is part of every real deploy). Targets (issue 9): deploy <= 1 s, teardown <= 0.5 s.
Needs root. Usage: bench/deploy_time.py [--reps 5] [--containers 32]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

from seconetbench.backends.netns import NetnsBackend
from seconetbench.filters._common import enforcement_points
from seconetbench.filters.iptables import Iptables
from seconetbench.spec import SetupSpec
from seconetbench.testbed import cleanup

FRAMEWORK, BY_COMMANDS = "scnbd", "scnbc"


def sh(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True)


def deploy_by_commands(setup: SetupSpec) -> None:
    """The same objects as the framework's plan, one process per step."""
    deployment = NetnsBackend(BY_COMMANDS).plan(setup)
    names = deployment.names
    host = deployment.hosts[0].netns
    sh("ip", "netns", "add", host)
    sh("ip", "-n", host, "link", "set", "lo", "up")
    sh("ip", "-n", host, "link", "add", names.bridge(1), "type", "bridge")
    for container in deployment.containers:
        sh("ip", "netns", "add", container.netns)
        sh("ip", "-n", container.netns, "link", "set", "lo", "up")
        veth = names.host_veth(container.name)
        sh("ip", "-n", host, "link", "add", veth, "type", "veth", "peer", "name", container.ifname,
           "netns", container.netns)
        sh("ip", "-n", host, "link", "set", veth, "master", names.bridge(1), "up")
        sh("ip", "-n", container.netns, "addr", "add", f"{container.ip}/24", "dev", container.ifname)
        sh("ip", "-n", container.netns, "link", "set", container.ifname, "up")
    sh("ip", "-n", host, "link", "set", names.bridge(1), "up")
    sh("ip", "netns", "exec", host, "sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=1")
    subprocess.run(["ip", "netns", "exec", host, "iptables-restore", "--noflush"], check=True,
                   input=Iptables().ruleset(deployment, enforcement_points(deployment)[0]), text=True,
                   capture_output=True)


def teardown_by_commands(setup: SetupSpec) -> None:
    deployment = NetnsBackend(BY_COMMANDS).plan(setup)
    for netns in [c.netns for c in deployment.containers] + [deployment.hosts[0].netns]:
        sh("ip", "netns", "del", netns)


def timed(action) -> float:
    started = time.monotonic()
    action()
    return time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--containers", type=int, default=32)
    args = parser.parse_args()
    setup = SetupSpec("single", "bridge", "iptables", args.containers)
    backend = NetnsBackend(FRAMEWORK)
    results: dict[str, list[float]] = {k: [] for k in ("deploy", "teardown", "verify", "cmd_deploy", "cmd_teardown")}
    try:
        for _ in range(args.reps):
            results["deploy"].append(timed(lambda: backend.deploy(setup, verify=False)))
            results["teardown"].append(timed(backend.teardown))
            deployment = backend.deploy(setup, verify=True)
            results["verify"].append(deployment.facts["verification"]["duration_s"])
            backend.teardown()
            results["cmd_deploy"].append(timed(lambda: deploy_by_commands(setup)))
            results["cmd_teardown"].append(timed(lambda: teardown_by_commands(setup)))
    finally:
        cleanup.remove(FRAMEWORK)
        cleanup.remove(BY_COMMANDS)
    median = {k: statistics.median(v) for k, v in results.items()}
    print(f"{setup.id}, median of {args.reps} (seconds)")
    print(f"{'step':<24}{'framework':>10}{'commands':>10}{'ratio':>8}  target")
    print(f"{'deploy (no check)':<24}{median['deploy']:>10.3f}{median['cmd_deploy']:>10.3f}"
          f"{median['deploy'] / median['cmd_deploy']:>8.3f}  framework <= 1.0 s")
    print(f"{'teardown':<24}{median['teardown']:>10.3f}{median['cmd_teardown']:>10.3f}"
          f"{median['teardown'] / median['cmd_teardown']:>8.3f}  framework <= 0.5 s")
    print(f"{'isolation check':<24}{median['verify']:>10.3f}{'':>10}{'':>8}  (ICMP+TCP+UDP; bench/isolation_proof.py)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
