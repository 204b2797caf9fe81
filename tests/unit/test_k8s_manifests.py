"""Tier 1 of the Kubernetes tests (docs/kubernetes.md): no cluster.

What this proves: the backend's objects have the shape Kubernetes' OpenAPI schemas demand
(kubernetes-validate --strict against a 1.3x schema: types, required fields, no unknown fields),
the whitelist becomes exactly default deny plus one allow policy per container, placement pins
pods to the chosen nodes, and CNI detection reads name, images and tunnel/encryption mode from
recorded-shaped DaemonSets and ConfigMaps of calico, canal, cilium, flannel, weave, kube-router,
antrea and kube-ovn. What it cannot prove: names, port ranges and enums (semantic validation) —
tier 2, the real API server, does.
"""

from __future__ import annotations

import copy
import json

import kubernetes_validate
import pytest

from seconetbench import preflight
from seconetbench.backends import k8s_cluster_facts as facts
from seconetbench.backends import k8s_manifests as m
from seconetbench.backends.kubernetes import KubernetesBackend
from seconetbench.errors import InvalidValueError
from seconetbench.spec import SetupSpec

pytestmark = pytest.mark.unit
SCHEMA_VERSION = "1.30.0"  # a 1.3x schema bundled with kubernetes-validate


def validate(obj):
    kubernetes_validate.validate(obj, SCHEMA_VERSION, strict=True)


def deployment_objects(setup: SetupSpec, nodes=("node-a", "node-b")):
    backend = KubernetesBackend("scnu1", {"kubernetes": {"image": "seconetbench/base:test"}})
    deployment = backend.plan(setup, "ctx")
    return deployment, backend.objects(deployment, list(nodes), "seconetbench/base:test")


@pytest.mark.parametrize("setup", [
    SetupSpec("single", "cni", "networkpolicy", 4, backend="kubernetes"),
    SetupSpec("single", "cni", "none", 2, backend="kubernetes"),
    SetupSpec("multi", "cni", "networkpolicy", 4, tunnel="cni", hosts=2, backend="kubernetes"),
])
def test_every_object_passes_strict_openapi_validation(setup):
    _, objects = deployment_objects(setup)
    for obj in objects:
        validate(obj)
    kinds = [o["kind"] for o in objects]
    assert kinds[0] == "Namespace" and kinds.count("Pod") == setup.containers
    assert kinds.count("NetworkPolicy") == (1 + setup.containers if setup.filter == "networkpolicy" else 0)


def test_strict_validation_catches_a_typo_and_a_wrong_type():
    _, objects = deployment_objects(SetupSpec("single", "cni", "none", 2, backend="kubernetes"))
    pod = copy.deepcopy(objects[1])
    pod["spec"]["containers"][0]["comand"] = pod["spec"]["containers"][0].pop("command")
    with pytest.raises(kubernetes_validate.ValidationError, match="comand"):
        validate(pod)
    pod = copy.deepcopy(objects[1])
    pod["spec"]["terminationGracePeriodSeconds"] = "0"
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(pod)


def test_whitelist_is_default_deny_plus_exactly_the_pairs():
    deployment, objects = deployment_objects(SetupSpec("single", "cni", "networkpolicy", 4, backend="kubernetes"))
    policies = {o["metadata"]["name"]: o["spec"] for o in objects if o["kind"] == "NetworkPolicy"}
    assert policies["default-deny"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    assert deployment.pairs == [("c01", "c02"), ("c03", "c04")]
    for container, peer in [("c01", "c02"), ("c02", "c01"), ("c03", "c04"), ("c04", "c03")]:
        spec = policies[f"allow-{container}"]
        assert spec["podSelector"] == {"matchLabels": {m.CONTAINER_LABEL: container}}
        for rule in (spec["ingress"][0]["from"][0], spec["egress"][0]["to"][0]):
            assert rule["podSelector"]["matchExpressions"][0]["values"] == [peer]


def test_placement_single_on_one_node_multi_pairs_across_nodes():
    _, objects = deployment_objects(SetupSpec("single", "cni", "none", 4, backend="kubernetes"))
    nodes = {o["metadata"]["name"]: o["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
             ["nodeSelectorTerms"][0]["matchExpressions"][0]["values"] for o in objects if o["kind"] == "Pod"}
    assert set(map(tuple, nodes.values())) == {("node-a",)}
    _, objects = deployment_objects(SetupSpec("multi", "cni", "none", 4, tunnel="cni", hosts=2, backend="kubernetes"))
    pods = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Pod"}
    node = {n: p["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
            ["nodeSelectorTerms"][0]["matchExpressions"][0]["values"][0] for n, p in pods.items()}
    assert node == {"c01": "node-a", "c02": "node-b", "c03": "node-a", "c04": "node-b"}
    anti = pods["c01"]["spec"]["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0]
    assert anti["labelSelector"]["matchLabels"][m.CONTAINER_LABEL] == "c02"


def test_every_object_carries_the_cleanup_labels():
    _, objects = deployment_objects(SetupSpec("single", "cni", "networkpolicy", 2, backend="kubernetes"))
    for obj in objects:
        labels = obj["metadata"]["labels"]
        assert labels[m.MANAGED_BY] == "seconetbench" and labels[m.PREFIX_LABEL] == "scnu1"
    assert m.selector("scnu1") == "app.kubernetes.io/managed-by=seconetbench,seconetbench.io/prefix=scnu1"


def test_kubernetes_technologies_refuse_other_backends_and_filters():
    assert preflight.incompatibility(SetupSpec("single", "cni", "networkpolicy", 2, backend="kubernetes")) is None
    assert "runs on the kubernetes backend, not on 'netns'" in preflight.incompatibility(SetupSpec("single", "cni", "none", 2))
    assert "runs on the kubernetes backend, not on 'docker'" in preflight.incompatibility(
        SetupSpec("single", "bridge", "networkpolicy", 2, backend="docker"))
    assert "runs on the netns, docker, ssh and vm backends, not on 'kubernetes'" in preflight.incompatibility(
        SetupSpec("single", "bridge", "none", 2, backend="kubernetes"))
    assert "does not exist on a Kubernetes cluster" in preflight.incompatibility(
        SetupSpec("single", "cni", "iptables", 2, backend="kubernetes"))
    assert preflight.incompatibility(SetupSpec("single", "calico", "networkpolicy", 2, backend="kubernetes")) is None


# ---------------------------------------------------------------------------- CNI detection
def ds(name, namespace, containers, init=()):
    """A DaemonSet in the JSON shape of `kubectl get ds -o json` (the fields detection reads)."""
    return {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": name, "namespace": namespace},
            "spec": {"template": {"spec": {"initContainers": list(init), "containers": list(containers)}}}}


def cm(name, namespace, data):
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace}, "data": data}


KUBE_PROXY = ds("kube-proxy", "kube-system", [{"name": "kube-proxy", "image": "registry.k8s.io/kube-proxy:v1.29.2"}])
FLANNEL_CONF = json.dumps({"Network": "10.244.0.0/16", "Backend": {"Type": "vxlan"}})

CASES = {
    "calico-ipip": (
        [KUBE_PROXY, ds("calico-node", "kube-system", [{"name": "calico-node", "image": "docker.io/calico/node:v3.27.0", "env": [
            {"name": "CALICO_NETWORKING_BACKEND", "valueFrom": {"configMapKeyRef": {"name": "calico-config", "key": "calico_backend"}}},
            {"name": "CALICO_IPV4POOL_IPIP", "value": "Always"}, {"name": "CALICO_IPV4POOL_VXLAN", "value": "Never"},
            {"name": "FELIX_WIREGUARDENABLED", "value": "false"}]}],
            init=[{"name": "install-cni", "image": "docker.io/calico/cni:v3.27.0"}])],
        [cm("calico-config", "kube-system", {"calico_backend": "bird", "veth_mtu": "0"})], [],
        {"name": "calico", "tunnel": "ipip (Always)", "encryption": "none", "networking_backend": "bird"}),
    "calico-vxlan-wireguard": (
        [ds("calico-node", "calico-system", [{"name": "calico-node", "image": "docker.io/calico/node:v3.27.0", "env": [
            {"name": "CALICO_NETWORKING_BACKEND", "value": "vxlan"}]}])], [],
        [{"metadata": {"name": "w1", "annotations": {"projectcalico.org/WireguardPublicKey": "abc="}}}],
        {"name": "calico", "tunnel": "vxlan", "encryption": "wireguard"}),
    "canal": (
        [KUBE_PROXY, ds("canal", "kube-system", [
            {"name": "calico-node", "image": "docker.io/calico/node:v3.27.0", "env": [{"name": "CALICO_NETWORKING_BACKEND", "value": "none"}]},
            {"name": "kube-flannel", "image": "quay.io/coreos/flannel:v0.15.1"}])],
        [cm("canal-config", "kube-system", {"net-conf.json": FLANNEL_CONF})], [],
        {"name": "canal", "tunnel": "vxlan", "networking_backend": "flannel"}),
    "cilium-vxlan-ipsec": (
        [ds("cilium", "kube-system", [{"name": "cilium-agent", "image": "quay.io/cilium/cilium:v1.13.4@sha256:bde8"}])],
        [cm("cilium-config", "kube-system", {"tunnel": "vxlan", "enable-ipsec": "true"})], [],
        {"name": "cilium", "tunnel": "vxlan", "encryption": "ipsec"}),
    "cilium-native-wireguard": (
        [ds("cilium", "kube-system", [{"name": "cilium-agent", "image": "quay.io/cilium/cilium:v1.15.1"}])],
        [cm("cilium-config", "kube-system", {"routing-mode": "native", "enable-wireguard": "true"})], [],
        {"name": "cilium", "tunnel": "none", "encryption": "wireguard"}),
    "flannel": (
        [ds("kube-flannel-ds", "kube-flannel", [{"name": "kube-flannel", "image": "docker.io/flannel/flannel:v0.24.2"}])],
        [cm("kube-flannel-cfg", "kube-flannel", {"net-conf.json": FLANNEL_CONF})], [],
        {"name": "flannel", "tunnel": "vxlan", "encryption": "none"}),
    "weave": (
        [ds("weave-net", "kube-system", [{"name": "weave", "image": "ghcr.io/weaveworks/launcher/weave-kube:2.8.1", "env": [
            {"name": "WEAVE_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "weave-passwd", "key": "weave-passwd"}}}]},
            {"name": "weave-npc", "image": "ghcr.io/weaveworks/launcher/weave-npc:2.8.1"}])], [], [],
        {"name": "weave", "encryption": "weave-esp"}),
    "kube-router": (
        [ds("kube-router", "kube-system", [{"name": "kube-router", "image": "docker.io/cloudnativelabs/kube-router",
                                            "args": ["--run-router=true", "--run-firewall=true", "--enable-overlay=true"]}])],
        [], [], {"name": "kube-router", "tunnel": "ipip (subnet)"}),
    "antrea": (
        [ds("antrea-agent", "kube-system", [{"name": "antrea-agent", "image": "antrea/antrea-agent-ubuntu:v1.15.0"},
                                            {"name": "antrea-ovs", "image": "antrea/antrea-agent-ubuntu:v1.15.0"}])],
        [cm("antrea-config", "kube-system", {"antrea-agent.conf": "trafficEncapMode: encap\ntunnelType: vxlan\n"
                                                                     "trafficEncryptionMode: wireguard\n"})], [],
        {"name": "antrea", "tunnel": "vxlan", "encryption": "wireguard", "dataplane": "ovs"}),
    "kube-ovn": (
        [ds("kube-ovn-cni", "kube-system", [{"name": "cni-server", "image": "docker.io/kubeovn/kube-ovn:v1.12.4",
                                             "args": ["--network-type=geneve"]}]),
         ds("ovs-ovn", "kube-system", [{"name": "openvswitch", "image": "docker.io/kubeovn/kube-ovn:v1.12.4"}])],
        [], [], {"name": "kube-ovn", "tunnel": "geneve", "dataplane": "ovs"}),
    "local-bridge": (
        [], [cm("seconetbench-local-cni", "kube-system", {"cni": "bridge", "dataplane": "linux-bridge"})], [],
        {"name": "bridge", "tunnel": "none", "encryption": "none"}),
    "unknown": ([KUBE_PROXY], [], [], {"name": "unknown", "tunnel": None}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_cni_detection(case):
    daemonsets, configmaps, nodes, expected = CASES[case]
    found = facts.detect_cni(daemonsets, configmaps, nodes)
    assert found["name"] == expected.pop("name")
    for key, value in expected.items():
        assert found["mode"][key] == value, (key, found)
    assert found["enforces_networkpolicy"] is facts.ENFORCES_NETWORKPOLICY.get(found["name"])
    if case == "unknown":
        assert found["images"] == ["registry.k8s.io/kube-proxy:v1.29.2"]


def test_node_facts_read_kernel_version_and_schedulability():
    node = {"metadata": {"name": "n1"}, "spec": {"taints": [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]},
            "status": {"nodeInfo": {"kubeletVersion": "v1.29.2", "kernelVersion": "6.1.0-18-amd64", "osImage": "Debian GNU/Linux 12",
                                    "containerRuntimeVersion": "containerd://1.7.13"},
                       "conditions": [{"type": "Ready", "status": "True"}],
                       "addresses": [{"type": "InternalIP", "address": "10.0.0.5"}]}}
    [row] = facts.node_facts([node])
    assert row == {"name": "n1", "ready": True, "schedulable": False, "kubelet_version": "v1.29.2",
                   "kernel": "6.1.0-18-amd64", "os_image": "Debian GNU/Linux 12",
                   "container_runtime": "containerd://1.7.13", "internal_ip": "10.0.0.5"}


# ------------------------------------------------------------------ policy_update's pair policy
def selects(selector, pod_labels):
    """Whether a LabelSelector (matchLabels, matchExpressions with In: what the manifests use)
    selects a pod with *pod_labels*."""
    if any(pod_labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        assert expression["operator"] == "In", expression
        if pod_labels.get(expression["key"]) not in expression["values"]:
            return False
    return True


def reachable(policies, pods):
    """(source, destination) pod pairs that NetworkPolicy semantics admit in one namespace: a
    direction is open unless a policy of that type selects the pod, and then only to (from) the
    peers a rule of such a policy names; both ends must admit the packet."""
    def admits(pod, peer, kind, rules_key, peer_key):
        chosen = [p["spec"] for p in policies if kind in p["spec"]["policyTypes"]
                  and selects(p["spec"]["podSelector"], pods[pod])]
        return not chosen or any(selects(item["podSelector"], pods[peer])
                                 for spec in chosen for rule in spec.get(rules_key, []) for item in rule[peer_key])
    return {(s, d) for s in pods for d in pods if s != d
            and admits(s, d, "Egress", "egress", "to") and admits(d, s, "Ingress", "ingress", "from")}


def test_a_pair_policy_is_valid_and_whitelists_exactly_its_pair_on_top_of_the_whitelist():
    deployment, objects = deployment_objects(SetupSpec("single", "cni", "networkpolicy", 4, backend="kubernetes"))
    pods = {o["metadata"]["name"]: o["metadata"]["labels"] for o in objects if o["kind"] == "Pod"}
    whitelist = [o for o in objects if o["kind"] == "NetworkPolicy"]
    both_ways = {(a, b) for pair in deployment.pairs for a, b in (pair, pair[::-1])}
    assert reachable(whitelist, pods) == both_ways  # the evaluator reads the deploy's whitelist right
    pair = m.pair_policy("ns", "scnu1", deployment.setup.id, "c03", "c01")
    validate(pair)
    assert pair["metadata"]["name"] == m.pair_policy_name("c01", "c03") == "pair-c01-c03"
    assert pair["metadata"]["labels"][m.PREFIX_LABEL] == "scnu1"  # removed with the run (clean)
    assert reachable(whitelist + [pair], pods) == both_ways | {("c01", "c03"), ("c03", "c01")}
    with pytest.raises(InvalidValueError, match="two containers"):
        m.pair_policy("ns", "scnu1", deployment.setup.id, "c01", "c01")


def test_only_a_networkpolicy_setup_whose_probes_all_got_through_counts_as_not_enforced():
    backend = KubernetesBackend("scnu1", {"kubernetes": {"image": "seconetbench/base:test"}})
    deployment = backend.plan(SetupSpec("single", "cni", "networkpolicy", 4, backend="kubernetes"), "ctx")
    deployment.facts["kubernetes"] = {"cni": {"name": "bridge"}, "context": "ctx"}
    ignored = {"passed": False, "failures": ["c01->c03 tcp: reachable but not whitelisted"]}
    assert "CNI 'bridge' of context 'ctx' does not enforce NetworkPolicy" in backend.unenforced(deployment, ignored)
    broken = {"passed": False, "failures": [*ignored["failures"], "c01->c02 udp: whitelisted but unreachable"]}
    assert backend.unenforced(deployment, broken) is None  # a cut whitelisted path is a broken deploy
    deployment.setup = SetupSpec("single", "cni", "none", 4, backend="kubernetes")
    assert backend.unenforced(deployment, ignored) is None
    assert backend.pair_changer(deployment) is None  # filter none: no whitelist to change
