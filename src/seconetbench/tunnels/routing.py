"""No tunnel: each host routes the other hosts' container subnets to their underlay address.

The baseline of the multi-host figures: the containers' packets cross the underlay as they are,
so the capture check expects their addresses in the outer header and no encapsulation.
"""

from __future__ import annotations

from seconetbench.backends.base import Deployment
from seconetbench.technology import register
from seconetbench.testbed import netlink
from seconetbench.tunnels._common import Tunnel, Wire, container_subnet, peers


def route_subnets(deployment: Deployment, device: str | None = None, via=None, hosts=None) -> None:
    """On every local host (deployment.local_hosts(), or on *hosts*), a route to each other
    host's container subnet, out of *device* (default: the underlay) via *via(peer)* (default:
    the peer's underlay address; a *via* that returns None: on-link)."""
    for host in hosts or deployment.local_hosts():
        with netlink.route(host.netns) as sock:
            index = netlink.index(sock, device or host.underlay_dev)
            for peer in peers(deployment, host):
                dst = container_subnet(peer).split("/")[0]
                gateway = via(peer) if via else peer.underlay_ip
                extra = {"gateway": gateway} if gateway else {}
                sock.route("add", dst=dst, dst_len=24, oif=index, **extra)


@register
class Routing(Tunnel):
    name = "routing"
    description = "no encapsulation: container subnets routed over the underlay (baseline)"
    wire = Wire("")

    def overhead(self) -> int:
        return 0

    def start(self, deployment: Deployment) -> None:
        route_subnets(deployment)
