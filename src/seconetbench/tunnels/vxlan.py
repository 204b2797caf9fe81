"""VXLAN (kernel): one VXLAN device per host, VNI 42 on UDP 4789, with a flood entry per peer
(unicast head-end replication, no multicast), an address in 198.18.20.0/24 and routes to the
other hosts' container subnets via the peer's VXLAN address."""

from __future__ import annotations

from seconetbench import probes, proc
from seconetbench.backends.base import Deployment
from seconetbench.technology import Requirement, register
from seconetbench.testbed import netlink
from seconetbench.tunnels._common import UDP, Tunnel, Wire, peers, transfer_ip
from seconetbench.tunnels.routing import route_subnets

VNI = 42
PORT = 4789
NET = 20  # transfer network 198.18.20.0/24


@register
class Vxlan(Tunnel):
    name = "vxlan"
    description = "kernel VXLAN, VNI 42, UDP 4789, unicast flood list per peer"
    wire = Wire(f"VXLAN UDP {PORT}", ((UDP, PORT),))
    kernel_probe = "vxlan"  # the kernel's is the only implementation

    def requires(self, setup):
        return [*super().requires(setup), probes.requirement("vxlan", "VXLAN devices"),
                Requirement("binary", "bridge", "Debian package iproute2: the VXLAN flood entries")]

    def overhead(self) -> int:
        return 20 + 8 + 8 + 14  # outer IPv4, UDP, VXLAN header, inner Ethernet

    def device(self, deployment: Deployment) -> str:
        return f"{deployment.prefix}-vx"

    def start(self, deployment: Deployment) -> None:
        device = self.device(deployment)
        for host in deployment.local_hosts():
            with netlink.route(host.netns) as sock:
                sock.link("add", ifname=device, kind="vxlan", vxlan_id=VNI, vxlan_port=PORT,
                          vxlan_local=host.underlay_ip, vxlan_learning=0,
                          vxlan_link=netlink.index(sock, host.underlay_dev))
                index = netlink.index(sock, device)
                sock.link("set", index=index, mtu=self.mtu())
                sock.addr("add", index=index, address=transfer_ip(NET, host), prefixlen=24)
                sock.link("set", index=index, state="up")
            flood = "".join(f"fdb append 00:00:00:00:00:00 dev {device} dst {peer.underlay_ip}\n"
                            for peer in peers(deployment, host))
            proc.run_in(host.netns, ["bridge", "-batch", "-"], input=flood)
        route_subnets(deployment, device, via=lambda peer: transfer_ip(NET, peer))

    def describe(self, deployment):
        return {**super().describe(deployment), "vni": VNI, "port": PORT, "device": self.device(deployment)}
