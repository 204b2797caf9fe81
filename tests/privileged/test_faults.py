"""Faults of a long sweep, for real: kill -9 in the middle of a deploy and of a workload, a
setup daemon that dies mid-workload, a full disk. After each: the target fails naming setup,
workload and cause, no complete-looking file remains, a rerun completes, nothing is left."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from seconetbench import config, runner
from seconetbench.errors import WorkloadError
from seconetbench.testbed import cleanup

pytestmark = pytest.mark.privileged

MEASURE = """
import json, sys
from seconetbench import config, runner
runner.measure(config.validate(json.loads(sys.argv[1])), sys.argv[2], sys.argv[3], 1, sys.argv[4])
"""


def sweep_config(prefix: str, results: Path, solution: str = "bridge", filter_name: str = "iptables",
                 containers: int = 32, **workloads) -> dict:
    definitions = workloads or {"lat": {"kind": "latency", "count": 30, "interval_s": 0.05}}
    return config.validate({
        "results_dir": str(results), "repetitions": 1, "testbed": {"prefix": prefix},
        "sweep": {"single": {"solutions": [solution], "filters": [filter_name], "containers": [containers]},
                  "workloads": list(definitions)},
        "workloads": definitions,
    })


def start_measure(cfg: dict, setup: str, workload: str, out: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", MEASURE, json.dumps(cfg), setup, workload, str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(condition, timeout_s: float = 60, what: str = "") -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.002)


@pytest.mark.parametrize("moment", ["deploy", "workload"])
def test_kill_9_mid_deploy_or_mid_workload_leaves_no_target_and_a_rerun_completes(prefix, tmp_path, moment):
    cfg = sweep_config(prefix, tmp_path / "results")
    setup = "single-bridge-iptables-c32"
    out = tmp_path / "results/raw" / setup / "lat/rep1"
    measuring = start_measure(cfg, setup, "lat", out)
    if moment == "deploy":
        # the host namespace exists, the 32 containers are still being made
        wait_for(lambda: Path(f"/run/netns/{prefix}-h1").exists(), what="the deploy to start")
    else:
        # mid-workload: the first reply of the pings is written
        wait_for(lambda: any("bytes from" in p.read_text() for p in out.parent.glob(".rep1.*.partial/c01-c02.client.stdout")),
                 what="the workload's first reply")
    measuring.send_signal(signal.SIGKILL)
    measuring.wait()
    assert not out.exists(), "a killed run must not leave a complete-looking target"
    # the killed run left its testbed (and, mid-workload, its pings) behind; the rerun removes them
    assert cleanup.leftovers(prefix)["netns"]
    runner.measure(cfg, setup, "lat", 1, out)
    assert (out / "meta.json").exists()
    assert not list(out.parent.glob(".rep1.*.partial"))
    meta = json.loads((out / "meta.json").read_text())
    assert meta["deployment"]["verification"]["passed"]
    cleanup.remove(prefix)
    orphans = [p for p in psutil.process_iter(["name", "cmdline"])
               if p.info["name"] == "ping" and any(prefix in arg for arg in (p.info["cmdline"] or []))]
    assert not orphans


def test_a_setup_daemon_killed_mid_workload_fails_the_target_by_name(prefix, tmp_path):
    cfg = sweep_config(prefix, tmp_path / "results", solution="ovs", filter_name="none", containers=2,
                       tp={"kind": "throughput", "payload_bytes": 1370, "duration_s": 2, "generator": "iperf3"})
    setup = "single-ovs-none-c2"
    out = tmp_path / "results/raw" / setup / "tp/rep1"
    measuring = start_measure(cfg, setup, "tp", out)
    wait_for(lambda: any(out.parent.glob(".rep1.*.partial/c01-c02.client.stdout")), what="the workload")
    pid_file = cleanup.state_dir(prefix) / "ovs-h1" / "ovs-vswitchd.pid"
    switch = psutil.Process(int(pid_file.read_text()))
    assert switch.name() == "ovs-vswitchd"
    switch.kill()  # the setup's own daemon, by pid
    _, stderr = measuring.communicate(timeout=120)
    assert measuring.returncode != 0
    assert f"WorkloadError: {setup}/tp/rep1:" in stderr
    assert not out.exists()
    failed = list((tmp_path / "results/failed").glob(f"{setup}--tp--rep1--*"))
    assert len(failed) == 1 and (failed[0] / "error.txt").exists()
    assert not any(cleanup.leftovers(prefix).values())  # the runner tore the broken setup down


def test_a_full_disk_fails_the_target_with_the_cause_and_leaves_no_target(prefix, tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "seconetbench-full", str(results)], check=True)
    try:
        cfg = sweep_config(prefix, results, containers=8)
        out = results / "raw/single-bridge-iptables-c8/lat/rep1"
        with pytest.raises(WorkloadError) as caught:
            runner.measure(cfg, "single-bridge-iptables-c8", "lat", 1, out)
        message = str(caught.value)
        assert message.startswith("single-bridge-iptables-c8/lat/rep1: ")
        assert "No space left on device" in message
        assert not out.exists()
        assert not (out.parent.exists() and any(out.parent.glob(".rep1.*")))  # no partial either
    finally:
        subprocess.run(["umount", str(results)], check=True)
    assert not any(cleanup.leftovers(prefix).values())


def test_a_reused_deployment_whose_daemon_died_is_deployed_again(prefix):
    from seconetbench.backends.netns import NetnsBackend
    from seconetbench.spec import SetupSpec

    backend = NetnsBackend(prefix)
    setup = SetupSpec("single", "ovs", "none", 2)
    deployment, reused = backend.deploy_or_reuse(setup)
    daemons = {d["name"]: d["pid"] for d in deployment.facts["daemons"]}
    assert {"ovsdb-server", "ovs-vswitchd"} <= set(daemons)
    assert backend.deploy_or_reuse(setup)[1]  # healthy: reused
    switch = psutil.Process(daemons["ovs-vswitchd"])
    switch.kill()
    switch.wait(5)
    assert "ovs-vswitchd" in backend.healthy(backend.current())
    fresh, reused = backend.deploy_or_reuse(setup)
    assert not reused and fresh.facts["verification"]["passed"]
    backend.teardown()
