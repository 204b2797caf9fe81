#!/usr/bin/env python3
"""Do CPU pinning and pairing narrow the CI of throughput on this machine, and by how much?
(issue 12, section 4)

One run, through the runner (runner.measure: host lock, deploy or reuse, noise record, meta.json)
as a sweep would measure: bridge/none and bridge/iptables, 2 containers, 653-byte TCP writes with
iperf3 for a few seconds, in R rounds. Each round measures every combination of setup x placement
(unpinned, and testbed.cpu_pinning {sender: first CPU, sink: second CPU}) once, in a seeded random
order; each setup keeps its deployment (a run prefix of its own) for the whole bench. The bench
holds the host lock from its first target to its last, so that no other measurement runs between
the targets of a round (pairing assumes they share the machine's state). Prints, per placement:

- bridge/none: the median per-repetition throughput and the half-width of its 95 % CI of the
  median (order statistics, stats.summarize), in percent of the median;
- the iptables / none effect: unpaired (ratio of medians, stats.unpaired_ratio) and paired per
  round (median of the per-round ratios, stats.paired_ratios), each with its CI half-width;
- the targets' noise record (steal, CPU outside the setup, noisy targets).

Needs root and two CPUs. Usage: bench/noise.py [--rounds 10] [--duration 3] [--seed 1] [--keep DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from seconetbench import backends, config, pipeline, runner, stats
from seconetbench.meta import read_meta

SETUPS = {"none": "single-bridge-none-c2", "iptables": "single-bridge-iptables-c2"}
PREFIXES = {"none": "scnnzn", "iptables": "scnnzi"}  # one deployment per setup, kept all along
WORKLOAD = "tp"


def configuration(filter_name: str, placement: str, results: Path, duration_s: float,
                  cpus: tuple[int, int]) -> dict:
    pinning = {"sender": cpus[0], "sink": cpus[1]} if placement == "pinned" else None
    return config.validate({
        "results_dir": str(results / placement), "repetitions": 1,
        "testbed": {"prefix": PREFIXES[filter_name], "cpu_pinning": pinning},
        "sweep": {"single": {"solutions": ["bridge"], "filters": [filter_name], "containers": [2]},
                  "workloads": [WORKLOAD]},
        "workloads": {WORKLOAD: {"kind": "throughput", "payload_bytes": 653, "duration_s": duration_s,
                                 "generator": "iperf3"}},
    })


def throughput_mbps(raw_dir: Path) -> float:
    """The target's one pair's mean rate over its whole stream (as the summary takes it)."""
    rows, _, _ = pipeline.target_rows(raw_dir)
    return float(stats.per_pair_throughput(rows)["throughput_mbps"].iloc[0])


def halfwidth(result: dict) -> str:
    return f"{result['ci_halfwidth_pct']:.1f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--duration", type=float, default=3, help="seconds per iperf3 stream")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", help="write the raw targets here and keep them (default: a temporary directory)")
    args = parser.parse_args()
    available = sorted(os.sched_getaffinity(0))
    if len(available) < 2:
        print("needs two CPUs to pin sender and sink apart", file=sys.stderr)
        return 1
    cpus = (available[0], available[1])
    results = Path(args.keep or tempfile.mkdtemp(prefix="seconetbench-noise-"))
    placements = ["unpinned", "pinned"]
    configs = {(f, p): configuration(f, p, results, args.duration, cpus) for f in SETUPS for p in placements}
    shuffle = random.Random(args.seed)
    values: dict[tuple[str, str], dict[int, float]] = {key: {} for key in configs}
    metas = []
    try:
        with runner.HostLock(timeout_s=3600):
            # runner.measure takes the lock per target: while the bench holds the host's, its own
            os.environ["SECONETBENCH_LOCK"] = str(results / "bench.lock")
            for round_number in range(1, args.rounds + 1):
                order = list(configs)
                shuffle.shuffle(order)
                for key in order:
                    filter_name, placement = key
                    out = results / placement / "raw" / SETUPS[filter_name] / WORKLOAD / f"rep{round_number}"
                    runner.measure(configs[key], SETUPS[filter_name], WORKLOAD, round_number, out)
                    values[key][round_number] = throughput_mbps(out)
                    metas.append(read_meta(out))
                print(f"round {round_number}/{args.rounds}: " + ", ".join(
                    f"{f}/{p} {values[(f, p)][round_number]:.0f}" for f, p in sorted(configs)), file=sys.stderr,
                    flush=True)
    finally:
        os.environ.pop("SECONETBENCH_LOCK", None)
        for filter_name in SETUPS:
            with contextlib.closing(backends.for_config(configs[(filter_name, "unpinned")])) as backend:
                backend.teardown()
        if not args.keep:
            shutil.rmtree(results, ignore_errors=True)

    print(f"bridge, c2, 653 B TCP, iperf3 {args.duration:g} s, {args.rounds} rounds interleaved (seed {args.seed}); "
          f"pinned = sender on CPU {cpus[0]}, sink on CPU {cpus[1]}; Mbit/s, CI = 95 % of the median")
    print(f"{'':<44}{'unpinned':>20}{'pinned':>20}")
    summaries = {}
    for placement in placements:
        none, iptables = values[("none", placement)], values[("iptables", placement)]
        baseline = stats.summarize(list(none.values()))
        summaries[placement] = (baseline, stats.unpaired_ratio(iptables, none), stats.paired_ratios(iptables, none))
    for label, cell in [
        ("bridge/none median", lambda b, u, p: f"{b['median']:.0f}"),
        ("bridge/none CI half-width (% of median)", lambda b, u, p: f"{b['ci_halfwidth_pct']:.1f}"),
        ("iptables/none, unpaired ratio [CI]", lambda b, u, p: f"{u['ratio']:.3f} [{u['ci_low']:.2f},{u['ci_high']:.2f}]"),
        ("  CI half-width (% of ratio)", lambda b, u, p: halfwidth(u)),
        ("iptables/none, paired per round [CI]", lambda b, u, p: f"{p['ratio']:.3f} [{p['ci_low']:.2f},{p['ci_high']:.2f}]"),
        ("  CI half-width (% of ratio)", lambda b, u, p: halfwidth(p)),
    ]:
        print(f"{label:<44}" + "".join(f"{cell(*summaries[placement]):>20}" for placement in placements))
    unpinned_none, pinned_none = summaries["unpinned"][0], summaries["pinned"][0]
    print(f"{'pinning: none half-width pinned / unpinned':<44}"
          f"{pinned_none['ci_halfwidth_pct'] / unpinned_none['ci_halfwidth_pct']:>20.2f}")
    for placement in placements:
        _, unpaired, paired = summaries[placement]
        print(f"{'pairing: half-width paired / unpaired, ' + placement:<44}"
              f"{paired['ci_halfwidth_pct'] / unpaired['ci_halfwidth_pct']:>20.2f}")
    noise = [m["noise"] for m in metas]
    print(f"noise over {len(noise)} targets: steal median {statistics.median(n['steal_pct'] for n in noise):.2f} % "
          f"(max {max(n['steal_pct'] for n in noise):.2f}), outside the setup median "
          f"{statistics.median(n['outside_cpu_pct'] for n in noise):.1f} % (max {max(n['outside_cpu_pct'] for n in noise):.1f}) "
          f"of all cores, load1 median {statistics.median(n['load1'] for n in noise):.2f}; "
          f"noisy (default thresholds): {sum(n['noisy'] for n in noise)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
