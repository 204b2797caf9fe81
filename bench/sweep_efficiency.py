#!/usr/bin/env python3
"""Sweep efficiency on config/full.yaml with short workloads (issue 9: >= 0.9).

Runs the first N targets of the full sweep (the measurement batches that hold them), in its
configured run order (blocked), with the workloads shortened by
config/overlays/short-workloads.yaml, into a temporary directory, and
prints: time the generators ran / wall time of the measuring phase (from the targets' meta.json,
bench/harness.py's sweep_efficiency), the median gap between two targets, and the deploys. The first N
targets span several setups, so deploys and their isolation checks are part of the wall time.
Needs root. Usage: bench/sweep_efficiency.py [--targets 60] [--keep DIR]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from harness import sweep_efficiency  # bench/ is on the path of a script run from it
from seconetbench import config
from seconetbench.sweep import batches, expand

REPO = Path(__file__).resolve().parents[1]
CONFIGS = [REPO / "config/full.yaml", REPO / "config/overlays/short-workloads.yaml"]


def first_targets(count: int) -> tuple[str, list[str]]:
    """The results directory and the records of the measurement batches that hold the first
    *count* targets in the sweep's run order (paths relative to the working directory; a job
    measures a batch, docs/decisions.md)."""
    cfg = config.load_files(*CONFIGS)
    order = cfg["run_order"]
    planned = batches(expand(cfg, check_machine=True).measurement_order(order["mode"], order["seed"]),
                      lambda target: False)
    records, covered = [], 0
    for batch in planned:
        if covered >= count:
            break
        records.append(f"{cfg['results_dir']}/batches/{batch[0].path}.json")
        covered += len(batch)
    return cfg["results_dir"], records


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", type=int, default=60)
    parser.add_argument("--keep", help="run in this directory and keep it (default: a temporary one)")
    args = parser.parse_args()
    workdir = Path(args.keep or tempfile.mkdtemp(prefix="seconetbench-efficiency-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        results_dir, targets = first_targets(args.targets)
        run = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "2", "--snakefile", str(REPO / "Snakefile"),
                              "--directory", str(workdir), "--configfile", *map(str, CONFIGS), "--", *targets],
                             capture_output=True, text=True)
        result = sweep_efficiency(workdir / results_dir)
        if run.returncode != 0 or result is None:
            print(run.stderr[-3000:], file=sys.stderr)
            print(f"the sweep failed (rc {run.returncode}); its files: {workdir}", file=sys.stderr)
            return 1
        print(f"{'measure':<52}{'value':>10}  target")
        print(f"{'sweep efficiency, full.yaml short, ' + str(result['targets']) + ' targets':<52}"
              f"{result['efficiency']:>10.3f}  >= 0.9")
        print(f"{'median gap between two targets (s)':<52}{result['median_gap_s']:>10.3f}")
        print(f"{'deploys':<52}{result['deploys']:>10d}")
        return 0
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
