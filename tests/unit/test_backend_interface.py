"""The backend interface: every backend implements it with the shared reuse logic, states its
capabilities, and the config check refuses what a backend cannot honour before any deploy.
Containers carry their backend's access object through the state file, never a pseudo-namespace."""

from __future__ import annotations

import json

import pytest

from seconetbench import config, proc
from seconetbench.backends import BACKENDS
from seconetbench.backends.base import (Backend, BaseBackend, Capabilities, ContainerAccess, Deployment,
                                        fingerprint)
from seconetbench.backends.docker import NsenterAccess
from seconetbench.backends.k8s_exec import PodAccess
from seconetbench.backends.kubernetes import KubernetesBackend
from seconetbench.backends.netns import NamespaceAccess, NetnsBackend
from seconetbench.errors import ConfigError
from seconetbench.spec import SetupSpec

pytestmark = pytest.mark.unit

KUBERNETES_TESTBED = {"kubernetes": {"context": "ctx", "kubeconfig": "/nonexistent/kubeconfig"}}


def sweep_config(backend: str, kind: str, **testbed) -> dict:
    solution = "cni" if backend == "kubernetes" else "bridge"
    return {"sweep": {"single": {"solutions": [solution], "filters": ["none"], "containers": [2]},
                      "workloads": ["probe"]},
            "workloads": {"probe": {"kind": kind}},
            "testbed": {"backend": backend, **testbed}}


@pytest.mark.parametrize("name", ["netns", "docker", "kubernetes"])
def test_every_backend_implements_the_protocol_on_the_shared_base(name):
    backend_class = BACKENDS.get(name)
    assert issubclass(backend_class, BaseBackend) and backend_class.name == name
    assert isinstance(backend_class.capabilities, Capabilities)
    # the reuse logic is the base's, not a copy
    assert backend_class.deploy_or_reuse is BaseBackend.deploy_or_reuse
    assert backend_class.fingerprint is BaseBackend.fingerprint
    backend = backend_class("scnu1", **({"testbed": KUBERNETES_TESTBED} if name == "kubernetes" else {}))
    assert isinstance(backend, Backend)


@pytest.mark.parametrize("kind", ["isolation", "confidentiality", "spoofing"])
def test_a_security_workload_on_kubernetes_is_refused_naming_both(kind):
    with pytest.raises(ConfigError) as raised:
        config.validate(sweep_config("kubernetes", kind, kubernetes=KUBERNETES_TESTBED["kubernetes"]))
    message = str(raised.value)
    assert raised.value.key == "sweep.workloads[0]"
    assert f"workload 'probe' (kind {kind}) needs capability security_workloads" in message
    assert "testbed.backend 'kubernetes' lacks" in message
    assert "use backend docker or netns" in message


@pytest.mark.parametrize("backend", ["netns", "docker"])
def test_security_workloads_pass_where_the_namespaces_are_here(backend):
    assert config.validate(sweep_config(backend, "spoofing"))["testbed"]["backend"] == backend


def test_cpu_pinning_is_refused_where_the_generators_are_not_local_processes():
    with pytest.raises(ConfigError, match="needs capability local_generators, which testbed.backend "
                                          "'kubernetes' lacks; remove testbed.cpu_pinning"):
        config.validate(sweep_config("kubernetes", "latency", cpu_pinning={"sender": 0},
                                     kubernetes=KUBERNETES_TESTBED["kubernetes"]))


def test_fingerprint_takes_extra_identity_data():
    setup = SetupSpec("single", "bridge", "none", 2)
    assert fingerprint(setup, True) == fingerprint(setup, True, {})
    assert fingerprint(setup, True) != fingerprint(setup, False)
    assert fingerprint(setup, True, {"implementations": {"filter": "kernel"}}) != fingerprint(
        setup, True, {"implementations": {"filter": "userspace"}})
    # the kubernetes backend's identity is its kube context
    k8s = KubernetesBackend("scnu1", KUBERNETES_TESTBED)
    k8s_setup = SetupSpec("single", "cni", "none", 2, backend="kubernetes")
    assert k8s.fingerprint(k8s_setup, True) == fingerprint(k8s_setup, True, {"context": "ctx"})


def round_trip(deployment: Deployment) -> Deployment:
    return Deployment.from_state(json.loads(json.dumps(deployment.to_state())))


def test_netns_containers_carry_their_namespace_access_and_the_underlay():
    deployment = NetnsBackend("scnu1").plan(SetupSpec("multi", "bridge", "none", 4, tunnel="vxlan", hosts=2))
    c01 = deployment.container("c01")
    assert c01.access == NamespaceAccess("scnu1-c01") and c01.access.local_netns == c01.netns
    assert proc.in_container(c01, ["true"]) == ["ip", "netns", "exec", "scnu1-c01", "true"]
    assert deployment.underlay.switch_netns == "scnu1-ul"
    assert deployment.underlay.ports == {"h1": "scnu1-s1", "h2": "scnu1-s2"}
    assert round_trip(deployment) == deployment


def test_docker_access_enters_the_containers_namespaces_by_pid():
    access = NsenterAccess("scnu1-c01", 4242)
    assert access.argv(["ITGRecv"]) == ["nsenter", "--target", "4242", "--net", "--mount", "--uts", "--ipc",
                                        "--", "ITGRecv"]
    assert ContainerAccess.from_state(json.loads(json.dumps(access.to_state()))) == access


def test_pods_have_no_pseudo_namespace_and_are_entered_through_exec():
    deployment = KubernetesBackend("scnu1", KUBERNETES_TESTBED).plan(
        SetupSpec("single", "cni", "none", 2, backend="kubernetes"), "ctx")
    described = deployment.describe()
    assert [c["netns"] for c in described["containers"]] == [None, None]
    assert [h["netns"] for h in described["hosts"]] == [None]
    assert "k8s-" not in json.dumps(described)
    pod = deployment.container("c02").access
    assert isinstance(pod, PodAccess) and pod.local_netns is None
    assert pod.argv(["ss", "-ltn"])[-8:] == ["--context", "ctx", "-n", pod.namespace, "c02", "--", "ss", "-ltn"]
    assert round_trip(deployment) == deployment


def test_deploy_json_keeps_its_keys():
    described = NetnsBackend("scnu1").plan(SetupSpec("single", "bridge", "none", 2)).describe()
    assert {"setup", "containers", "allowed_pairs", "hosts"} <= set(described)
    assert {"name", "netns", "ip", "host"} <= set(described["containers"][0])
    assert {"name", "netns", "underlay_ip", "underlay_dev"} <= set(described["hosts"][0])


def test_a_state_file_with_an_unknown_access_kind_means_deploy_afresh(tmp_path):
    deployment = NetnsBackend("scnu1").plan(SetupSpec("single", "bridge", "none", 2))
    state = deployment.to_state()
    state["containers"][0]["access"]["kind"] = "teleport"
    path = tmp_path / "deployment.json"
    path.write_text(json.dumps(state))
    assert Deployment.load(path) is None
