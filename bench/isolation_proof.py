#!/usr/bin/env python3
"""How long the deploy-time isolation proof takes (issue 18: <= 0.3 s for 32 containers).

For each setup (single host: bridge+iptables, bridge+nftables, ovs+ovs, ebpf+ebpf) and each size
(--containers, default 2 8 32), every round deploys the setup as a sweep does, proof included,
and reads the proof's own duration from the deployment's facts (`verification.duration_s`: the
first proof on a fresh testbed, with its first-packet costs, e.g. OVS upcalls). On the same
testbed it then runs the proof again with the previous rule, every expected drop waiting the full
PROBE_TIMEOUT_S (`check_whitelist(controls=False)`), for the ratio. Printed per cell: medians of
--rounds, the slowest positive control (the whitelisted probe that took longest to arrive), the
wait the expected drops got, and the ratio new / fixed timeout. Both proofs must pass, or the
bench stops with the failures.

Before issue 18 the proof started one `ping` process per ICMP probe and always waited 1 s:
1.10 s for single-bridge-iptables-c32 (docs/performance.md). Needs root; takes the host lock.
Usage: bench/isolation_proof.py [--rounds 3] [--containers 2 8 32]
"""

from __future__ import annotations

import argparse
import statistics
import sys

from parity import host_lock  # bench/ is on sys.path when this script runs

from seconetbench import security
from seconetbench.backends.netns import NetnsBackend
from seconetbench.spec import SetupSpec
from seconetbench.testbed import cleanup

PREFIX = "scnbi"
SETUPS = (("bridge", "iptables"), ("bridge", "nftables"), ("ovs", "ovs"), ("ebpf", "ebpf"))


def passed(check: dict, what: str) -> dict:
    if not check["passed"]:
        raise SystemExit(f"{what}: the isolation proof failed: {check['failures'][:5]}")
    return check


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--containers", type=int, nargs="+", default=[2, 8, 32])
    parser.add_argument("--lock-timeout", type=float, default=3600)
    args = parser.parse_args()
    backend = NetnsBackend(PREFIX)
    print(f"isolation proof at deploy, median of {args.rounds} fresh deploys (seconds)")
    print(f"{'setup':<30}{'proof':>8}{'slowest control':>17}{'drop wait':>11}{'fixed 1 s':>11}{'ratio':>7}")
    with host_lock(args.lock_timeout):
        cleanup.remove(PREFIX)  # an interrupted earlier run of this bench
        try:
            for solution, filter_name in SETUPS:
                for containers in args.containers:
                    setup = SetupSpec("single", solution, filter_name, containers)
                    proofs, fixed = [], []
                    for _ in range(args.rounds):
                        deployment = backend.deploy(setup)
                        proofs.append(passed(deployment.facts["verification"], setup.id))
                        fixed.append(passed(security.check_whitelist(deployment, controls=False), setup.id))
                        backend.teardown()
                    proof = statistics.median(p["duration_s"] for p in proofs)
                    old = statistics.median(p["duration_s"] for p in fixed)
                    slowest = statistics.median(p["slowest_arrival_s"] for p in proofs)
                    wait = statistics.median(p["drop_wait_s"] for p in proofs)
                    ratio = f"{proof / old:.2f}" if old else "-"  # c2: every pair whitelisted, nothing waits
                    print(f"{setup.id:<30}{proof:>8.3f}{slowest:>17.4f}{wait:>11.3f}{old:>11.3f}{ratio:>7}",
                          flush=True)
        finally:
            cleanup.remove(PREFIX)
    print("target (issue 18): proof <= 0.3 s for 32 containers")
    return 0


if __name__ == "__main__":
    sys.exit(main())
