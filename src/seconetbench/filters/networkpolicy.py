"""Kubernetes NetworkPolicy as the packet filter: default deny plus the whitelist of pairs.

The kubernetes backend creates the NetworkPolicy objects (backends/k8s_manifests.py); the CNI
enforces them, or does not (flannel, the local bridge cluster): the deploy-time isolation check
proves which, and the backend refuses to measure a setup whose policies are not enforced
(except for policy_update, which records that as its result: the backend's pair_changer
creates and deletes one pair's policy through the API).
"""

from __future__ import annotations

from seconetbench.solutions.cni import NAMED_CNIS
from seconetbench.technology import Technology, register


@register
class NetworkPolicyFilter(Technology):
    kind = "filter"
    name = "networkpolicy"
    description = "Kubernetes NetworkPolicy objects (default deny + whitelist), enforced by the CNI"
    backends = ("kubernetes",)  # the only backend it exists on (netns/docker tests skip it)
    enforces_whitelist = True

    def incompatibility(self, setup):
        # (the backend itself is checked by preflight against `backends`)
        return None if setup.solution in ("cni", *NAMED_CNIS) else "filter 'networkpolicy' needs solution 'cni' or a CNI name"

    def apply(self, deployment) -> None:
        """Nothing to do here: the kubernetes backend creates the policies with the pods."""
