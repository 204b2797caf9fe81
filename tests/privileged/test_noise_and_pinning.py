"""CPU pinning and the noise record on the real testbed: a pinned generator runs on its CPUs
(the kernel's Cpus_allowed_list), a daemon's threads are pinned after its start, and a target
measured while a real busy loop runs outside the setup is flagged and measured once more."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from seconetbench import config, proc, runner
from seconetbench.backends.netns import NetnsBackend
from seconetbench.meta import read_meta
from seconetbench.spec import SetupSpec
from seconetbench.workloads.base import RunContext, Workload, wait_listening

pytestmark = pytest.mark.privileged

SETUP = "single-bridge-none-c2"
# a busy loop outside the setup; prints when it runs, so that the test starts measuring then
BUSY = "import time\nprint('busy', flush=True)\nend = time.time() + 120\nwhile time.time() < end: pass\n"
# a process with threads that exist before it is pinned (a daemon after its start)
THREADED = ("import threading, time\n"
            "for _ in range(3): threading.Thread(target=time.sleep, args=(60,), daemon=True).start()\n"
            "print('ready', flush=True); time.sleep(60)\n")


def allowed_list(pid: int, task: int | None = None) -> str:
    status = Path(f"/proc/{pid}" + (f"/task/{task}" if task else "") + "/status").read_text()
    return next(line.split(":", 1)[1].strip() for line in status.splitlines() if line.startswith("Cpus_allowed_list"))


def two_cpus() -> tuple[int, int]:
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        pytest.skip("needs two CPUs")
    return cpus[0], cpus[1]


def small_config(prefix: str, results: Path, testbed: dict) -> dict:
    return config.validate({
        "results_dir": str(results), "repetitions": 1, "testbed": {"prefix": prefix, **testbed},
        "sweep": {"single": {"solutions": ["bridge"], "filters": ["none"], "containers": [2]}, "workloads": ["tp"]},
        "workloads": {"tp": {"kind": "throughput", "payload_bytes": 653, "duration_s": 1, "generator": "iperf3"}},
    })


def test_a_pinned_generator_runs_on_its_side_cpus(prefix, tmp_path, tools_available):
    first, second = two_cpus()
    backend = NetnsBackend(prefix)
    deployment = backend.deploy(SetupSpec("single", "bridge", "none", 2), verify=False)
    try:
        ctx = RunContext(deployment, backend.registry, tmp_path, "pinning-test", backend,
                         cpu_pinning={"sender": first, "sink": [second]})
        sender, sink = deployment.containers
        server = Workload.launch(ctx, "c01-c02", "server", sink, ["iperf3", "-s", "-B", sink.ip])
        client = Workload.launch(ctx, "c01-c02", "client", sender, ["sleep", "30"])
        try:
            wait_listening(ctx, [server], 5201)  # iperf3 itself runs now: ip netns exec has exec'd it
            # the pid is the generator itself, still on its CPUs after the exec
            assert psutil.Process(server.process.pid).name() == "iperf3"
            assert allowed_list(server.process.pid) == str(second)
            assert allowed_list(client.process.pid) == str(first)
            assert Workload.record([server, client])[0]["cpus"] == [second]
        finally:
            Workload.stop(ctx, [server, client])
    finally:
        backend.teardown()


def test_placing_a_running_daemon_pins_its_existing_threads_and_unpinning_restores_them():
    first, _ = two_cpus()
    daemon = subprocess.Popen([sys.executable, "-c", THREADED], stdout=subprocess.PIPE, text=True)
    try:
        assert daemon.stdout.readline().strip() == "ready"
        tasks = [int(t) for t in os.listdir(f"/proc/{daemon.pid}/task")]
        assert len(tasks) == 4
        applied = proc.place([psutil.Process(daemon.pid)], {first})
        assert applied == [{"pid": daemon.pid, "name": psutil.Process(daemon.pid).name(), "cpus": [first]}]
        assert {allowed_list(daemon.pid, task) for task in tasks} == {str(first)}
        proc.place([psutil.Process(daemon.pid)], None)  # pinning off: every CPU this process may use
        assert {allowed_list(daemon.pid, task) for task in tasks} == {proc.cpu_list(os.sched_getaffinity(0))}
    finally:
        proc.terminate([daemon])


def test_pinning_and_the_noise_record_reach_meta_json(prefix, tmp_path, tools_available):
    first, second = two_cpus()
    cfg = small_config(prefix, tmp_path / "results", {"cpu_pinning": {"sender": first, "sink": second, "daemons": second}})
    out = tmp_path / f"results/raw/{SETUP}/tp/rep1"
    try:
        runner.measure(cfg, SETUP, "tp", 1, out)
        meta = read_meta(out)
    finally:
        NetnsBackend(prefix).teardown()
    assert meta["cpu_pinning"]["requested"] == {"sender": first, "sink": second, "daemons": second}
    assert meta["cpu_pinning"]["daemons"] == []  # bridge and no filter: no daemon
    cpus = {p["role"]: p["cpus"] for p in meta["workload_run"]["processes"]}
    assert cpus == {"client": [first], "server": [second]}
    noise = meta["noise"]
    assert noise["attempt"] == 1 and noise["earlier_attempts"] == []
    assert noise["steal_pct"] >= 0 and noise["outside_cpu_pct"] >= 0 and noise["load1"] >= 0
    assert noise["thresholds"] == {"max_steal_pct": 5, "max_outside_cpu_pct": 10, "max_load1_per_cpu": 4}
    assert noise["cpus"] == os.cpu_count() and noise["load1_per_cpu"] == round(noise["load1"] / noise["cpus"], 3)


def test_a_target_with_a_busy_process_outside_is_flagged_and_measured_again(prefix, tmp_path, tools_available):
    # only the outside-CPU threshold: the steal and load of a shared CI machine must not decide this test
    cfg = small_config(prefix, tmp_path / "results", {"noise": {"max_outside_cpu_pct": 0, "max_steal_pct": None,
                                                                "max_load1_per_cpu": None, "remeasure": True}})
    out = tmp_path / f"results/raw/{SETUP}/tp/rep1"
    busy = subprocess.Popen([sys.executable, "-c", BUSY], stdout=subprocess.PIPE, text=True)
    try:
        assert busy.stdout.readline().strip() == "busy"
        runner.measure(cfg, SETUP, "tp", 1, out)
    finally:
        proc.terminate([busy])
        NetnsBackend(prefix).teardown()
    noise = read_meta(out)["noise"]
    assert noise["noisy"] and noise["exceeded"] == ["max_outside_cpu_pct"] and noise["attempt"] == 2
    assert noise["outside_cpu_pct"] > 0 and noise["outside_top"]
    # the first attempt is kept whole, with its own meta.json and the generator's output
    (first,) = noise["earlier_attempts"]
    kept = tmp_path / "results" / first
    assert read_meta(kept)["noise"]["attempt"] == 1
    assert (kept / "c01-c02.client.stdout").stat().st_size > 0
    assert (out / "c01-c02.client.stdout").stat().st_size > 0
