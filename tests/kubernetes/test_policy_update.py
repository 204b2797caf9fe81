"""policy_update (issue 15) on the local cluster, whose CNI (bridge) does not enforce
NetworkPolicy: through runner.measure and the workflow's parse, as a sweep runs it.

What this proves: the deploy keeps the networkpolicy setup for this workload (the isolation
failure recorded, not raised) while every other workload still refuses it; the workload makes
every planned change through the real API server (a pair's NetworkPolicy created, then deleted:
read back through the API) and times each call; the table says `not_enforced` with null
latencies and the calls' control_ms, and meta.json holds the evidence. Not proven here: the data
plane's latency on a CNI that enforces policy (none here; the probing path is the one the netns
and docker tests run)."""

from __future__ import annotations

import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from seconetbench import config as configuration
from seconetbench import runner
from seconetbench.backends import k8s_manifests as manifests
from seconetbench.backends import kubernetes as k8s
from seconetbench.errors import DeployError
from seconetbench.meta import read_meta
from seconetbench.spec import SetupSpec
from tests.conftest import parsed_as_the_workflow_does

pytestmark = [pytest.mark.privileged, pytest.mark.kubernetes, pytest.mark.slow]  # a local cluster


def namespaces(testbed, prefix):
    core = client.CoreV1Api(config.new_client_from_config(testbed["kubernetes"]["kubeconfig"]))
    return [n.metadata.name for n in core.list_namespace(label_selector=f"seconetbench.io/prefix={prefix}").items]


def test_policy_update_records_not_enforced_and_makes_its_changes_through_the_api(testbed, prefix, tmp_path):
    results = tmp_path / "results"
    cfg = configuration.validate({
        "results_dir": str(results), "repetitions": 1,
        "testbed": {**testbed, "prefix": prefix, "reuse_deployment": True},
        "sweep": {"single": {"solutions": ["cni"], "filters": ["networkpolicy"], "containers": [4]},
                  "workloads": ["pol"]},
        "workloads": {"pol": {"kind": "policy_update", "changes": 4, "changes_per_pair": 2}},
    })
    setup = SetupSpec("single", "cni", "networkpolicy", 4, backend="kubernetes")
    backend = k8s.KubernetesBackend(prefix, cfg["testbed"], results)
    try:
        raw = runner.measure(cfg, setup.id, "pol", 1, results / "raw" / setup.id / "pol" / "rep1")
        rows = parsed_as_the_workflow_does(raw, tmp_path / "pol.parquet")
        meta = read_meta(raw)
        # 2 visits (c01-c03, c02-c04) x allow, deny x both directions
        assert len(rows) == 4 * 2 and (rows["status"] == "not_enforced").all(), rows
        assert rows["latency_ms"].isna().all() and rows["cut"].isna().all()
        assert (rows["control_ms"] > 0).all()  # the API calls' own time
        assert meta["deployment"]["enforcement"]["enforced"] is False
        run = meta["workload_run"]
        assert "does not enforce NetworkPolicy" in run["reason"]
        evidence = run["evidence"]
        assert evidence["cni"] == "bridge" and evidence["enforces_networkpolicy"] is False
        # the isolation check's probes between a visited pair, which the whitelist denies, got through
        assert "c01->c03 tcp: reachable but not whitelisted" in evidence["isolation_check"]["visited_pairs_reachable"]
        calls = run["api_calls"]
        assert [(c["verb"], c["name"]) for c in calls] == [
            ("create", "pair-c01-c03"), ("delete", "pair-c01-c03"), ("create", "pair-c02-c04"), ("delete", "pair-c02-c04")]
        assert all(c["uid"] and c["resource_version"] for c in calls if c["verb"] == "create")
        changes = [c for visit in run["visits"] for c in visit["changes"]]
        assert [round(c["control_s"], 6) for c in changes] == [c["control_s"] for c in calls]

        # read back through the API: the run left the deployment's whitelist as it found it ...
        deployment, reused = backend.deploy_or_reuse(setup, measures_enforcement=True)
        assert reused
        changer = backend.pair_changer(deployment)
        whitelist = ["allow-c01", "allow-c02", "allow-c03", "allow-c04", "default-deny"]
        assert changer.existing() == whitelist
        # ... and a change stores the pair's policy as the manifest says, its deny deletes it
        net = backend.clients(changer.context)["net"]
        assert changer.update_pair(deployment, "c01", "c03") > 0
        stored = net.read_namespaced_network_policy("pair-c01-c03", changer.namespace)
        expected = manifests.pair_policy(changer.namespace, prefix, setup.id, "c01", "c03")
        assert backend.clients(changer.context)["api"].sanitize_for_serialization(stored.spec) == expected["spec"]
        assert changer.remove_pair(deployment, "c01", "c03") > 0
        with pytest.raises(ApiException) as gone:
            net.read_namespaced_network_policy("pair-c01-c03", changer.namespace)
        assert gone.value.status == 404 and changer.existing() == whitelist

        # every other workload still refuses the setup: the kept deployment is not theirs
        with pytest.raises(DeployError, match="CNI 'bridge' .* does not enforce NetworkPolicy"):
            backend.deploy_or_reuse(setup)
    finally:
        backend.teardown()
        backend.close()
    assert namespaces(testbed, prefix) == []
