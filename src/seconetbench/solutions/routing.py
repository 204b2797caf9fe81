"""Routing (Calico style): the host namespace routes between the containers' veths.

Each container holds its address as a /32 and reaches everything through an on-link gateway;
the host holds one /32 route per container and answers ARP for the gateway on every veth. No
bridge: packets between containers are routed by the host, so they pass its netfilter FORWARD
hook directly (no br_netfilter), like the paper's iptables (r).
"""

from __future__ import annotations

from seconetbench.backends.base import Deployment
from seconetbench.solutions._common import add_container_veth, address_container
from seconetbench.technology import Requirement, Technology, register
from seconetbench.testbed import netlink

# The containers' gateway, the same on every host (Calico uses 169.254.1.1; we must stay in
# 198.18.0.0/15). It lies outside the underlay 198.18.0.0/24, the container subnets 198.19.0.0/16
# and the never-assigned 198.18.128.0/17 that the filters' extra rules use.
GATEWAY = "198.18.1.1"
RT_SCOPE_LINK = 253


@register
class Routing(Technology):
    kind = "solution"
    name = "routing"
    description = "host namespace routes /32 per container veth (on-link gateway, proxy_arp), no bridge"

    def requires(self, setup):
        return [Requirement("kernel", "CONFIG_VETH", "veth pairs")]

    def apply(self, deployment: Deployment) -> None:
        for host in deployment.local_hosts():
            proxy_arp = {}
            for container in deployment.containers_on(host):
                host_end = add_container_veth(deployment, container)
                with netlink.route(host.netns) as sock:
                    index = netlink.index(sock, host_end)
                    sock.addr("add", index=index, address=GATEWAY, prefixlen=32)
                    sock.link("set", index=index, state="up")
                    sock.route("add", dst=container.ip, dst_len=32, oif=index, scope=RT_SCOPE_LINK)
                proxy_arp[f"net.ipv4.conf.{host_end}.proxy_arp"] = 1
                address_container(container, prefixlen=32)
                with netlink.route(container.netns) as sock:
                    index = netlink.index(sock, container.ifname)
                    sock.route("add", dst=GATEWAY, dst_len=32, oif=index, scope=RT_SCOPE_LINK)
                    sock.route("add", dst="0.0.0.0", dst_len=0, gateway=GATEWAY, oif=index)
            # Proxy ARP as Calico sets it: the host answers for any address it routes elsewhere.
            netlink.set_sysctls(host.netns, proxy_arp)

    def describe(self, deployment):
        return {"gateway": GATEWAY, "container_prefixlen": 32, "proxy_arp": True}
