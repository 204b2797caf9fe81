"""The docker backend for real: a real dockerd (started by the framework in a namespace of the
run), real containers from the registry-free image, real traffic between them.

Most tests share one managed engine (session fixture `engine`) and reach it as an engine given
by testbed.docker.host; the lifecycle test starts, kills and stops an engine of its own prefix.
Without docker.io or debootstrap the tests skip, except under CI=true, where they fail: a green
CI must not hide a missing install step.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess

import psutil
import pytest

from seconetbench import config, proc, runner, security
from seconetbench.backends.docker import DockerBackend
from seconetbench.engines import dockerd
from seconetbench.engines import image as base_image
from seconetbench.meta import read_meta
from seconetbench.spec import SetupSpec
from seconetbench.testbed import cleanup, netlink
from tests.conftest import HOST, parsed_as_the_workflow_does

pytestmark = [pytest.mark.privileged, pytest.mark.docker, pytest.mark.slow]  # an engine, an image build


@pytest.fixture(scope="session")
def docker_tools():
    missing = [t for t in ("dockerd", "containerd", "runc", "debootstrap", "nsenter") if shutil.which(t) is None]
    if missing:
        message = f"docker backend tools missing: {missing} (tools/setup.sh installs docker.io, containerd, runc, debootstrap)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="session")
def engine(docker_tools):
    """One managed engine for the tests that do not test the engine itself."""
    engine = dockerd.DockerEngine("scnd" + secrets.token_hex(2))
    # building the image and the running engine would disturb a sweep: hold the host meanwhile
    with HOST.held():
        try:
            engine.ensure()
            base_image.ensure(engine.client())  # builds the cached tarball the first time (~45 s)
            yield engine
        finally:
            engine.stop()
    assert not dockerd.leftovers(engine.prefix)["docker"]
    assert engine.netns not in netlink.list_netns()


def labelled(client, prefix: str) -> list:
    return client.containers.list(all=True, filters={"label": f"{dockerd.LABEL}={prefix}"})


def on_engine(engine, prefix: str, results) -> DockerBackend:
    return DockerBackend(prefix, {"docker": {"host": engine.url, "image": None}}, results)


@pytest.mark.parametrize("containers", [2, 4])
def test_bridge_iptables_with_real_containers(prefix, tmp_path, engine, containers):
    backend = on_engine(engine, prefix, tmp_path)
    deployment = backend.deploy(SetupSpec("single", "bridge", "iptables", containers, backend="docker"))
    client = engine.client()
    try:
        verification = deployment.facts["verification"]
        assert verification["passed"], verification
        # They are Docker's containers: listed by the SDK with our label, running, and the
        # planned namespace is the container's own (same inode as its init's).
        found = {c.name: c for c in labelled(client, prefix)}
        assert sorted(found) == [f"{prefix}-{c.name}" for c in deployment.containers]
        for container in deployment.containers:
            record = deployment.facts["docker"]["containers"][container.name]
            assert found[record["name"]].status == "running"
            assert os.stat(f"/proc/{record['pid']}/ns/net").st_ino == netlink.netns_inode(container.netns)
            # a program through exec_prefix runs in the container's file system (its image)
            inside = subprocess.run(proc.in_container(container, ["sh", "-c", "cat /etc/hostname; ls /etc/debian_version"]),
                                    capture_output=True, text=True, check=True).stdout.split()
            assert inside == [container.name, "/etc/debian_version"]
        facts = deployment.facts["docker"]
        assert facts["engine"]["storage_driver"] == "overlay2" and facts["engine"]["server_api_version"]
        assert facts["runtime"] == f"{engine.prefix}-runc"
        assert facts["image"]["tag"] == base_image.tag()
        assert facts["image"]["versions"]["iperf3"].startswith("3.")
        assert backend.healthy(deployment) is None
        again, reused = backend.deploy_or_reuse(SetupSpec("single", "bridge", "iptables", containers, backend="docker"))
        assert reused
        # The whitelist is the framework's filter, not Docker's: a flushed chain is noticed.
        if containers > 2:
            proc.run_in(deployment.hosts[0].netns, ["iptables", "-F", f"{prefix.upper()}-ALLOW"])
            assert not security.check_whitelist(deployment)["passed"]
    finally:
        backend.teardown()
    assert labelled(client, prefix) == []
    assert not any(cleanup.leftovers(prefix).values())


def test_runner_measures_ping_iperf3_and_ditg_inside_containers(prefix, tmp_path, engine):
    results = tmp_path / "results"
    cfg = config.validate({
        "results_dir": str(results), "repetitions": 1,
        "testbed": {"prefix": prefix, "backend": "docker", "docker": {"host": engine.url}},
        "sweep": {"single": {"solutions": ["bridge"], "filters": ["iptables"], "containers": [4]},
                  "workloads": ["lat", "tp", "q3", "pol"]},
        "workloads": {"lat": {"kind": "latency", "count": 5, "interval_s": 0.05},
                      "tp": {"kind": "throughput", "payload_bytes": 1370, "duration_s": 1, "generator": "iperf3"},
                      "q3": {"kind": "quake3", "flows": 2, "duration_s": 2},
                      "pol": {"kind": "policy_update", "changes": 2, "timeout_s": 3}},
    })
    setup = "single-bridge-iptables-c4-docker"
    backend = DockerBackend(prefix, cfg["testbed"], results)
    try:
        raws = {w: runner.measure(cfg, setup, w, 1, results / "raw" / setup / w / "rep1")
                for w in ("lat", "tp", "q3", "pol")}
        rows = {w: parsed_as_the_workflow_does(raw, tmp_path / f"{w}.parquet") for w, raw in raws.items()}
        assert len(rows["lat"]) == 2 * 5 and (rows["lat"]["rtt_ms"] > 0).all()
        assert len(rows["tp"]) == 2 and (rows["tp"]["throughput_mbps"] > 10).all()
        # ITGRecv ran in the sink container and wrote its log through the results bind mount
        assert (rows["q3"]["delay_ms"] > 0).any()
        # the probers ran in the containers (the image's python3): a whitelist change live, both ways
        new = rows["pol"][rows["pol"]["connection"] == "new"]
        assert len(new) == 2 * 2 * 2 and (new["status"] == "effect").all() and (new["latency_ms"] > 0).all()  # changes x directions x udp/tcp
        facts = read_meta(raws["tp"])["deployment"]["docker"]
        assert facts["engine"]["url"] == engine.url and not facts["engine"]["managed"]
        # the generators were the containers' processes: their recorded argv and the image's binary
        generators = read_meta(raws["tp"])["workload_run"]["processes"]
        assert generators and all(p["argv"][0] == "iperf3" for p in generators)
        probers = read_meta(raws["pol"])["workload_run"]["processes"]
        assert len(probers) == 2 and all(p["argv"][0] == "python3" for p in probers)
    finally:
        backend.teardown()
    assert labelled(engine.client(), prefix) == []


def test_managed_engine_killed_is_detected_recovered_and_cleaned(prefix, tmp_path, docker_tools):
    backend = DockerBackend(prefix, {}, tmp_path)
    setup = SetupSpec("single", "bridge", "none", 2, backend="docker")
    deployment = backend.deploy(setup)
    engine = backend.engine
    assert engine.netns == f"{prefix}-dk" and engine.netns in netlink.list_netns()
    # the engine runs in its own namespace, not the root one
    daemon = engine.process()
    assert os.stat(f"/proc/{daemon.pid}/ns/net").st_ino == netlink.netns_inode(engine.netns)
    assert deployment.facts["docker"]["engine"]["managed"]
    assert deployment.facts["docker"]["image"]["built_by"] == "seconetbench"
    assert backend.healthy(deployment) is None

    os.kill(daemon.pid, signal.SIGKILL)
    psutil.Process(daemon.pid).wait(5)
    assert "does not answer" in backend.healthy(deployment) or "not running" in backend.healthy(deployment)
    again, reused = backend.deploy_or_reuse(setup)  # a new engine, a new deployment
    assert not reused and backend.healthy(again) is None
    assert engine.process().pid != daemon.pid

    # A crash of the whole run: dockerd killed, nothing torn down. `seconetbench clean` (this
    # call) removes the engine's containerd and shims, mounts, namespace, files and cgroups.
    helpers = proc.processes_in_netns(netlink.netns_inode(engine.netns))
    os.kill(engine.process().pid, signal.SIGKILL)
    removed = cleanup.remove(prefix)
    assert removed["docker"] and f"{prefix}-c01" in removed["netns"]
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in helpers)
    assert not engine.directory.exists() and not engine.cgroups()


def test_runc_wrapper_clamps_negative_oom_score_adj(engine):
    """Kubelet asks for oom_score_adj -998; without CAP_SYS_RESOURCE runc would fail on it."""
    client = engine.client()
    container = client.containers.run(base_image.tag(), ["sleep", "infinity"], detach=True, network_mode="none",
                                      oom_score_adj=-500, labels={dockerd.LABEL: engine.prefix},
                                      name=f"{engine.prefix}-oom")
    try:
        container.reload()
        assert container.status == "running"
        pid = container.attrs["State"]["Pid"]
        with open(f"/proc/{pid}/oom_score_adj") as handle:
            assert int(handle.read()) == 0
    finally:
        container.remove(force=True)


def test_image_cache_is_reused(engine):
    tarball = base_image.tarball_path()
    before = tarball.stat().st_mtime_ns
    manifest = base_image.build_tarball()
    assert not manifest["built_now"]  # no debootstrap
    assert tarball.stat().st_mtime_ns == before
    assert manifest["tag"] == base_image.tag() and set(manifest["packages"]) == set(base_image.PACKAGES)
    assert not list(base_image.CACHE_DIR.glob("build-*"))  # the debootstrap directory is gone
    # an image the engine lacks is an error naming the key, never a pull
    from seconetbench.errors import DeployError

    with pytest.raises(DeployError, match="testbed.docker.image 'scn-absent:1' is not in the engine"):
        base_image.ensure(engine.client(), "scn-absent:1")
