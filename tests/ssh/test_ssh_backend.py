"""The ssh backend end to end on namespace lab hosts with their own sshd: a deploy built by the
hosts' agents, traffic between containers on different hosts, faults, teardown and clean, and
a multi-host sweep through Snakemake."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from seconetbench import config as configuration
from seconetbench import tables
from seconetbench.backends.ssh import SshBackend
from seconetbench.errors import DeployError, HostError
from seconetbench.spec import SetupSpec
from seconetbench.testbed import cleanup
from tests.conftest import REPO, owned_prefix

pytestmark = [pytest.mark.ssh, pytest.mark.privileged]

SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
TUNNELS = ["vxlan", "wireguard", "ipsec", "openvpn", "tinc"]


@pytest.fixture
def run_prefix():
    """The deployment's own run prefix: not the lab's (cleaning the run must leave the lab)."""
    with owned_prefix("scns") as value:
        yield value


def in_container(deployment, name: str, argv: list[str], timeout: float = 20) -> subprocess.CompletedProcess:
    return subprocess.run(deployment.container(name).access.run_argv(argv), capture_output=True, text=True,
                          timeout=timeout)


def test_a_tunnel_is_built_by_the_hosts_agents_and_carries_the_pairs_traffic(lab, run_prefix):
    backend = SshBackend(run_prefix, lab.testbed_config())
    try:
        deployment = backend.deploy(SetupSpec.parse("multi-vxlan-none-c2-ssh", "bridge"))
        check = deployment.facts["verification"]
        assert check["passed"] and check["from_inside"] and check["probes"] > 0
        capture = deployment.facts["tunnel"]["underlay_capture"]
        assert capture["passed"] and capture["encapsulated"] > 0
        sender, sink = deployment.pairs[0]
        assert deployment.container(sender).host != deployment.container(sink).host
        ping = in_container(deployment, sender, ["ping", "-n", "-c", "2", "-W", "2", deployment.container(sink).ip])
        assert ping.returncode == 0, ping.stderr
        # each host built its own part: lab host 1 holds the macvlan in host namespace h1 (its
        # parent is that lab host's eth1), and the agent recorded that host's kernel
        assert set(deployment.facts["hosts"]) == {h.name for h in lab.hosts}
        first = deployment.hosts[0]
        link = backend.channel(first.name).run(["ip", "-n", first.netns, "-d", "link", "show", first.underlay_dev])
        assert "macvlan mode bridge" in link.stdout
        # a second process reuses what the first built (fingerprint and each host's health)
        again = SshBackend(run_prefix, lab.testbed_config())
        reused, was_reused = again.deploy_or_reuse(SetupSpec.parse("multi-vxlan-none-c2-ssh", "bridge"))
        again.close()
        assert was_reused and reused.facts["fingerprint"] == deployment.facts["fingerprint"]
    finally:
        backend.teardown()
    left = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert run_prefix not in left
    assert all(f"{lab.prefix}-lab{i}" in left for i in lab.indices)  # the lab itself stays


def test_a_host_that_cannot_be_reached_fails_the_deploy_naming_it_and_clean_names_it_too(lab, run_prefix):
    lab.kill_sshd(2)
    backend = SshBackend(run_prefix, lab.testbed_config())
    with pytest.raises(HostError, match=r"host lab2"):
        backend.deploy(SetupSpec.parse("multi-vxlan-none-c2-ssh", "bridge"))
    with pytest.raises(DeployError, match=r"lab2.*run it again|uncleaned"):
        SshBackend.clean_remote(lab.testbed_config(), run_prefix)


def test_a_host_lost_mid_workload_fails_that_command_and_ends_its_remote_side(lab, run_prefix):
    backend = SshBackend(run_prefix, lab.testbed_config())
    host = 1
    try:
        deployment = backend.deploy(SetupSpec.parse("multi-vxlan-none-c2-ssh", "bridge"), verify=False)
        sender, sink = deployment.pairs[0]
        access = deployment.container(sender).access
        # a long ping over the channel; the control link of its host goes down under it
        pinger = subprocess.Popen(access.argv(["ping", "-n", "-i", "0.2", deployment.container(sink).ip]),
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert pinger.stdout.readline()  # the first reply line: it runs
        host = next(i for i, h in enumerate(lab.hosts, 1) if h.name == access.host)
        lab.control_link(host, up=False)
        code = pinger.wait(timeout=60)
        assert code == 255  # ssh's own failure: the connection, not ping
        lab.control_link(host, up=True)
        # the wrapper ended the remote ping when the channel closed: none is left in that namespace
        remaining = subprocess.run(["ip", "netns", "pids", access.netns], capture_output=True, text=True).stdout.split()
        names = [Path(f"/proc/{pid}/comm").read_text().strip() for pid in remaining if Path(f"/proc/{pid}").exists()]
        assert "ping" not in names
    finally:
        lab.control_link(host, up=True)
        backend.teardown()


def sweep_config(lab, workdir: Path, tunnels: list[str] = TUNNELS,
                 workloads: tuple[str, ...] = ("latency", "throughput_653"), repetitions: int = 1) -> Path:
    config = {
        "results_dir": "results",
        "repetitions": repetitions,
        "testbed": lab.testbed_config(),
        "sweep": {"multi": {"tunnels": tunnels, "filters": ["none"], "containers": [2], "hosts": 2,
                            "solution": "bridge"},
                  "workloads": list(workloads)},
        "workloads": {"latency": {"kind": "latency", "count": 5, "interval_s": 0.05},
                      "throughput_653": {"kind": "throughput", "payload_bytes": 653, "duration_s": 1}},
    }
    path = workdir / "ssh.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.slow
def test_a_multi_host_sweep_runs_through_the_ssh_backend(lab, tmp_path):
    config = sweep_config(lab, tmp_path)
    argv = [SNAKEMAKE, "--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path), "--cores", "2",
            "--configfile", str(config)]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=1500)
    assert result.returncode == 0, f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    latency = tables.read(tmp_path / "results" / "tables" / "latency.parquet")
    throughput = tables.read(tmp_path / "results" / "tables" / "throughput.parquet")
    for frame in (latency, throughput):
        assert sorted(frame["tunnel"].unique()) == sorted(TUNNELS)
        assert frame["implementation"].notna().all()
    assert (throughput["throughput_mbps"] > 0).all()
    meta = json.loads(next((tmp_path / "results" / "raw").glob("multi-wireguard-*/latency/rep1/meta.json")).read_text())
    assert meta["setup"]["backend"] == "ssh" and set(meta["deployment"]["hosts"]) == {h.name for h in lab.hosts}
    # the run's prefix only: without --prefix clean removes every run's objects (the lab's too)
    run = configuration.run_prefix({"results_dir": str(tmp_path / "results")})
    clean = subprocess.run([sys.executable, "-m", "seconetbench", "clean", "--backend", "ssh", "--config", str(config),
                            "--prefix", run], capture_output=True, text=True, timeout=300)
    assert clean.returncode == 0, clean.stderr
    assert not any(cleanup.leftovers(run).values())


def complete_targets(workdir: Path) -> dict[str, float]:
    """Raw targets that are complete (meta.json) -> when they started."""
    return {str(p.parent.relative_to(workdir / "results" / "raw")): json.loads(p.read_text())["started_at"]
            for p in (workdir / "results" / "raw").glob("*/*/rep*/meta.json")}


@pytest.mark.slow
def test_a_host_lost_mid_sweep_fails_its_targets_naming_it_and_a_rerun_completes_only_those(lab, tmp_path):
    from seconetbench.tunnels._common import wait_until

    config = sweep_config(lab, tmp_path, tunnels=["vxlan", "wireguard"], workloads=("latency",), repetitions=2)
    argv = [SNAKEMAKE, "--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path), "--cores", "1",
            "--keep-going", "--configfile", str(config)]
    sweep = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        # the event: one target is complete; then the second host's sshd dies (its connection too)
        assert wait_until(lambda: complete_targets(tmp_path) or sweep.poll() is not None, 900)
        lab.kill_sshd(2)
        output, _ = sweep.communicate(timeout=900)
    finally:
        if sweep.poll() is None:
            sweep.kill()
    assert sweep.returncode != 0, output[-3000:]
    before = complete_targets(tmp_path)
    assert 1 <= len(before) < 4
    logs = [p.read_text() for p in (tmp_path / "results" / "logs" / "run_batch").glob("*/*/rep*.log")]
    assert any("host lab2" in log for log in logs), output[-3000:]
    # the workflow's teardown cleaned the reachable host and named the other
    assert "lab2" in output
    lab.start_sshd(2)
    again = subprocess.run(argv, capture_output=True, text=True, timeout=1500)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    after = complete_targets(tmp_path)
    assert len(after) == 4
    assert all(after[target] == started for target, started in before.items())  # kept, not measured again
    run = configuration.run_prefix({"results_dir": str(tmp_path / "results")})
    assert not any(cleanup.leftovers(run).values())  # the workflow's teardown on every host
