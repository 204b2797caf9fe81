"""Tier 3: real pods on the local cluster's kubelet (dockershim on the managed Docker engine,
CNI bridge), real traffic between them, exec and teardown through the real API server.

What this proves: the backend places and starts pods, the workloads' generators run in them
through exec and their output is parsed; the isolation check sees every path; a CNI that does
not enforce NetworkPolicy (this cluster's bridge plugin) is detected and the setup refused,
which proves the check can fail; a multi-node setup on one node fails at once with the reason;
ending a local exec launcher ends its remote process; teardown and the crash clean path leave no
namespace, pod or policy. Not proven here: NetworkPolicy enforcement by a real CNI, cross-node
traffic (one node) — those need a real cluster (docs/kubernetes.md)."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from kubernetes import client, config

from seconetbench import config as configuration
from seconetbench import proc, sweep
from seconetbench.backends import kubernetes as k8s
from seconetbench.backends import k8s_exec
from seconetbench.errors import DeployError
from seconetbench.spec import SetupSpec, WorkloadSpec
from seconetbench.workloads import get_workload
from seconetbench.workloads.base import RunContext

pytestmark = [pytest.mark.privileged, pytest.mark.kubernetes, pytest.mark.slow]  # a local cluster


def namespaces(testbed, prefix):
    core = client.CoreV1Api(config.new_client_from_config(testbed["kubernetes"]["kubeconfig"]))
    return [n.metadata.name for n in core.list_namespace(label_selector=f"seconetbench.io/prefix={prefix}").items]


@pytest.fixture
def backend(testbed, prefix):
    backend = k8s.KubernetesBackend(prefix, testbed)
    yield backend
    backend.teardown()
    assert namespaces(testbed, prefix) == [], "teardown left a namespace"


def test_deploy_measure_and_teardown(backend, testbed, prefix, tmp_path):
    deployment = backend.deploy(SetupSpec("single", "cni", "none", 4, backend="kubernetes"))
    facts = deployment.facts["kubernetes"]
    assert facts["server_version"] == "v1.20.2" and facts["cluster_kind"] == "local-single-node-bridge-cni"
    assert facts["cni"]["name"] == "bridge" and facts["cni"]["enforces_networkpolicy"] is False
    assert set(facts["pod_mtu"].values()) == {1500} and facts["nodes"][0]["kernel"]
    assert len(set(facts["placement"].values())) == 1
    assert all(c.ip.startswith("198.18.253.") for c in deployment.containers)
    check = deployment.facts["verification"]
    assert check["passed"] and check["probes"] == 24 and check["expected_dropped"] == 0, check
    # real traffic through exec: the workloads' own code paths (exec_prefix, listening hook, and
    # for D-ITG the file hooks that copy its script and logs in and out of the pods)
    ditg = sweep.expand(configuration.validate({
        "sweep": {"single": {"solutions": ["bridge"], "filters": ["none"], "containers": [2]}, "workloads": ["q"]},
        "workloads": {"q": {"kind": "quake3", "flows": 2, "duration_s": 2}}})).workload("q")
    for spec in (WorkloadSpec("latency", "latency", {"count": 5, "interval_s": 0.2, "payload_bytes": 56}),
                 WorkloadSpec("tp", "throughput", {"payload_bytes": 1370, "duration_s": 2, "interval_s": 1,
                                                   "generator": "iperf3"}), ditg):
        out = tmp_path / spec.name
        out.mkdir()
        workload = get_workload(spec)
        facts_run = workload.run(RunContext(deployment, backend.registry, out, spec.name, backend))
        frame = workload.parse(out, {"workload_run": facts_run})
        assert set(frame["pair"]) == {"c01-c02", "c03-c04"}
        if spec.kind == "latency":
            assert frame["received"].all() and (frame["rtt_ms"] > 0).all()
        elif spec.kind == "quake3":
            whole = frame[frame["interval"] == 0]  # per flow, from ITGDec's summaries of the pulled logs
            assert len(whole) == 4 and (whole["packets"] > 0).all() and (whole["packets"] <= whole["packets_sent"]).all()
            assert not list(out.glob("*.log")), "binary logs are decoded, then removed"
        else:
            assert (frame["throughput_mbps"] > 100).all(), frame
    assert backend.healthy(deployment) is None
    reused, was_reused = backend.deploy_or_reuse(deployment.setup)
    assert was_reused and reused.containers[0].ip == deployment.containers[0].ip
    backend.teardown()
    assert namespaces(testbed, prefix) == []


def test_networkpolicy_is_not_enforced_here_and_the_setup_is_refused(backend, testbed, prefix):
    with pytest.raises(DeployError, match="CNI 'bridge' .* does not enforce NetworkPolicy") as raised:
        backend.deploy(SetupSpec("single", "cni", "networkpolicy", 4, backend="kubernetes"))
    # every non-whitelisted probe (4 sources x 3 protocols) got through: the check did fail
    assert "12 violations" in str(raised.value) and "reachable but not whitelisted" in str(raised.value)
    assert namespaces(testbed, prefix) == [], "a refused deploy must not leave its namespace"


def test_multi_node_setup_on_one_node_fails_at_once(backend, testbed, prefix):
    # at once: refused from the node count, before anything is created in the cluster
    with pytest.raises(DeployError, match="needs 2 Ready, schedulable nodes .* has 1"):
        backend.deploy(SetupSpec("multi", "cni", "none", 2, tunnel="cni", hosts=2, backend="kubernetes"))
    assert namespaces(testbed, prefix) == []


def test_a_named_cni_must_match_the_cluster(backend):
    with pytest.raises(DeployError, match="runs CNI 'bridge' .*not 'calico'"):
        backend.deploy(SetupSpec("single", "calico", "none", 2, backend="kubernetes"))


def test_ending_the_local_launcher_ends_the_remote_process(backend, tmp_path):
    deployment = backend.deploy(SetupSpec("single", "cni", "none", 2, backend="kubernetes"), verify=False)
    pod = deployment.containers[0]
    launched = proc.spawn(proc.in_container(pod, ["sleep", "313"]), tmp_path / "o", tmp_path / "e", backend.registry)
    context = deployment.facts["kubernetes"]["context"]

    def remote_sleeps():
        code, out, _ = backend._exec(context, pod.name, ["ps", "-eo", "args"])
        return sum(line.strip() == "sleep 313" for line in out.splitlines())

    deadline = time.monotonic() + 60  # only against a hang
    while remote_sleeps() == 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert remote_sleeps() == 1
    proc.terminate([launched])
    deadline = time.monotonic() + 60
    while remote_sleeps() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert remote_sleeps() == 0, "the remote command outlived its launcher"
    # exit codes come through the exec program unchanged
    result = subprocess.run(proc.in_container(pod, ["sh", "-c", "echo out; echo err >&2; exit 7"]),
                            capture_output=True, text=True, timeout=30)
    assert (result.returncode, result.stdout, result.stderr) == (7, "out\n", "err\n")
    assert k8s_exec.guarded(["true"])[:2] == ["sh", "-c"] and sys.executable


def test_clean_removes_a_crashed_runs_namespace(backend, testbed, prefix):
    backend.deploy(SetupSpec("single", "cni", "none", 2, backend="kubernetes"), verify=False)
    backend.state_file.unlink()  # as after kill -9: no state, the namespace is still there
    assert len(namespaces(testbed, prefix)) == 1
    removed = k8s.clean(testbed, prefix)
    assert len(removed["namespaces"]) == 1 and namespaces(testbed, prefix) == []
