#!/usr/bin/env python3
"""How long a D-ITG target runs past its duration (issue 18: tcp100 in its duration plus <= 2 s).

tcp100 (100 TCP flows of 500 kbit/s, one pair: single-bridge-none-c2) for each duration, in one run:
  after   runner.measure as the workflow runs it: the run ends ITGSend and ITGRecv once every flow
          has sent for its duration (docs/workloads.md, "How a D-ITG run ends"); printed are the
          traffic phase (meta workload_run.ending.traffic_s) and the whole workload run including
          ITGDec's decoding (meta duration_s), each minus the duration
  before  (--before) the same script run by hand with ITGSend left to end its flows itself, as
          the workload did before: ITGRecv closes them one per second
and, for the run ended by the workload, whether every flow's packets reached the receiver log.
Needs root. Usage: bench/ditg_tail.py [--durations 10 20] [--flows 100] [--before]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from pathlib import Path

from parity import host_lock  # bench/ is on sys.path when this script runs

from seconetbench import config, parsers, runner
from seconetbench.backends.netns import NetnsBackend
from seconetbench.meta import read_meta
from seconetbench.spec import SetupSpec
from seconetbench.testbed import cleanup
from seconetbench.workloads.base import listening
from seconetbench.workloads.ditg import SIGNALING_PORT, pair_file

PREFIX = "scnbt"
SETUP = "single-bridge-none-c2"


def after(duration: float, flows: int, workdir: Path) -> dict[str, float]:
    cfg = config.validate({
        "results_dir": str(workdir / "results"), "repetitions": 1,
        "testbed": {"prefix": PREFIX, "reuse_deployment": True, "lock_timeout_s": 3600},
        "monitor": {"enabled": False},
        "sweep": {"single": {"solutions": ["bridge"], "filters": ["none"], "containers": [2]},
                  "workloads": ["tcp100"]},
        "workloads": {"tcp100": {"kind": "tcp100", "flows": flows, "duration_s": duration}},
    })
    raw = workdir / f"raw-{duration:g}"
    runner.measure(cfg, SETUP, "tcp100", 1, raw)
    meta = read_meta(raw)
    received = parsers.parse_file("itgdec", raw / pair_file("c01-c02", "recv_summary")).samples
    sent = parsers.parse_file("itgdec", raw / pair_file("c01-c02", "send_summary")).samples
    complete = len(received) == len(sent) == flows and int(received["packets"].sum()) == int(sent["packets"].sum())
    return {"traffic": meta["workload_run"]["ending"]["traffic_s"] - duration,
            "run": meta["duration_s"] - duration, "complete": complete,
            "packets": int(received["packets"].sum())}


def before(duration: float, flows: int, workdir: Path) -> float:
    """ITGSend's wall time minus the duration, left to end its flows itself (both logs at D-ITG's defaults)."""
    backend = NetnsBackend(PREFIX)
    deployment = backend.deploy(SetupSpec("single", "bridge", "none", 2), verify=False)
    sender, sink = deployment.container("c01"), deployment.container("c02")
    script = workdir / "before.itg"
    script.write_text("".join(f"-a {sink.ip} -rp {10001 + i} -T TCP -t {round(duration * 1000)} -C 100 -c 625\n"
                              for i in range(flows)))
    receiver = subprocess.Popen(["ip", "netns", "exec", sink.netns, "ITGRecv"], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(500):  # until ITGRecv listens on its signaling port
            if listening(receiver.pid, SIGNALING_PORT):
                break
            time.sleep(0.02)
        started = time.monotonic()
        subprocess.run(["ip", "netns", "exec", sender.netns, "ITGSend", str(script), "-l", str(workdir / "s.log"),
                        "-x", str(workdir / "r.log")], stdin=subprocess.DEVNULL, capture_output=True, check=True,
                       timeout=duration + flows * 2 + 60)
        return time.monotonic() - started - duration
    finally:
        receiver.terminate()
        receiver.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--durations", type=float, nargs="+", default=[10.0, 20.0])
    parser.add_argument("--flows", type=int, default=100)
    parser.add_argument("--before", action="store_true", help="also time D-ITG ending its flows itself")
    args = parser.parse_args()
    print(f"tcp100, {args.flows} flows, one pair ({SETUP}); seconds past the duration (target <= 2 s)")
    try:
        with tempfile.TemporaryDirectory() as tmp, host_lock(timeout_s=3600):
            # runner.measure takes the lock itself: point it at one of this run's own, as the tests do
            os.environ["SECONETBENCH_LOCK"] = str(Path(tmp) / "nested.lock")
            for duration in args.durations:
                workdir = Path(tmp) / f"d{duration:g}"
                workdir.mkdir()
                if args.before:
                    tail = before(duration, args.flows, workdir)
                    cleanup.remove(PREFIX)
                    print(f"  {duration:>5g} s  before (ITGSend ends its flows): {tail:6.2f} s", flush=True)
                result = after(duration, args.flows, workdir)
                print(f"  {duration:>5g} s  after: traffic {result['traffic']:5.2f} s, whole run incl. ITGDec "
                      f"{result['run']:5.2f} s; every packet sent was logged received: {result['complete']} "
                      f"({result['packets']} packets)", flush=True)
    finally:
        cleanup.remove(PREFIX)


if __name__ == "__main__":
    main()
