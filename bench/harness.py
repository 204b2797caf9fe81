#!/usr/bin/env python3
"""How much the harness costs around the measurements (issue 9), each number beside its target:

- planning: wall time of `snakemake -n` on config/full.yaml (target <= 5 s, issue 18; <= 10 s in issue 9);
- monitor: CPU the monitor thread itself uses at its default 1 s interval over a deployed
  32-container setup, in percent of one core (target <= 1 %);
- sweep efficiency: time the generators ran / wall time of the measuring phase, read from the
  meta.json files of an existing results directory (target >= 0.9; run a `grouped` sweep with
  short workloads first, e.g. `make run`, and pass its results directory);
- parsing: packets per second of the ITGDec per-packet (-l) parser on a 1 M-packet dump made of
  the recorded real Quake 3 dump repeated (target >= 1 M/s; best of 3 runs, the first warms up).

Needs root for the monitor part. Usage: bench/harness.py [--results results/quick] [--monitor-s 10]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from seconetbench.backends.netns import NetnsBackend
from seconetbench.meta import META_FILE, read_meta
from seconetbench.monitor import Monitor
from seconetbench.parsers import itgdec_packets
from seconetbench.spec import SetupSpec
from seconetbench.testbed import cleanup

REPO = Path(__file__).resolve().parents[1]


def planning_s() -> float:
    with tempfile.TemporaryDirectory() as workdir:
        started = time.monotonic()
        subprocess.run([sys.executable, "-m", "snakemake", "-n", "--cores", "2", "--snakefile", str(REPO / "Snakefile"),
                        "--directory", workdir, "--configfile", str(REPO / "config/full.yaml")],
                       check=True, capture_output=True)
        return time.monotonic() - started


def monitor_cpu_pct(seconds: float) -> float:
    """CPU the monitor uses, percent of one core: this process's CPU time while the main thread
    only sleeps, so all of it is the monitor's thread."""
    prefix = "scnbm"
    backend = NetnsBackend(prefix)
    try:
        deployment = backend.deploy(SetupSpec("single", "bridge", "iptables", 32), verify=False)
        namespaces = [h.netns for h in deployment.hosts] + [c.netns for c in deployment.containers]
        with tempfile.TemporaryDirectory() as out:
            before = resource.getrusage(resource.RUSAGE_SELF)
            started = time.monotonic()
            with Monitor(Path(out), namespaces, processes=backend.registry.recorded, interval_s=1.0):
                time.sleep(seconds)
            after = resource.getrusage(resource.RUSAGE_SELF)
            elapsed = time.monotonic() - started
        used = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
        return 100 * used / elapsed
    finally:
        cleanup.remove(prefix)


def packet_parse_rate(packets: int = 1_000_000) -> float:
    sample = (REPO / "tests/fixtures/itgdec/w5_quake3_recv_packets_l_head200.txt").read_bytes()
    data = sample * (packets // sample.count(b"\n") + 1)
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        parsed = itgdec_packets.parse_bytes(data)
        best = min(best, time.perf_counter() - started)
    return len(parsed.samples) / best


def targets_in_order(results: Path) -> list[dict]:
    """The meta.json of every complete target in *results* (rep<n> directories only: not a
    '.partial' being written), in the order they started."""
    return sorted((read_meta(p.parent) for p in results.glob(f"raw/*/*/rep*/{META_FILE}")),
                  key=lambda m: m["started_at"])


def sweep_efficiency(results: Path) -> dict[str, float] | None:
    """Of the complete targets in *results*: generator time / wall time, the median gap between
    two targets, and the deploys."""
    metas = targets_in_order(results)
    if len(metas) < 2:
        return None
    generating = sum(m["duration_s"] for m in metas)
    wall = max(m["finished_at"] for m in metas) - metas[0]["started_at"]
    gaps = [b["started_at"] - a["finished_at"] for a, b in zip(metas, metas[1:])]
    return {"targets": len(metas), "efficiency": generating / wall, "median_gap_s": statistics.median(gaps),
            "deploys": sum(not m["deployment"]["reused"] for m in metas)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", default=str(REPO / "results/quick"))  # make run's
    parser.add_argument("--monitor-s", type=float, default=10)
    args = parser.parse_args()
    print(f"{'measure':<44}{'value':>10}  target")
    print(f"{'snakemake -n on config/full.yaml (s)':<44}{planning_s():>10.2f}  <= 5")
    print(f"{'ITGDec -l parsing (M packets/s)':<44}{packet_parse_rate() / 1e6:>10.2f}  >= 1")
    print(f"{'monitor CPU, 1 s interval, 32 containers (%)':<44}{monitor_cpu_pct(args.monitor_s):>10.2f}  <= 1")
    efficiency = sweep_efficiency(Path(args.results))
    if efficiency is None:
        print(f"{'sweep efficiency':<44}{'n/a':>10}  >= 0.9 (no results in {args.results}; run a sweep first)")
    else:
        print(f"{'sweep efficiency (' + str(efficiency['targets']) + ' targets)':<44}{efficiency['efficiency']:>10.3f}  >= 0.9")
    return 0


if __name__ == "__main__":
    sys.exit(main())
