#!/usr/bin/env python3
"""Time between targets in a running sweep (issue 18: <= 0.05 s).

"Time between targets" is, for two targets measured one after the other on the same deployment
(the second's meta.json says `deployment.reused`), the second's `started_at` minus the first's
`finished_at`: from the end of one target's workload to the start of the next one's, both
recorded in meta.json. It holds everything the harness does in between: writing the first
target's meta.json and renaming its raw directory, Snakemake's scheduling (between two jobs),
the cell checks, the lock, the reuse check of the deployment, the quiet-testbed wait
(`settle`) and the noise snapshot. Gaps across a deploy are printed apart: they hold the
deploy and its isolation proof (bench/isolation_proof.py, bench/deploy_time.py).

Runs `snakemake measure` on a small sweep of very short workloads (2 setups x 4 workloads x 3
repetitions in blocked order, workloads of 0.1-1 s) in a temporary directory and prints the
median, 90th percentile and maximum of the gaps. It holds the host lock (runner.HostLock) for the
whole run and points the sweep's own per-target lock at a file of its own, so that no other
measurement on the machine takes the testbed between two targets. Needs root (it deploys on the
netns backend).
Usage: bench/target_gap.py [--snakefile Snakefile] [--keep DIR]
(--snakefile: measure another checkout's workflow, e.g. the one before a change)
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from harness import targets_in_order  # bench/ is on the path of a script run from it
from seconetbench.runner import HostLock

REPO = Path(__file__).resolve().parents[1]

SMALL = """
results_dir: results
repetitions: 3
run_order: {mode: blocked, seed: 1}
sweep:
  single: {solutions: [bridge], filters: [none, iptables], containers: [2]}
  workloads: [ping_a, ping_b, tp_a, tp_b]
workloads:
  ping_a: {kind: latency, count: 5, interval_s: 0.02}
  ping_b: {kind: latency, count: 5, interval_s: 0.02}
  tp_a: {kind: throughput, payload_bytes: 653, duration_s: 1}
  tp_b: {kind: throughput, payload_bytes: 1370, duration_s: 1}
monitor: {enabled: true, interval_s: 1.0}
"""


def gaps(results: Path) -> tuple[list[float], list[float]]:
    """(gaps between consecutive targets on a reused deployment, gaps across a deploy), in s."""
    metas = targets_in_order(results)
    reused, deployed = [], []
    for before, after in zip(metas, metas[1:]):
        gap = after["started_at"] - before["finished_at"]
        (reused if after["deployment"]["reused"] else deployed).append(gap)
    return reused, deployed


def describe(values: list[float]) -> str:
    if not values:
        return "none"
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
    return (f"median {statistics.median(ordered):.3f} s, p90 {p90:.3f} s, max {ordered[-1]:.3f} s "
            f"({len(ordered)} gaps)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--snakefile", default=str(REPO / "Snakefile"))
    parser.add_argument("--keep", help="run in this directory and keep it (default: a temporary one)")
    args = parser.parse_args()
    workdir = Path(args.keep or tempfile.mkdtemp(prefix="seconetbench-gap-"))
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "small.yaml").write_text(SMALL)
    try:
        with HostLock(timeout_s=3600):
            run = subprocess.run([sys.executable, "-m", "snakemake", "measure", "--cores", "2", "--snakefile",
                                  args.snakefile, "--directory", str(workdir), "--configfile",
                                  str(workdir / "small.yaml")], capture_output=True, text=True,
                                 env={**os.environ, "SECONETBENCH_LOCK": str(workdir / "measure.lock")})
        if run.returncode != 0:
            print(run.stderr[-3000:], file=sys.stderr)
            print(f"the sweep failed (rc {run.returncode}); its files: {workdir}", file=sys.stderr)
            return 1
        reused, deployed = gaps(workdir / "results")
        print(f"workflow: {args.snakefile}")
        print(f"time between targets on one deployment: {describe(reused)}  (target <= 0.05 s)")
        print(f"time between targets across a deploy:   {describe(deployed)}")
        return 0
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
