#!/usr/bin/env python3
"""Does the framework add overhead to what it measures?

Measures, in one run and interleaved (A B A B …, so that drift hits both alike):
  framework  single-bridge-none-c2 deployed and measured by seconetbench (runner.measure)
  by hand    the same topology (two namespaces on a bridge in a third) built with `ip` commands,
             measured with the same ping and iperf3 command lines run by hand
and prints the medians and the ratios framework / by hand (targets of issue 9: throughput >= 0.97,
RTT <= 1.05). Needs root. Usage: bench/framework_overhead.py [--reps 5] [--duration 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from seconetbench import config, parsers, runner
from seconetbench.testbed import cleanup

HAND = "scnbh"  # prefix of the hand-built topology (cleaned like any run prefix)
SINK_IP = "198.19.9.2"


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(argv, check=check, capture_output=True, text=True)


def build_by_hand() -> None:
    host, a, b = f"{HAND}-h1", f"{HAND}-c01", f"{HAND}-c02"
    for ns in (host, a, b):
        sh("ip", "netns", "add", ns)
        sh("ip", "-n", ns, "link", "set", "lo", "up")
    sh("ip", "-n", host, "link", "add", f"{HAND}-br1", "type", "bridge")
    for ns, ip, end in ((a, "198.19.9.1", "v01"), (b, SINK_IP, "v02")):
        sh("ip", "-n", host, "link", "add", f"{HAND}-{end}", "type", "veth", "peer", "name", f"{HAND}-e0", "netns", ns)
        sh("ip", "-n", host, "link", "set", f"{HAND}-{end}", "master", f"{HAND}-br1", "up")
        sh("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", f"{HAND}-e0")
        sh("ip", "-n", ns, "link", "set", f"{HAND}-e0", "up")
    sh("ip", "-n", host, "link", "set", f"{HAND}-br1", "up")


def measure_by_hand(count: int, interval: float, duration: float, payload: int) -> tuple[float, float]:
    a, b = f"{HAND}-c01", f"{HAND}-c02"
    ping = sh("ip", "netns", "exec", a, "ping", "-D", "-n", "-c", str(count), "-i", str(interval), "-s", "56",
              "-W", "1", SINK_IP)
    rtt = statistics.median(parsers.parse_text("ping", ping.stdout).samples["rtt_ms"].dropna())
    server = subprocess.Popen(["ip", "netns", "exec", b, "iperf3", "-s", "-1", "-p", "5201", "-B", SINK_IP],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            if sh("ip", "netns", "exec", b, "ss", "-Hltn", "sport = :5201").stdout.strip():
                break
            time.sleep(0.02)
        client = sh("ip", "netns", "exec", a, "iperf3", "-c", SINK_IP, "-p", "5201", "-t", f"{duration:g}",
                    "-l", str(payload), "-i", "1", "--json")
    finally:
        server.wait(timeout=30)
    summary = parsers.parse_text("iperf3", client.stdout).summary
    return rtt, summary["throughput_mbps_received"]


def measure_framework(cfg: dict, rep: int, results: Path) -> tuple[float, float]:
    setup = "single-bridge-none-c2"
    latency = runner.measure(cfg, setup, "latency", rep, results / f"lat{rep}")
    throughput = runner.measure(cfg, setup, "throughput", rep, results / f"tp{rep}")
    ping = parsers.parse_file("ping", latency / "c01-c02.client.stdout")
    iperf = parsers.parse_file("iperf3", throughput / "c01-c02.client.stdout")
    return statistics.median(ping.samples["rtt_ms"].dropna()), iperf.summary["throughput_mbps_received"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--duration", type=float, default=3)
    parser.add_argument("--payload", type=int, default=1370)
    parser.add_argument("--count", type=int, default=50)
    parser.add_argument("--interval", type=float, default=0.02)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="seconetbench-bench-"))
    cfg = config.validate({
        "results_dir": str(workdir), "repetitions": args.reps,
        "sweep": {"single": {"solutions": ["bridge"], "filters": ["none"], "containers": [2]},
                  "workloads": ["latency", "throughput"]},
        "workloads": {
            "latency": {"kind": "latency", "count": args.count, "interval_s": args.interval},
            "throughput": {"kind": "throughput", "payload_bytes": args.payload, "duration_s": args.duration,
                           "generator": "iperf3"}},
    })
    prefix = config.run_prefix(cfg)
    framework: list[tuple[float, float]] = []
    hand: list[tuple[float, float]] = []
    try:
        cleanup.remove(HAND)
        build_by_hand()
        for rep in range(1, args.reps + 1):
            framework.append(measure_framework(cfg, rep, workdir))
            hand.append(measure_by_hand(args.count, args.interval, args.duration, args.payload))
            print(f"rep {rep}: framework rtt {framework[-1][0]:.3f} ms, {framework[-1][1]:.0f} Mbit/s | "
                  f"by hand rtt {hand[-1][0]:.3f} ms, {hand[-1][1]:.0f} Mbit/s", file=sys.stderr)
    finally:
        cleanup.remove(prefix)
        cleanup.remove(HAND)
    f_rtt, f_tp = (statistics.median(v) for v in zip(*framework))
    h_rtt, h_tp = (statistics.median(v) for v in zip(*hand))
    print(f"{'metric':<28}{'framework':>12}{'by hand':>12}{'ratio':>8}  target")
    print(f"{'median RTT (ms)':<28}{f_rtt:>12.4f}{h_rtt:>12.4f}{f_rtt / h_rtt:>8.3f}  <= 1.05")
    print(f"{'median throughput (Mbit/s)':<28}{f_tp:>12.1f}{h_tp:>12.1f}{f_tp / h_tp:>8.3f}  >= 0.97")
    print(f"({args.reps} interleaved repetitions, payload {args.payload} B, {args.duration:g} s streams, "
          f"{args.count} probes at {args.interval:g} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
