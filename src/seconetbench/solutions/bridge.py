"""Linux bridge: every container's veth is a port of one bridge in its host namespace.

With several hosts, the bridge is also the containers' router: it holds the gateway address
198.19.<h>.254/24 and every container's default route points to it, so that traffic to other
hosts' containers leaves through the host's routing (and its tunnel). One host: no address."""

from __future__ import annotations

from seconetbench.backends.base import Deployment
from seconetbench.solutions._common import add_container_veth, address_container
from seconetbench.technology import Requirement, Technology, register
from seconetbench.testbed import netlink


def gateway(host: int) -> str:
    """The bridge's address on host *host* in multi-host setups (containers use .1, .2, ...)."""
    return f"198.19.{host}.254"


@register
class Bridge(Technology):
    kind = "solution"
    name = "bridge"
    description = "Linux bridge in the host namespace, one veth port per container (/24 on-link)"

    def requires(self, setup):
        return [Requirement("kernel", "CONFIG_BRIDGE", "Linux bridge"),
                Requirement("kernel", "CONFIG_VETH", "veth pairs")]

    def apply(self, deployment: Deployment) -> None:
        for host in deployment.local_hosts():
            bridge = deployment.names.bridge(host.index)
            with netlink.route(host.netns) as sock:
                # STP off (the default) so ports forward at once; no address on the bridge.
                sock.link("add", ifname=bridge, kind="bridge")
                bridge_index = netlink.index(sock, bridge)
            for container in deployment.containers_on(host):
                host_end = add_container_veth(deployment, container)
                with netlink.route(host.netns) as sock:
                    sock.link("set", index=netlink.index(sock, host_end), master=bridge_index, state="up")
                address_container(container, prefixlen=24)
            with netlink.route(host.netns) as sock:
                if deployment.setup.hosts > 1:
                    sock.addr("add", index=bridge_index, address=gateway(host.index), prefixlen=24)
                sock.link("set", index=bridge_index, state="up")
            if deployment.setup.hosts > 1:
                for container in deployment.containers_on(host):
                    with netlink.route(container.netns) as sock:
                        sock.route("add", dst="0.0.0.0", dst_len=0, gateway=gateway(host.index))

    def describe(self, deployment):
        facts = {"bridges": [deployment.names.bridge(h.index) for h in deployment.hosts]}
        if deployment.setup.hosts > 1:
            facts["gateways"] = [gateway(h.index) for h in deployment.hosts]
        return facts
