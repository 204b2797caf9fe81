"""Steps shared by solutions that give each container one veth to its host."""

from __future__ import annotations

from seconetbench.backends.base import Container, Deployment
from seconetbench.testbed import netlink


def add_container_veth(deployment: Deployment, container: Container) -> str:
    """Create the container's veth: host end in the host namespace, peer inside the container."""
    host = deployment.host_of(container)
    host_end = deployment.names.host_veth(container.name)
    with netlink.route(host.netns) as sock:
        sock.link("add", ifname=host_end, kind="veth",
                  peer={"ifname": container.ifname, "net_ns_fd": container.netns})
    return host_end


def address_container(container: Container, prefixlen: int) -> None:
    with netlink.route(container.netns) as sock:
        index = netlink.index(sock, container.ifname)
        sock.addr("add", index=index, address=container.ip, prefixlen=prefixlen)
        sock.link("set", index=index, state="up")
