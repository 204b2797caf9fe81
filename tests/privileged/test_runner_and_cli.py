"""The runner and the CLI on the real testbed: a failing generator, the deploy JSON contract,
setups, parse, clean."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from seconetbench import config, proc, runner
from seconetbench.meta import read_meta
from seconetbench.scripting import in_own_thread
from seconetbench.backends.netns import NetnsBackend
from seconetbench.errors import ToolFailed, WorkloadError
from seconetbench.spec import SetupSpec
from seconetbench.testbed import cleanup, netlink
from tests.conftest import REPO, SHARED_FIXTURES

pytestmark = pytest.mark.privileged

CLI = [sys.executable, "-m", "seconetbench"]


def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([*CLI, *args], capture_output=True, text=True, cwd=REPO, timeout=120)
    if check and result.returncode != 0:
        pytest.fail(f"seconetbench {' '.join(args)} failed: {result.stderr}")
    return result


def small_config(prefix: str, results: Path) -> dict:
    return config.validate({
        "results_dir": str(results), "repetitions": 1, "testbed": {"prefix": prefix},
        "sweep": {"single": {"solutions": ["bridge"], "filters": ["iptables"], "containers": [2]},
                  "workloads": ["tp"]},
        "workloads": {"tp": {"kind": "throughput", "payload_bytes": 653, "duration_s": 1, "generator": "iperf3"}},
    })


IMPOSTOR = ("import socket\n"
            "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
            "s.bind(('{ip}', 5201)); s.listen()\n"
            "print('listening', flush=True)\n"
            "while True: s.accept()[0].close()\n")


def break_generator(deployment, fault: str) -> None:
    """Real faults after the isolation check passed: the host silently drops the generator's
    port (the client hangs), or another program holds the port in the sink (a broken server)."""
    if fault == "hang":
        proc.run_in(deployment.hosts[0].netns, ["iptables", "-I", "FORWARD", "1", "-p", "tcp", "--dport", "5201",
                                                "-j", "DROP"])
    else:
        sink = deployment.container("c02")
        impostor = subprocess.Popen(proc.in_netns(sink.netns, [sys.executable, "-c", IMPOSTOR.format(ip=sink.ip)]),
                                    stdout=subprocess.PIPE, text=True)
        assert impostor.stdout.readline().strip() == "listening"


@pytest.mark.parametrize(("fault", "cause"), [("hang", "did not finish within"), ("broken_server", "")])
def test_failed_generator_leaves_no_target_and_keeps_its_output(prefix, tmp_path, tools_available, fault, cause):
    cfg = small_config(prefix, tmp_path / "results")
    backend = NetnsBackend(prefix)
    deployment = backend.deploy(SetupSpec("single", "bridge", "iptables", 2))
    break_generator(deployment, fault)
    out = tmp_path / "results/raw/single-bridge-iptables-c2/tp/rep1"
    with pytest.raises(WorkloadError) as caught:
        runner.measure(cfg, "single-bridge-iptables-c2", "tp", 1, out)
    message = str(caught.value)
    assert "single-bridge-iptables-c2/tp/rep1" in message and cause in message
    assert not out.exists()
    assert not list(out.parent.glob(".rep1*"))  # no partial directory either
    kept = list((tmp_path / "results/failed").glob("single-bridge-iptables-c2--tp--rep1--*"))
    assert len(kept) == 1
    assert message in (kept[0] / "error.txt").read_text()
    assert (kept[0] / "c01-c02.server.stderr").exists()
    # the runner tore the broken deployment down, the generators and the impostor with it
    assert not any(cleanup.leftovers(prefix).values())
    assert not [n for n in netlink.list_netns() if n.startswith(prefix)]


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_many_targets_in_one_process_leak_nothing(prefix, tmp_path, tools_available):
    """run_batch runs in the Snakemake process, target after target (docs/decisions.md): a
    sweep of thousands must not pile up file descriptors, threads or namespace changes."""
    cfg = small_config(prefix, tmp_path / "results")
    cfg["workloads"]["ping"] = {"kind": "latency", "count": 5, "interval_s": 0.02}
    cfg["sweep"]["workloads"].append("ping")
    cfg = config.validate(cfg)
    net_before = os.readlink("/proc/self/ns/net")

    def target(workload: str, rep: int) -> Path:
        out = tmp_path / f"results/raw/single-bridge-iptables-c2/{workload}/rep{rep}"
        return in_own_thread(runner.measure, cfg, "single-bridge-iptables-c2", workload, rep, out)

    try:
        target("ping", 1)
        target("tp", 1)  # both workloads once: their modules and sockets are warm
        fds, threads = open_fds(), threading.active_count()
        for rep in range(2, 7):
            target("ping", rep)
        target("tp", 2)
        assert open_fds() == fds, f"{open_fds() - fds} file descriptors more after 6 targets"
        assert threading.active_count() == threads
        assert os.readlink("/proc/self/ns/net") == net_before
        metas = [read_meta(p) for p in sorted((tmp_path / "results/raw").glob("*/*/rep*"))]
        assert len(metas) == 8
        assert sum(not m["deployment"]["reused"] for m in metas) == 1  # deployed once, then reused
    finally:
        NetnsBackend(prefix).teardown()


def test_a_batch_measures_each_missing_target_and_names_the_failed_ones(prefix, tmp_path, tools_available):
    """rule run_batch (docs/decisions.md): the targets one after the other, a complete one left
    alone, a failed one logged while the rest are measured, then the job fails naming it; only a
    batch without failures writes its record."""
    if shutil.which("uperf"):
        pytest.skip("uperf is installed here: the 'broken' workload would run")
    cfg = small_config(prefix, tmp_path / "results")
    cfg["workloads"]["ping"] = {"kind": "latency", "count": 3, "interval_s": 0.02}
    cfg["workloads"]["broken"] = {**cfg["workloads"]["tp"], "generator": "uperf"}
    cfg["sweep"]["workloads"] += ["ping", "broken"]
    cfg = config.validate(cfg)
    setup = "single-bridge-iptables-c2"
    raw = tmp_path / "results/raw" / setup
    try:
        done = runner.measure_batch(cfg, [f"{setup}/ping/rep1"], str(tmp_path / "first.json"), str(tmp_path / "first.log"))
        assert done["measured"] == [f"{setup}/ping/rep1"]
        assert json.loads((tmp_path / "first.json").read_text()) == done
        started = read_meta(raw / "ping/rep1")["started_at"]
        assert not (raw / "ping/rep1/meta.json").stat().st_mode & 0o222  # write-protected, as protected() did

        targets = [f"{setup}/ping/rep1", f"{setup}/broken/rep1", f"{setup}/ping/rep2"]
        with pytest.raises(WorkloadError, match=f"1 of the 3 targets of this batch failed(.|\n)*{setup}/broken/rep1"):
            runner.measure_batch(cfg, targets, str(tmp_path / "second.json"), str(tmp_path / "second.log"))
        assert not (tmp_path / "second.json").exists()
        assert read_meta(raw / "ping/rep1")["started_at"] == started  # complete before: not measured again
        assert read_meta(raw / "ping/rep2")["target"]["rep"] == 2  # measured after the failed one
        assert not (raw / "broken/rep1").exists()
        assert f"{setup}/broken/rep1: missing tools" in (tmp_path / "second.log").read_text()
    finally:
        NetnsBackend(prefix).teardown()


def test_missing_generator_is_named_before_deploying(prefix, tmp_path):
    cfg = small_config(prefix, tmp_path / "results")
    cfg["workloads"]["tp"]["generator"] = "uperf"
    if shutil.which("uperf"):
        pytest.skip("uperf is installed here")
    with pytest.raises(WorkloadError, match="missing tools: \\['uperf'\\]"):
        runner.measure(cfg, "single-bridge-iptables-c2", "tp", 1, tmp_path / "out")
    assert not any(cleanup.leftovers(prefix).values())


def test_deploy_prints_the_documented_json_and_teardown_removes_it(prefix):
    result = cli("deploy", "single-bridge-iptables-c8", "--prefix", prefix)
    described = json.loads(result.stdout)
    assert described["setup"] == "single-bridge-iptables-c8"
    assert len(described["containers"]) == 8
    assert set(described["containers"][0]) >= {"name", "netns", "ip", "host"}
    assert described["allowed_pairs"] == [["c01", "c02"], ["c03", "c04"], ["c05", "c06"], ["c07", "c08"]]
    assert set(described["hosts"][0]) >= {"name", "netns", "underlay_ip", "underlay_dev"}
    assert all(c["ip"].startswith("198.19.") for c in described["containers"])
    # the deployment is live after the command ends: the whitelisted pair talks
    first = described["containers"][0]
    ping = subprocess.run(proc.in_netns(first["netns"], ["ping", "-c", "1", "-W", "1", described["containers"][1]["ip"]]),
                          capture_output=True)
    assert ping.returncode == 0
    cli("teardown", "--prefix", prefix)
    assert not any(cleanup.leftovers(prefix).values())


def test_deploy_refuses_a_bad_setup_id(prefix):
    result = cli("deploy", "single-bridge-c8", "--prefix", prefix, check=False)
    assert result.returncode == 1
    assert "single-bridge-iptables-c8" in result.stderr  # the example of a valid id


def test_setups_json_has_the_documented_keys():
    rows = json.loads(cli("setups", "--json", "--config", "config/full.yaml").stdout)
    assert {"id", "scenario", "solution", "filter", "tunnel", "containers", "supported", "reason"} <= set(rows[0])
    assert "single-bridge-iptables-c32" in {r["id"] for r in rows}


def test_preflight_reports_tools_and_combinations():
    report = json.loads(cli("preflight", "--json").stdout)
    assert report["tools"]["ping"]["path"]
    assert {"bridge"} <= {c["solution"] for c in report["combinations"] if c["supported"]}


def test_parse_writes_parquet_with_the_summary(tmp_path):
    out = tmp_path / "ping.parquet"
    cli("parse", "ping", str(SHARED_FIXTURES / "ping/basic_20.txt"), "-o", str(out))
    table = pq.read_table(out)
    assert table.num_rows == 20 and "rtt_ms" in table.column_names
    assert json.loads(table.schema.metadata[b"seconetbench.summary"])["packets_received"] == 20


def test_parse_error_names_the_file(tmp_path):
    bad = tmp_path / "truncated.txt"
    bad.write_text("PING 198.18.20.2 (198.18.20.2) 56(84) bytes of data.\n")
    result = cli("parse", "ping", str(bad), "-o", str(tmp_path / "x.parquet"), check=False)
    assert result.returncode == 1 and str(bad) in result.stderr


def test_clean_removes_everything_of_a_prefix(prefix):
    NetnsBackend(prefix).deploy(SetupSpec("single", "bridge", "none", 2), verify=False)
    assert cleanup.leftovers(prefix)["netns"]
    removed = json.loads(cli("clean", "--prefix", prefix, "--force").stdout)
    assert len(removed["netns"]) == 3
    assert not any(cleanup.leftovers(prefix).values())


HOLD_LOCK = """
import sys
from pathlib import Path
from seconetbench.runner import HostLock
with HostLock(timeout_s=0):
    print("held", flush=True)
    sys.stdin.readline()  # holds until told (a line, or the end of its stdin)
    Path(sys.argv[1]).write_text("released")
"""

MEASURE = """
import json, sys
from seconetbench import config, runner
cfg = config.validate(json.loads(sys.argv[1]))
runner.measure(cfg, "single-bridge-iptables-c2", "tp", 1, sys.argv[2])
"""


def test_a_second_invocation_never_measures_while_the_first_holds_the_host(prefix, tmp_path):
    """Two processes with the same host lock: the second waits, then fails naming the holder."""
    env = {**os.environ, "SECONETBENCH_LOCK": str(tmp_path / "host.lock")}
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(tmp_path / "released")], env=env,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        cfg = small_config(prefix, tmp_path / "results")
        cfg["testbed"]["lock_timeout_s"] = 1
        out = tmp_path / "results/raw/x/tp/rep1"
        second = subprocess.run([sys.executable, "-c", MEASURE, json.dumps(cfg), str(out)], env=env,
                                capture_output=True, text=True, timeout=60)
        assert second.returncode != 0
        assert "another measurement holds" in second.stderr and f"pid {holder.pid}" in second.stderr
        assert not out.exists()
        assert not cleanup.leftovers(prefix)["netns"]  # it did not even deploy
    finally:
        holder.kill()
        holder.wait()


A_PRIVILEGED_TEST = """
import os
from pathlib import Path
import pytest

@pytest.mark.privileged
def test_body():
    # it runs only once the holder has let go of the host
    assert Path(os.environ["RELEASED"]).read_text() == "released"
    Path(os.environ["BODY_RAN"]).write_text("ran")
"""


def test_a_privileged_test_waits_while_another_process_holds_the_measurement_lock(tmp_path):
    """A sweep's measurement holds the host lock (here a stand-in holder): a privileged test run
    meanwhile says it waits, does not start, and runs once the holder lets go."""
    env = {**os.environ, "SECONETBENCH_LOCK": str(tmp_path / "host.lock"), "PYTHONUNBUFFERED": "1",
           "RELEASED": str(tmp_path / "released"), "BODY_RAN": str(tmp_path / "body_ran")}
    (tmp_path / "test_inner.py").write_text(A_PRIVILEGED_TEST)
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, env["RELEASED"]], env=env,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    inner = None
    try:
        assert holder.stdout.readline().strip() == "held"
        # the repository's conftest as a plugin: the same fixtures as the suite's own tests;
        # `timeout` ends it (and so this test, which holds the host's lock) should it never say it waits
        inner = subprocess.Popen(["timeout", "300", sys.executable, "-m", "pytest", "-p", "tests.conftest",
                                  "-c", str(REPO / "pyproject.toml"), "--rootdir", str(REPO), "-p", "no:cacheprovider",
                                  "-q", str(tmp_path / "test_inner.py")],
                                 cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        said = []
        for line in inner.stdout:
            said.append(line)
            if "waits for the measurement lock" in line:
                break
        assert said and "waits for the measurement lock" in said[-1] and f"pid {holder.pid}" in said[-1], said
        assert not (tmp_path / "body_ran").exists()
        holder.communicate("go\n")  # the measurement ends
        rest, _ = inner.communicate(timeout=120)
        assert inner.returncode == 0, "".join(said) + rest
        assert (tmp_path / "body_ran").read_text() == "ran"
    finally:
        for process in (holder, inner):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()


def test_deploy_prints_hosts_and_underlay_of_a_multi_host_setup(prefix):
    described = json.loads(cli("deploy", "multi-vxlan-iptables-c4", "--prefix", prefix).stdout)
    try:
        assert [h["name"] for h in described["hosts"]] == ["h1", "h2"]
        assert [h["underlay_ip"] for h in described["hosts"]] == ["198.18.0.1", "198.18.0.2"]
        assert all(h["underlay_dev"].startswith(prefix) for h in described["hosts"])
        hosts_of_pairs = {(c["name"], c["host"]) for c in described["containers"]}
        for sender, sink in described["allowed_pairs"]:
            assert dict(hosts_of_pairs)[sender] != dict(hosts_of_pairs)[sink]  # every pair crosses hosts
        assert described["facts"]["tunnel"]["name"] == "vxlan"
    finally:
        cli("teardown", "--prefix", prefix)
    assert not any(cleanup.leftovers(prefix).values())


def test_deploy_with_a_config_deploys_exactly_what_its_sweep_measures(prefix, tmp_path):
    # the id multi-vxlan-none-c2 does not say how containers attach to their host: the config does
    path = tmp_path / "routing.yaml"
    path.write_text("sweep:\n"
                    "  multi: {tunnels: [vxlan], filters: [none], containers: [2], solution: routing}\n"
                    "  workloads: [latency]\n"
                    "workloads: {latency: {kind: latency}}\n")
    described = json.loads(cli("deploy", "multi-vxlan-none-c2", "--config", str(path), "--prefix", prefix).stdout)
    try:
        assert described["spec"]["solution"] == "routing"
        assert described["spec"] == config_sweep_setup(path, "multi-vxlan-none-c2").to_dict()
    finally:
        cli("teardown", "--prefix", prefix)
    assert not any(cleanup.leftovers(prefix).values())
    refused = cli("deploy", "multi-gre-none-c2", "--config", str(path), "--prefix", prefix, check=False)
    assert refused.returncode == 1 and "no setup 'multi-gre-none-c2' in this sweep; known: ['multi-vxlan-none-c2']" in refused.stderr
    assert not any(cleanup.leftovers(prefix).values())


def config_sweep_setup(path: Path, setup_id: str) -> SetupSpec:
    from seconetbench.sweep import expand

    return expand(config.load_files(path)).setup(setup_id)


def test_a_setup_that_cannot_deploy_is_not_measured_and_the_failure_is_kept(prefix, tmp_path, monkeypatch):
    """A machine without iptables-restore (a PATH holding every other tool): the deploy refuses
    with the reason, nothing is measured, and the failure is kept with the results."""
    tools = tmp_path / "bin"
    tools.mkdir()
    for tool in ("ip", "ping", "iperf3", "iptables", "tc", "nsenter"):
        (tools / tool).symlink_to(shutil.which(tool))
    monkeypatch.setenv("PATH", str(tools))
    cfg = small_config(prefix, tmp_path / "results")
    out = tmp_path / "results/raw/single-bridge-iptables-c2/tp/rep1"
    with pytest.raises(WorkloadError, match=r"^single-bridge-iptables-c2/tp/rep1: .*iptables-restore"):
        runner.measure(cfg, "single-bridge-iptables-c2", "tp", 1, out)
    assert not out.exists()
    kept = list((tmp_path / "results/failed").glob("single-bridge-iptables-c2--tp--rep1--*"))
    assert len(kept) == 1 and "iptables-restore" in (kept[0] / "error.txt").read_text()
    assert not any(cleanup.leftovers(prefix).values())


def test_a_deploy_failing_for_any_cause_is_kept_with_the_failed_tool(prefix, tmp_path, monkeypatch):
    """Not only a DeployError: a tool that fails mid-deploy (an iptables-restore that exits 1,
    /bin/false in its place on PATH) fails the target by name with a ToolFailed naming the
    command and its exit code, and the failure is kept under results/failed/."""
    tools = tmp_path / "bin"
    tools.mkdir()
    for tool in ("ip", "ping", "iperf3", "iptables", "tc", "nsenter", "sysctl", "ethtool"):
        if shutil.which(tool):
            (tools / tool).symlink_to(shutil.which(tool))
    (tools / "iptables-restore").symlink_to(shutil.which("false"))
    monkeypatch.setenv("PATH", str(tools))
    cfg = small_config(prefix, tmp_path / "results")
    out = tmp_path / "results/raw/single-bridge-iptables-c2/tp/rep1"
    with pytest.raises(WorkloadError, match=r"^single-bridge-iptables-c2/tp/rep1: ToolFailed: 'iptables-restore "
                                            r"--noflush' in \S+ failed \(exit 1\)") as caught:
        runner.measure(cfg, "single-bridge-iptables-c2", "tp", 1, out)
    assert isinstance(caught.value.__cause__, ToolFailed) and caught.value.__cause__.exit_code == 1
    assert not out.exists()
    kept = list((tmp_path / "results/failed").glob("single-bridge-iptables-c2--tp--rep1--*"))
    assert len(kept) == 1
    error = (kept[0] / "error.txt").read_text()
    assert "'iptables-restore --noflush'" in error and "failed (exit 1)" in error and "ToolFailed" in error
    assert not any(cleanup.leftovers(prefix).values())


def test_a_failed_deploy_keeps_the_logs_of_the_daemons_it_had_started(prefix, tmp_path, monkeypatch):
    """What a deploy produced before it failed is evidence: wireguard-go's logs (written under the
    run's state directory, which the teardown removes) are copied out first."""
    tools = tmp_path / "bin"
    tools.mkdir()
    (tools / "iptables-restore").symlink_to(shutil.which("false"))
    monkeypatch.setenv("PATH", f"{tools}:{os.environ['PATH']}")  # the filter fails, after the tunnel
    backend = NetnsBackend(prefix)
    keep = tmp_path / "kept"
    with pytest.raises(ToolFailed, match="iptables-restore"):
        backend.deploy(SetupSpec.parse("multi-wireguard-iptables-c2", multi_solution="bridge"), keep=keep)
    logs = sorted(p.name for p in (keep / "deploy").rglob("*") if p.is_file())
    assert any(name.startswith("wireguard-go") for name in logs), logs
    assert not any(cleanup.leftovers(prefix).values())
