#!/usr/bin/env python3
"""What deploying over SSH costs (issue 13): one multi-host setup deployed by the ssh backend on
two namespace lab hosts with their own sshd (testbed/labhosts.py: each host's part built by its
agent over the host's one master connection) against the same setup deployed by the netns
backend on this machine, alternating round by round in one run; prints the median deploy time
of each and their ratio (target: ssh within 3x of netns for 32 containers).

Both deploys include the isolation check, as every real deploy does; the ssh backend's probes run
inside the containers (exec), the netns backend's from this machine's side. The lab hosts share
this machine's kernel and CPUs, so the ratio is the framework's cost of going through SSH and
the agents, not of a network. Needs root; takes the host lock.
Usage: bench/ssh_deploy.py [--rounds 3] [--setup multi-vxlan-none-c32] [--solution bridge]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from parity import host_lock  # bench/ is on sys.path when this script runs

from seconetbench.backends.netns import NetnsBackend
from seconetbench.backends.ssh import SshBackend
from seconetbench.spec import SetupSpec
from seconetbench.testbed import cleanup
from seconetbench.testbed.labhosts import LabHosts

LAB, OVER_SSH, LOCAL = "scnbsl", "scnbsd", "scnbsn"


def timed_deploy(backend, setup: SetupSpec) -> float:
    started = time.perf_counter()
    try:
        backend.deploy(setup)
        return time.perf_counter() - started
    finally:
        backend.teardown()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--setup", default="multi-vxlan-none-c32")
    parser.add_argument("--solution", default="bridge", help="sweep.multi.solution of the setup")
    parser.add_argument("--lock-timeout", type=float, default=3600)
    args = parser.parse_args()
    local_setup = SetupSpec.parse(args.setup, args.solution)
    ssh_setup = SetupSpec.parse(f"{args.setup}-ssh", args.solution)
    with host_lock(args.lock_timeout):
        for prefix in (LAB, OVER_SSH, LOCAL):
            cleanup.remove(prefix)  # an interrupted earlier run of this bench
        times: dict[str, list[float]] = {"ssh": [], "netns": []}
        try:
            with LabHosts(LAB, count=local_setup.hosts) as lab:
                over_ssh = SshBackend(OVER_SSH, lab.testbed_config())
                local = NetnsBackend(LOCAL)
                timed_deploy(over_ssh, ssh_setup)  # ships the agent once (its copy stays on the hosts)
                for _ in range(args.rounds):
                    times["ssh"].append(timed_deploy(over_ssh, ssh_setup))
                    times["netns"].append(timed_deploy(local, local_setup))
                over_ssh.close()
        finally:
            for prefix in (OVER_SSH, LOCAL, LAB):
                cleanup.remove(prefix)
    ssh, netns = statistics.median(times["ssh"]), statistics.median(times["netns"])
    print(f"{args.setup} ({args.solution}), {args.rounds} rounds, deploy incl. isolation check (median):")
    print(f"  ssh backend (2 namespace lab hosts, agents): {ssh:7.2f} s   {[round(t, 2) for t in times['ssh']]}")
    print(f"  netns backend (this machine)               : {netns:7.2f} s   {[round(t, 2) for t in times['netns']]}")
    print(f"  ratio ssh / netns: {ssh / netns:.2f} (target <= 3)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
