"""What the netfilter-based filters (iptables, nftables) share.

Where the whitelist can be enforced depends on the path that container-to-container packets take
through the network solution (see docs/single-host.md):

- ``bridge``: bridged between the veth ports of the host's bridge. Netfilter's IPv4 forward hook
  sees these packets only through br_netfilter (net.bridge.bridge-nf-call-iptables=1 in the host
  namespace), so the filter runs in the host's forward hook, as the paper's iptables (b).
- ``routing``: routed by the host namespace, so the host's forward hook sees them directly, as
  the paper's iptables (r).
- ``macvlan``: switched between macvlan ports inside the parent's driver; they never reach the
  host's netfilter (the reference recipe shows a host filter passing everything). The filter runs
  in every container's input hook instead, admitting packets from the container's peers only.

Any other solution is refused with a reason, so that a combination nobody verified is excluded
instead of silently passing traffic.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import ClassVar

from seconetbench import proc
from seconetbench.backends.base import Deployment
from seconetbench.errors import InvalidValueError
from seconetbench.technology import Requirement, Technology
from seconetbench.testbed import netlink

# Extra (never-matching) entries pair a source from the first with a destination from the second
# network: both lie in 198.18.128.0/17, which the testbed never assigns (underlay 198.18.0.0/24,
# containers 198.19.0.0/16), so 16384 * 16384 distinct pairs that no packet ever matches.
EXTRA_SOURCES = ipaddress.ip_network("198.18.128.0/18")
EXTRA_DESTINATIONS = ipaddress.ip_network("198.18.192.0/18")

Flow = tuple[str, str]  # (source ip, destination ip): one allowed direction


@dataclass(frozen=True)
class Placement:
    where: str  # "host" (one filter per host namespace) or "container" (one per container)
    path: str  # how the solution's packets meet netfilter there


PLACEMENTS = {
    "bridge": Placement("host", "bridged in the host namespace; netfilter's forward hook sees them "
                                "through br_netfilter (bridge-nf-call-iptables=1)"),
    "routing": Placement("host", "routed by the host namespace through its forward hook"),
    "macvlan": Placement("container", "switched inside the macvlan driver, never through the host's "
                                      "netfilter; filtered at each container's input hook"),
}


def extra_flows(count: int) -> Iterator[Flow]:
    """*count* distinct never-matching flows (see EXTRA_SOURCES)."""
    sources = EXTRA_SOURCES.num_addresses
    if count > sources * EXTRA_DESTINATIONS.num_addresses:
        raise InvalidValueError(f"extra_rules={count} exceeds the {sources ** 2} never-matching pairs available")
    for k in range(count):
        yield str(EXTRA_SOURCES[k % sources]), str(EXTRA_DESTINATIONS[k // sources])


@dataclass(frozen=True)
class EnforcementPoint:
    netns: str
    interface: str | None  # filter only packets arriving here (containers); None: all forwarded
    flows: tuple[Flow, ...]  # whitelisted directions this point admits
    host: str  # the host it is on (a host namespace, or a container's host)


def enforcement_points(deployment: Deployment, pairs: Sequence[tuple[str, str]] | None = None,
                       local_only: bool = False) -> list[EnforcementPoint]:
    """Where the whitelist of *pairs* (default: the deployment's) is enforced, and what each
    point admits. A container's input filter needs only the directions towards it. *local_only*:
    the points on the hosts this process builds (Deployment.local_hosts); the flows are the
    same either way, since they derive from the deployment alone."""
    pairs = deployment.pairs if pairs is None else pairs
    flows = []
    for a, b in pairs:
        ip_a, ip_b = deployment.container(a).ip, deployment.container(b).ip
        flows += [(ip_a, ip_b), (ip_b, ip_a)]
    if PLACEMENTS[deployment.setup.solution].where == "host":
        hosts = deployment.local_hosts() if local_only else deployment.hosts
        return [EnforcementPoint(h.netns, None, tuple(flows), h.name) for h in hosts]
    containers = deployment.local_containers() if local_only else deployment.containers
    return [EnforcementPoint(c.netns, c.ifname, tuple(f for f in flows if f[1] == c.ip), c.host)
            for c in containers]


class NetfilterWhitelist(Technology):
    """A filter that loads one text rule set per enforcement point with one command.

    Subclasses say how a rule set and a live addition look, and which command loads them.
    """

    kind = "filter"
    enforces_whitelist = True
    loader: ClassVar[tuple[str, ...]]  # reads a rule set (or an addition) on stdin

    def ruleset(self, deployment: Deployment, point: EnforcementPoint, extra_rules: int = 0) -> str:
        raise NotImplementedError

    def addition(self, deployment: Deployment, point: EnforcementPoint) -> str:
        """The input for *loader* that admits point.flows on top of the loaded rule set."""
        raise NotImplementedError

    def removal(self, deployment: Deployment, point: EnforcementPoint) -> str:
        """The input for *loader* that takes point.flows out again (undoes addition())."""
        raise NotImplementedError

    def version(self) -> str:
        raise NotImplementedError

    def requires(self, setup):
        needs = [Requirement("binary", self.loader[0], f"loads the {self.name} rules")]
        if setup.solution == "bridge":
            needs.append(Requirement("kernel", "CONFIG_BRIDGE_NETFILTER", f"{self.name} on bridged traffic"))
        return needs

    def incompatibility(self, setup):
        if setup.solution not in PLACEMENTS:
            return (f"{self.name} filter is verified only for solutions {sorted(PLACEMENTS)}; "
                    f"where '{setup.solution}' traffic meets netfilter is unknown")
        return None

    def apply(self, deployment: Deployment) -> None:
        """Load the rule set at each enforcement point on the hosts this process builds."""
        if deployment.setup.solution == "bridge":
            for host in deployment.local_hosts():
                netlink.set_sysctls(host.netns, {"net.bridge.bridge-nf-call-iptables": 1})
        for point in enforcement_points(deployment, local_only=True):
            proc.run_in(point.netns, self.loader, input=self.ruleset(deployment, point, deployment.setup.extra_rules))

    def update_pair(self, deployment: Deployment, a: str, b: str) -> float:
        """Whitelist the pair (a, b) live, both directions; return the seconds until every
        enforcement point has it installed (the rule-update time). deployment.pairs, which the
        workloads measure, stays as it is.

        It changes the points on the hosts this process builds (Deployment.local_hosts): every
        host's on netns and docker, where all namespaces are local; its own in an ssh host's
        agent, which the ssh backend asks on every host at once (SshPairChanger)."""
        started = time.monotonic()
        for point in enforcement_points(deployment, [(a, b)], local_only=True):
            if point.flows:
                proc.run_in(point.netns, self.loader, input=self.addition(deployment, point))
        return time.monotonic() - started

    def remove_pair(self, deployment: Deployment, a: str, b: str) -> float:
        """Undo update_pair(a, b) at every enforcement point; return the seconds it took.
        On the local hosts, like update_pair."""
        started = time.monotonic()
        for point in enforcement_points(deployment, [(a, b)], local_only=True):
            if point.flows:
                proc.run_in(point.netns, self.loader, input=self.removal(deployment, point))
        return time.monotonic() - started

    def describe(self, deployment: Deployment) -> dict:
        points = enforcement_points(deployment)
        placement = PLACEMENTS[deployment.setup.solution]
        version = self.version()
        return {
            "version": version,
            "backend": "legacy" if "legacy" in version else "nf_tables",
            "placement": placement.where,
            "path": placement.path,
            "enforcement_points": len(points),
            "extra_rules": deployment.setup.extra_rules,
            "whitelist_entries": sum(len(p.flows) for p in points),
        }
