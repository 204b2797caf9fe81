"""macvlan in bridge mode: every container gets a macvlan of one parent link in its host namespace.

This kernel has no CONFIG_DUMMY, so the parent is one end of a veth pair whose ends both stay up
in the host namespace (a macvlan needs its parent up with carrier). Traffic between containers
is switched inside the macvlan driver and never reaches the host's IP stack or netfilter hooks:
filters for this solution work inside the containers (see filters/_common.py).
"""

from __future__ import annotations

from seconetbench.backends.base import Deployment
from seconetbench.solutions._common import address_container
from seconetbench.technology import Requirement, Technology, register
from seconetbench.testbed import netlink

MACVLAN_MODE = "bridge"


@register
class Macvlan(Technology):
    kind = "solution"
    name = "macvlan"
    description = "macvlan (bridge mode) per container on a veth parent in the host namespace (/24 on-link)"

    def requires(self, setup):
        return [Requirement("kernel", "CONFIG_MACVLAN", "macvlan links"),
                Requirement("kernel", "CONFIG_VETH", "veth pair as the macvlan parent")]

    def apply(self, deployment: Deployment) -> None:
        for host in deployment.local_hosts():
            parent, peer = deployment.names.macvlan_parent(host.index)
            with netlink.route(host.netns) as sock:
                sock.link("add", ifname=parent, kind="veth", peer={"ifname": peer})
                for end in (parent, peer):
                    sock.link("set", index=netlink.index(sock, end), state="up")
                parent_index = netlink.index(sock, parent)
                for container in deployment.containers_on(host):
                    # Created directly inside the container's namespace under its final name.
                    sock.link("add", ifname=container.ifname, kind="macvlan", link=parent_index,
                              macvlan_mode=MACVLAN_MODE, net_ns_fd=container.netns)
            for container in deployment.containers_on(host):
                address_container(container, prefixlen=24)

    def describe(self, deployment):
        return {"mode": MACVLAN_MODE,
                "parents": [deployment.names.macvlan_parent(h.index)[0] for h in deployment.hosts]}
