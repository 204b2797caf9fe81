"""Steps shared by solutions that give each container one veth to its host, and what every
solution and filter builds on: the containers of the hosts this process builds.

Per-host building: a solution or filter creates devices, routes, daemons and rules only on
``deployment.local_hosts()`` and in their containers (``deployment.local_containers()``); every other host
is data (names, indices, addresses). On netns and docker that is every host; a host agent of the
ssh backend (``deployment.here`` set) builds its own host's part only. What a technology derives
for the whole deployment (addresses, the whitelist, flow tables) is computed from the deployment
alone, so each host computes the same.
"""

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
