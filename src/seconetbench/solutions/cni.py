"""The cluster's CNI as the network solution of a Kubernetes setup.

On the kubernetes backend the system under test is whatever CNI the cluster runs (Calico,
Cilium, Weave, ...); the backend detects it and records it in the setup's facts. Nothing is
applied here: the backend creates the pods, and the CNI wires them. See docs/kubernetes.md.
"""

from __future__ import annotations

from seconetbench.technology import Technology, register

KUBERNETES_FILTERS = ("none", "networkpolicy")


@register
class ClusterCNI(Technology):
    kind = "solution"
    name = "cni"
    description = "the Kubernetes cluster's own CNI (detected and recorded; kubernetes backend only)"
    backends = ("kubernetes",)  # the only backend it exists on (netns/docker tests skip it)
    implementations = ("cni",)  # whatever the cluster's CNI runs (its mode is recorded, docs/kubernetes.md)

    def incompatibility(self, setup):
        # (the backend itself is checked by preflight against `backends`)
        if setup.filter not in KUBERNETES_FILTERS:
            return (f"filter '{setup.filter}' does not exist on a Kubernetes cluster; "
                    f"use one of {list(KUBERNETES_FILTERS)}")
        if setup.scenario == "multi" and setup.tunnel != "cni":
            return f"tunnel '{setup.tunnel}': between Kubernetes nodes the CNI is the tunnel; use tunnel 'cni'"
        return None

    def apply(self, deployment) -> None:
        """Nothing to do: the kubernetes backend creates the pods and the CNI attaches them."""


# A setup may name the CNI it expects instead of 'cni': the backend then refuses a cluster that
# runs another one, and setups of several clusters (testbed.kubernetes.contexts maps these names
# to kube contexts) get distinct ids in one results directory.
NAMED_CNIS = ("antrea", "calico", "canal", "cilium", "flannel", "kube_ovn", "kube_router", "weave")

for _cni in NAMED_CNIS:
    register(type(f"ClusterCNI_{_cni}", (ClusterCNI,), {
        "name": _cni, "description": f"the cluster's CNI, which must be {_cni.replace('_', '-')} (kubernetes backend only)"}))
