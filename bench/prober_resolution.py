#!/usr/bin/env python3
"""Does the policy_update prober reach 1 ms resolution here? Two probers (workloads/prober.py) probe
each other for --seconds at --rate-hz between the two containers of single-bridge-none-c2 (no
filter: every probe passes), started as the workload starts them. Printed, from their records in
one run: the gaps between consecutive probes of each flow (the resolution of a bracket, what
`resolution_ms` records per change), their median and tail as a ratio to the tick, and the one-way
delay from send to the kernel's receive timestamp (SO_TIMESTAMPNS). The target (issue 15): median
gap <= 1 ms at 1000 Hz. Holds the host's measurement lock. Needs root.
Usage: bench/prober_resolution.py [--seconds 5] [--rate-hz 1000]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from seconetbench import proc, runner
from seconetbench.backends.netns import NetnsBackend
from seconetbench.spec import SetupSpec
from seconetbench.workloads import policy, prober

PREFIX = "scnbp"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rate-hz", type=float, default=1000.0)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="prober-resolution-"))
    backend = NetnsBackend(PREFIX)
    with runner.HostLock(3600):
        try:
            deployment = backend.deploy(SetupSpec("single", "bridge", "none", 2), verify=False)
            a, b = (deployment.container(name) for name in deployment.pairs[0])
            started = []
            for me, peer in ((a, b), (b, a)):
                argv = ["python3", prober.__file__, "--ip", me.ip, "--peer", peer.ip, "--rate-hz", f"{args.rate_hz:g}"]
                # the records on stdout, the ready and done lines on stderr (as the workload runs them)
                started.append(proc.spawn(proc.in_container(me, argv), work / f"{me.name}.stdout",
                                          work / f"{me.name}.stderr", backend.registry, argv))
            for name in (a.name, b.name):
                while b"ready " not in (work / f"{name}.stderr").read_bytes():
                    time.sleep(0.01)
            time.sleep(args.seconds)  # the measured run itself, not a synchronisation
            proc.terminate(started)
        finally:
            backend.teardown()
    records = {name: policy.read_records(work / f"{name}.stdout") for name in (a.name, b.name)}
    tick_ms = 1000.0 / args.rate_hz
    print(f"prober resolution, {args.seconds:g} s at {args.rate_hz:g} Hz (tick {tick_ms:g} ms), "
          f"two probers on single-bridge-none-c2")
    print(f"{'flow':<28} {'probes':>7} {'passed':>7} {'gap p50':>8} {'p90':>7} {'p99':>7} {'max':>7} "
          f"{'p50/tick':>8} {'<=1.5 tick':>10} {'delay p50':>9} {'p99':>7}")
    medians = []
    for sender, receiver in ((a.name, b.name), (b.name, a.name)):
        for flow in policy.FLOWS:
            series = policy.flow_series(records[sender], records[receiver], flow, 100_000_000)
            gaps = np.diff(series.send) / 1e6
            delays = (series.arrival[series.passed] - series.send[series.passed]) / 1e6
            p50, p90, p99 = np.percentile(gaps, [50, 90, 99])
            medians.append(p50)
            print(f"{sender}->{receiver} {flow[0]:<11} {flow[1]:<4}  {len(series.send):>7} {int(series.passed.sum()):>7} "
                  f"{p50:>8.3f} {p90:>7.3f} {p99:>7.3f} {gaps.max():>7.2f} {p50 / tick_ms:>8.3f} "
                  f"{np.mean(gaps <= 1.5 * tick_ms):>10.1%} {np.median(delays):>9.3f} {np.percentile(delays, 99):>7.3f}")
    for name in (a.name, b.name):
        done = policy.prober_summary(work / f"{name}.stderr") or {}
        print(f"{name}: prober's own tick gaps {json.dumps(done.get('gap_ms'))}; receive timestamps "
              f"{json.dumps(done.get('receive_timestamps'))}")
    verdict = max(medians) <= 1.0 + 1e-3 if args.rate_hz >= 1000 else None
    print(f"median gap of every flow <= 1 ms: {verdict} (largest median {max(medians):.4f} ms); "
          "gaps in ms, delay = kernel receive timestamp - send time, ms")
    shutil.rmtree(work)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
