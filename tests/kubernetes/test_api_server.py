"""Tier 2: a real kube-apiserver v1.20 (with etcd, controller-manager and scheduler) accepts or
rejects the backend's objects. What this proves: the objects are semantically valid Kubernetes
(names, port ranges, enums, admission), which schema validation (tier 1) cannot show; and a bad
object really gets a 422 from the server. Not proven here: anything about pods running."""

from __future__ import annotations

import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from seconetbench.backends.kubernetes import KubernetesBackend
from seconetbench.spec import SetupSpec

pytestmark = [pytest.mark.privileged, pytest.mark.kubernetes, pytest.mark.slow]  # a local cluster


@pytest.mark.parametrize("setup", [
    SetupSpec("single", "cni", "networkpolicy", 4, backend="kubernetes"),
    SetupSpec("multi", "cni", "networkpolicy", 4, tunnel="cni", hosts=2, backend="kubernetes"),
])
def test_server_side_dry_run_accepts_the_backends_objects(testbed, setup):
    backend = KubernetesBackend("scnkd1", testbed)
    accepted = backend.dry_run(setup)
    assert accepted[0].startswith("Namespace/") and sum(a.startswith("Pod/") for a in accepted) == 4
    assert sum(a.startswith("NetworkPolicy/") for a in accepted) == 5
    core = client.CoreV1Api(config.new_client_from_config(testbed["kubernetes"]["kubeconfig"]))
    assert not core.list_namespace(label_selector="seconetbench.io/prefix=scnkd1").items  # dry run + cleanup


def test_server_rejects_invalid_objects_with_422(cluster):
    api = config.new_client_from_config(str(cluster.kubeconfig))
    net = client.NetworkingV1Api(api)
    bad_policy = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "bad"},
                  "spec": {"podSelector": {}, "policyTypes": ["Sideways"],
                           "ingress": [{"ports": [{"protocol": "TCP", "port": 70000}]}]}}
    with pytest.raises(ApiException) as raised:
        net.create_namespaced_network_policy("default", bad_policy, dry_run="All")
    assert raised.value.status == 422
    assert "must be between 1 and 65535" in raised.value.body and "Sideways" in raised.value.body
    bad_pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "Bad_Name"},
               "spec": {"containers": [{"name": "main", "image": "x", "ports": [{"containerPort": 0}]}]}}
    with pytest.raises(ApiException) as raised:
        client.CoreV1Api(api).create_namespaced_pod("default", bad_pod, dry_run="All")
    assert raised.value.status == 422 and "RFC 1123" in raised.value.body
