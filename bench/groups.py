#!/usr/bin/env python3
"""What a second testbed group buys (issue 18): one sweep's measuring phase (`snakemake measure`)
over one group of two namespace lab hosts, then the same sweep over two groups of two
(testbed.ssh.groups; testbed/labhosts.py: four lab hosts with their own sshd), each in a fresh
results directory, in one run; prints both wall times and their ratio (target: two groups
<= 0.6 x one group).

The workloads wait rather than compute (pings at an interval), as measurements on real lab
hosts do from this machine's point of view: the lab hosts here share this machine's 2 cores, so
what two groups can overlap is the waiting, not the deploys' CPU work. Each sweep also pays
Snakemake's start and, with two groups, one health check per group. Needs root; takes the host
lock, and points the sweeps' own measurement locks at a private directory.
Usage: bench/groups.py [--reps 4] [--count 40] [--interval 0.2] [--cores 2]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from parity import host_lock  # bench/ is on sys.path when this script runs

from seconetbench import config as configuration
from seconetbench.testbed import cleanup
from seconetbench.testbed.groups import group_prefix
from seconetbench.testbed.labhosts import LabHosts

LAB = "scnbgl"
REPO = Path(__file__).resolve().parents[1]


def sweep_config(testbed: dict, reps: int, count: int, interval: float) -> dict:
    """Two setups (vxlan and its baseline) x two ping workloads, in blocked rounds."""
    ping = {"kind": "latency", "count": count, "interval_s": interval}
    return {"results_dir": "results", "repetitions": reps, "run_order": {"mode": "blocked", "seed": 1},
            "testbed": testbed,
            "sweep": {"multi": {"tunnels": ["routing", "vxlan"], "filters": ["none"], "containers": [2], "hosts": 2,
                                "solution": "bridge"},
                      "workloads": ["ping_a", "ping_b"]},
            "workloads": {"ping_a": ping, "ping_b": {**ping, "payload_bytes": 1000}}}


def measured_s(config: dict, cores: int) -> float:
    """Wall time of `snakemake measure` of *config* in a fresh directory (its testbeds removed after)."""
    with tempfile.TemporaryDirectory(prefix="scn-bench-groups-") as workdir:
        path = Path(workdir) / "config.yaml"
        path.write_text(yaml.safe_dump(config))
        argv = [sys.executable, "-m", "snakemake", "measure", "--snakefile", str(REPO / "Snakefile"),
                "--directory", workdir, "--cores", str(cores), "--configfile", str(path)]
        started = time.monotonic()
        result = subprocess.run(argv, capture_output=True, text=True)
        elapsed = time.monotonic() - started
        run = configuration.run_prefix({"results_dir": str(Path(workdir) / "results")})
        for index in (1, 2):
            cleanup.remove(group_prefix(run, index, 2))
        cleanup.remove(run)
        if result.returncode != 0:
            raise SystemExit(f"the sweep failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
        return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=4)
    parser.add_argument("--count", type=int, default=40, help="pings per target")
    parser.add_argument("--interval", type=float, default=0.2, help="seconds between pings")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--lock-timeout", type=float, default=3600)
    args = parser.parse_args()
    with host_lock(args.lock_timeout), tempfile.TemporaryDirectory(prefix="scn-bench-locks-") as locks:
        os.environ["SECONETBENCH_LOCK"] = str(Path(locks) / "seconetbench.lock")  # the sweeps' own
        cleanup.remove(LAB)  # an interrupted earlier run of this bench
        try:
            with LabHosts(LAB, count=4) as lab:
                two = lab.testbed_config(groups=2)
                one = {**two, "ssh": {**{k: v for k, v in two["ssh"].items() if k != "groups"},
                                      "hosts": two["ssh"]["groups"][0]}}
                times = {name: measured_s(sweep_config(testbed, args.reps, args.count, args.interval), args.cores)
                         for name, testbed in (("one group", one), ("two groups", two))}
        finally:
            cleanup.remove(LAB)
    targets = 2 * 2 * args.reps
    print(f"{targets} targets (2 setups x 2 ping workloads x {args.reps} reps, {args.count} pings every "
          f"{args.interval} s), snakemake measure --cores {args.cores}:")
    for name, seconds in times.items():
        print(f"  {name:10}: {seconds:7.1f} s")
    print(f"  ratio two groups / one group: {times['two groups'] / times['one group']:.2f} (target <= 0.6)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
