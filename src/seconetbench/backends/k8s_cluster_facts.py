"""What a cluster's network is: the CNI, its tunnel and encryption mode, and node facts.

Pure functions over API objects in their JSON shape (camelCase keys, as ``kubectl get -o json``
prints them and as ``ApiClient.sanitize_for_serialization`` returns them), so that they are
tested with recorded-shaped objects and need no cluster.

A CNI is recognised by its DaemonSet (name and container images); where the CNI exposes its
datapath mode in the DaemonSet's environment, its ConfigMap or node annotations, the mode is
read from there. What cannot be read is reported as ``None``, never guessed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from typing import Any

import yaml

# The local cluster of engines/localk8s.py uses the CNI bridge plugin, which has no DaemonSet;
# it describes itself in this ConfigMap so that detection needs no special case elsewhere.
LOCAL_CNI_CONFIGMAP = ("kube-system", "seconetbench-local-cni")

# Whether the CNI enforces NetworkPolicy as shipped. Expected only: the deploy-time isolation
# check is what proves it for a given cluster.
ENFORCES_NETWORKPOLICY = {
    "calico": True, "canal": True, "cilium": True, "weave": True, "kube-router": True,
    "antrea": True, "kube-ovn": True, "flannel": False, "bridge": False,
}

# (cni, DaemonSet name pattern, image pattern); the first match wins, so Canal (calico-node and
# flannel in one DaemonSet called "canal") comes before Calico and Flannel.
SIGNATURES: tuple[tuple[str, str, str], ...] = (
    ("canal", r"^canal$", r"$^"),
    ("calico", r"^calico-node$", r"(^|/)calico/node:|(^|/)node:v3"),
    ("cilium", r"^cilium$", r"(^|/)cilium/cilium:"),
    ("flannel", r"^(kube-)?flannel(-ds)?", r"(^|/)flannel(cni)?/flannel:|(^|/)flannel:"),
    ("weave", r"^weave-net$", r"weaveworks/weave-kube|/weave-kube:"),
    ("kube-router", r"^kube-router$", r"cloudnativelabs/kube-router"),
    ("antrea", r"^antrea-agent$", r"antrea/antrea-(agent-)?ubuntu|antrea/antrea-agent"),
    ("kube-ovn", r"^kube-ovn-cni$", r"kubeovn/kube-ovn:"),
)


def _containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    spec = obj.get("spec", {}).get("template", {}).get("spec", {})
    return list(spec.get("initContainers") or []) + list(spec.get("containers") or [])


def images(obj: dict[str, Any]) -> list[str]:
    return sorted({c.get("image", "") for c in _containers(obj)} - {""})


def _configmap(configmaps: Iterable[dict[str, Any]], namespace: str | None, name_pattern: str) -> dict[str, str]:
    for cm in configmaps:
        meta = cm.get("metadata", {})
        if (namespace is None or meta.get("namespace") == namespace) and re.search(name_pattern, meta.get("name", "")):
            return cm.get("data") or {}
    return {}


def _env(obj: dict[str, Any], configmaps: Sequence[dict[str, Any]], container_pattern: str = ".") -> dict[str, str]:
    """The environment of the matching containers, with configMapKeyRef values resolved."""
    namespace = obj.get("metadata", {}).get("namespace")
    env: dict[str, str] = {}
    for container in _containers(obj):
        if not re.search(container_pattern, container.get("name", "")):
            continue
        for var in container.get("env") or []:
            if "value" in var:
                env[var["name"]] = str(var["value"])
            ref = (var.get("valueFrom") or {}).get("configMapKeyRef")
            if ref:
                value = _configmap(configmaps, namespace, rf"^{re.escape(ref['name'])}$").get(ref["key"])
                if value is not None:
                    env[var["name"]] = value
    return env


def _args(obj: dict[str, Any]) -> dict[str, str]:
    """--flag=value arguments of every container (flags without a value map to 'true')."""
    found: dict[str, str] = {}
    for container in _containers(obj):
        for arg in (container.get("command") or []) + (container.get("args") or []):
            if arg.startswith("--"):
                key, _, value = arg[2:].partition("=")
                found[key] = value or "true"
    return found


def _truthy(value: Any) -> bool | None:
    if value is None:
        return None
    return str(value).strip().lower() in ("true", "1", "yes", "enabled", "always")


def _flannel_backend(configmaps: Sequence[dict[str, Any]], namespace: str | None, name_pattern: str) -> str | None:
    text = _configmap(configmaps, namespace, name_pattern).get("net-conf.json")
    if not text:
        return None
    try:
        return (json.loads(text).get("Backend") or {}).get("Type", "udp").lower()
    except json.JSONDecodeError:
        return None


def _annotated(nodes: Sequence[dict[str, Any]], key: str) -> bool:
    return any(key in (n.get("metadata", {}).get("annotations") or {}) for n in nodes)


def _calico_mode(obj: dict[str, Any], configmaps: Sequence[dict[str, Any]], nodes: Sequence[dict[str, Any]]) -> dict[str, Any]:
    env = _env(obj, configmaps, r"calico-node")
    ipip, vxlan = env.get("CALICO_IPV4POOL_IPIP"), env.get("CALICO_IPV4POOL_VXLAN")
    backend = env.get("CALICO_NETWORKING_BACKEND")
    if ipip and ipip.lower() in ("always", "crosssubnet"):
        tunnel = f"ipip ({ipip})"
    elif vxlan and vxlan.lower() in ("always", "crosssubnet"):
        tunnel = f"vxlan ({vxlan})"
    elif backend == "vxlan":
        tunnel = "vxlan"
    elif ipip or vxlan:
        tunnel = "none"
    else:
        tunnel = None  # the pool lives in an IPPool resource; not in the DaemonSet
    wireguard = _truthy(env.get("FELIX_WIREGUARDENABLED"))
    if _annotated(nodes, "projectcalico.org/WireguardPublicKey"):
        wireguard = True
    return {"tunnel": tunnel, "encryption": "wireguard" if wireguard else (None if wireguard is None else "none"),
            "dataplane": "bpf" if _truthy(env.get("FELIX_BPFENABLED")) else "iptables",
            "networking_backend": backend}


def _cilium_mode(configmaps: Sequence[dict[str, Any]], namespace: str | None) -> dict[str, Any]:
    config = _configmap(configmaps, namespace, r"^cilium-config$")
    if not config:
        return {"tunnel": None, "encryption": None, "dataplane": "bpf"}
    # Cilium < 1.14: tunnel=vxlan|geneve|disabled; >= 1.14: routing-mode=tunnel|native + tunnel-protocol.
    if "routing-mode" in config:
        tunnel = config.get("tunnel-protocol", "vxlan") if config["routing-mode"] == "tunnel" else "none"
    else:
        tunnel = config.get("tunnel", "vxlan")
        tunnel = "none" if tunnel == "disabled" else tunnel
    if _truthy(config.get("enable-wireguard")):
        encryption = "wireguard"
    elif _truthy(config.get("enable-ipsec")):
        encryption = "ipsec"
    else:
        encryption = "none"
    return {"tunnel": tunnel, "encryption": encryption, "dataplane": "bpf",
            "kube_proxy_replacement": config.get("kube-proxy-replacement")}


def _antrea_mode(configmaps: Sequence[dict[str, Any]], namespace: str | None) -> dict[str, Any]:
    text = _configmap(configmaps, namespace, r"^antrea-config").get("antrea-agent.conf")
    try:
        conf = yaml.safe_load(text) or {} if text else {}
    except yaml.YAMLError:
        conf = {}
    if not isinstance(conf, dict) or not conf:
        return {"tunnel": None, "encryption": None, "dataplane": "ovs"}
    encap = conf.get("trafficEncapMode", "encap")
    tunnel = conf.get("tunnelType", "geneve") if encap in ("encap", "hybrid") else "none"
    return {"tunnel": tunnel, "encryption": conf.get("trafficEncryptionMode", "none"), "dataplane": "ovs"}


def _mode(cni: str, obj: dict[str, Any], configmaps: Sequence[dict[str, Any]], nodes: Sequence[dict[str, Any]]) -> dict[str, Any]:
    namespace = obj.get("metadata", {}).get("namespace")
    if cni == "calico":
        return _calico_mode(obj, configmaps, nodes)
    if cni == "canal":
        calico = _calico_mode(obj, configmaps, nodes)
        return {**calico, "tunnel": _flannel_backend(configmaps, namespace, r"^canal-config$") or calico["tunnel"],
                "networking_backend": "flannel"}
    if cni == "cilium":
        return _cilium_mode(configmaps, namespace)
    if cni == "flannel":
        backend = _flannel_backend(configmaps, namespace, r"flannel")
        encryption = None if backend is None else ("wireguard" if backend == "wireguard"
                                                   else "ipsec" if backend == "ipsec" else "none")
        return {"tunnel": backend, "encryption": encryption, "dataplane": "kernel"}
    if cni == "weave":
        env = _env(obj, configmaps, r"^weave$")
        secret = any(v.get("name") == "WEAVE_PASSWORD" for c in _containers(obj) for v in c.get("env") or [])
        return {"tunnel": "vxlan (fastdp) or sleeve", "encryption": "weave-esp" if secret else "none",
                "dataplane": "ovs-datapath", "no_fastdp": env.get("WEAVE_NO_FASTDP")}
    if cni == "kube-router":
        args = _args(obj)
        overlay = _truthy(args.get("enable-overlay", "true"))
        return {"tunnel": f"ipip ({args.get('overlay-type', 'subnet')})" if overlay else "none",
                "encryption": "none", "dataplane": "ipvs+iptables",
                "firewall": _truthy(args.get("run-firewall", "true"))}
    if cni == "antrea":
        return _antrea_mode(configmaps, namespace)
    if cni == "kube-ovn":
        args = _args(obj)
        return {"tunnel": args.get("network-type"), "encryption": "ipsec" if _truthy(args.get("enable-ovn-ipsec")) else None,
                "dataplane": "ovs"}
    return {"tunnel": None, "encryption": None}


def detect_cni(daemonsets: Sequence[dict[str, Any]], configmaps: Sequence[dict[str, Any]] = (),
               nodes: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    """The CNI of a cluster from its DaemonSets (any namespace), ConfigMaps and Nodes.

    Returns ``{"name", "source", "images", "mode": {"tunnel", "encryption", ...},
    "enforces_networkpolicy"}``; name is ``"unknown"`` when nothing matches (the images of the
    kube-system DaemonSets are then listed, so that the record still says what runs)."""
    local = _configmap(configmaps, LOCAL_CNI_CONFIGMAP[0], rf"^{LOCAL_CNI_CONFIGMAP[1]}$")
    for cni, name_pattern, image_pattern in SIGNATURES:
        for ds in daemonsets:
            meta = ds.get("metadata", {})
            if re.search(name_pattern, meta.get("name", "")) or any(re.search(image_pattern, i) for i in images(ds)):
                return {"name": cni, "source": f"daemonset {meta.get('namespace')}/{meta.get('name')}",
                        "images": images(ds), "mode": _mode(cni, ds, configmaps, nodes),
                        "enforces_networkpolicy": ENFORCES_NETWORKPOLICY.get(cni)}
    if local:
        return {"name": local.get("cni", "bridge"), "source": "configmap {}/{}".format(*LOCAL_CNI_CONFIGMAP),
                "images": [], "mode": {"tunnel": "none", "encryption": "none", "dataplane": local.get("dataplane", "linux-bridge"),
                                       "plugins": local.get("plugins")},
                "enforces_networkpolicy": ENFORCES_NETWORKPOLICY.get(local.get("cni", "bridge"))}
    seen = sorted({i for ds in daemonsets if ds.get("metadata", {}).get("namespace") == "kube-system" for i in images(ds)})
    return {"name": "unknown", "source": None, "images": seen, "mode": {"tunnel": None, "encryption": None},
            "enforces_networkpolicy": None}


def node_facts(nodes: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Name, kubelet version, kernel, OS, runtime, internal IP and readiness of every node."""
    rows = []
    for node in nodes:
        status = node.get("status", {})
        info = status.get("nodeInfo", {})
        ready = next((c.get("status") == "True" for c in status.get("conditions") or [] if c.get("type") == "Ready"), False)
        addresses = {a.get("type"): a.get("address") for a in status.get("addresses") or []}
        rows.append({
            "name": node.get("metadata", {}).get("name"),
            "ready": ready,
            "schedulable": not node.get("spec", {}).get("unschedulable", False) and not any(
                t.get("effect") in ("NoSchedule", "NoExecute") for t in node.get("spec", {}).get("taints") or []),
            "kubelet_version": info.get("kubeletVersion"),
            "kernel": info.get("kernelVersion"),
            "os_image": info.get("osImage"),
            "container_runtime": info.get("containerRuntimeVersion"),
            "internal_ip": addresses.get("InternalIP"),
        })
    return rows
