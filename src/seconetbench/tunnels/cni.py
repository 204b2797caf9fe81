"""The cluster's CNI as the tunnel between Kubernetes nodes (multi-node setups).

Whether the CNI encapsulates (VXLAN, IPIP, Geneve), routes, or encrypts (WireGuard, IPsec) is
the cluster's configuration; the kubernetes backend records the mode it detects. See
docs/kubernetes.md.
"""

from __future__ import annotations

from seconetbench.errors import InvalidValueError
from seconetbench.solutions.cni import NAMED_CNIS
from seconetbench.technology import Technology, register


@register
class ClusterCNITunnel(Technology):
    kind = "tunnel"
    name = "cni"
    description = "the Kubernetes CNI's own node-to-node datapath (kubernetes backend only)"
    backends = ("kubernetes",)  # the only backend it exists on (netns/docker tests skip it)
    implementations = ("cni",)  # whatever the cluster's CNI runs (its mode is recorded, docs/kubernetes.md)

    def __init__(self, suite: str | None = None):
        if suite is not None:
            raise InvalidValueError("tunnel 'cni' has no cipher suites: encryption is the cluster's CNI configuration")

    def incompatibility(self, setup):
        # (the backend itself is checked by preflight against `backends`)
        return None if setup.solution in ("cni", *NAMED_CNIS) else "tunnel 'cni' needs solution 'cni' (multi.solution: cni)"

    def apply(self, deployment) -> None:
        """Nothing to do: the CNI joins the nodes."""
