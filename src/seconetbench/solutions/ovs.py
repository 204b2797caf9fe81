"""Open vSwitch: every container's veth is a port of one OVS bridge in its host namespace.

Each host runs its own ovsdb-server and ovs-vswitchd (see ovs_daemon.py). Where the probe finds
the OVS kernel datapath (generic netlink family ovs_datapath, seconetbench.probes), the bridge
uses it (datapath_type=system); otherwise, or when sweep.single.implementations.ovs pins
`userspace`, the userspace datapath (datapath_type=netdev): ovs-vswitchd itself moves every packet
between the veths. This kernel has no OVS datapath. describe() records which one ran.

The userspace datapath neither fills in partial checksums nor segments GSO frames that come
from the containers, so TCP would die: with it, the containers' tx offloads are switched off.
The default flow is NORMAL (a learning switch); the `ovs` filter replaces it by the whitelist.
"""

from __future__ import annotations

import re

from seconetbench import ovs_daemon, probes, proc
from seconetbench.backends.base import Container, Deployment
from seconetbench.ovs_daemon import OvsHost
from seconetbench.solutions._common import add_container_veth, address_container
from seconetbench.technology import Requirement, Technology, register
from seconetbench.testbed import netlink

# Filters that see the traffic ovs-vswitchd switches. Not iptables or nftables in the host's
# forward hooks: the userspace datapath takes frames from the veths with packet sockets, so they
# never traverse the host namespace's IP stack or a Linux bridge.
SUPPORTED_FILTERS = ("none", "ovs")
TX_OFFLOADS_OFF = ("tx", "off", "tso", "off", "gso", "off")


@register
class Ovs(Technology):
    kind = "solution"
    name = "ovs"
    description = ("Open vSwitch bridge per host (own ovsdb-server and ovs-vswitchd; userspace datapath "
                   "unless the kernel has its datapath), one veth port per container (/24 on-link)")
    implementations = ("kernel", "userspace")
    kernel_probe = "ovs"

    def datapath_type(self) -> str:
        return ovs_daemon.datapath_type(self.resolved_implementation())

    def requires(self, setup):
        needs = ovs_daemon.requirements("ovsdb-tool", "ovsdb-server", "ovs-vswitchd", "ovs-vsctl",
                                        "ovs-appctl")
        needs.append(Requirement("kernel", "CONFIG_VETH", "veth pairs"))
        if self.datapath_type() == "system":
            needs.append(probes.requirement("ovs", "the Open vSwitch kernel datapath"))
        else:
            needs += [Requirement("kernel", "CONFIG_TUN", "the userspace datapath's ports are tap devices"),
                      Requirement("binary", "ethtool", "Debian package ethtool: container tx offloads off")]
        return needs

    def incompatibility(self, setup):
        if setup.scenario != "single":
            return "the ovs solution is single-host only: the tunnels attach to a Linux bridge"
        if setup.filter not in SUPPORTED_FILTERS:
            return (f"filter '{setup.filter}' does not see traffic switched by Open vSwitch "
                    f"(ovs-vswitchd takes it off the veths before the host's IP stack); "
                    f"use one of {list(SUPPORTED_FILTERS)}")
        return None

    def apply(self, deployment: Deployment) -> None:
        datapath = self.datapath_type()
        for host in deployment.local_hosts():
            switch = OvsHost.of(deployment, host)
            switch.start(datapath)
            bridge = deployment.names.bridge(host.index)
            # ovs-vsctl returns once ovs-vswitchd has applied the transaction.
            switch.vsctl("add-br", bridge, "--", "set", "bridge", bridge, f"datapath_type={datapath}")
            for container in deployment.containers_on(host):
                host_end = add_container_veth(deployment, container)
                with netlink.route(host.netns) as sock:
                    sock.link("set", index=netlink.index(sock, host_end), state="up")
                address_container(container, prefixlen=24)
                if datapath == "netdev":
                    disable_tx_offloads(container)
                # One port per transaction, in container order, so that the port numbers are
                # too (datapath port 2, 3, ... after the bridge's own port 1). Within one
                # transaction ovs-vswitchd numbers the ports in the order of its hash tables and
                # the rows' random UUIDs, and the userspace datapath polls its ports in the order
                # of their numbers' hashes: a reply on a port polled before the request's waits
                # one more main loop iteration (docs/ovs.md, "Port numbers and RTT").
                switch.vsctl("add-port", bridge, host_end)

    def remove(self, deployment: Deployment) -> None:
        for host in deployment.local_hosts():
            OvsHost.of(deployment, host).stop()

    def flush_flow_caches(self, deployment: Deployment) -> list[dict]:
        """Delete every datapath flow (the megaflow cache, and with it what the userspace
        datapath's exact-match caches point to) of each local host's switch, so that the next
        packet is an upcall classified by ovs-vswitchd's OpenFlow tables. The OpenFlow tables,
        the MAC learning table and the containers' ARP caches stay: only flow setup is paid.

        `revalidator/purge`, not `dpctl/del-flows`: the latter leaves the upcall handlers' flow
        keys (ukeys) behind, and while a stale ukey exists the handler does not install that
        flow again, so every later packet of it, the "warm" ones included, took the slow path
        (seen here: 0 datapath flows after each probe; docs/decisions.md)."""
        flushed = []
        for host in deployment.local_hosts():
            switch = OvsHost.of(deployment, host)
            before = datapath_flows(switch)
            switch.appctl("revalidator/purge")
            flushed.append({"cache": "ovs_datapath_flows", "where": host.name, "deleted": before,
                            "remaining": datapath_flows(switch)})
        return flushed

    def describe(self, deployment: Deployment):
        """Facts of the switches this process built (their daemons answer here): `datapaths` is
        what the local hosts' ovs-vswitchd report; the bridge names are data of every host."""
        datapath = self.datapath_type()
        switches = [OvsHost.of(deployment, host) for host in deployment.local_hosts()]
        return {
            "version": ovs_daemon.version(),
            "datapath_type": datapath,
            "implementation": "kernel datapath" if datapath == "system" else "userspace datapath",
            # what ran, as ovs-vswitchd reports it: e.g. ["netdev@ovs-netdev"] or ["system@ovs-system"]
            "datapaths": sorted({dp for s in switches for dp in s.appctl("dpctl/dump-dps").split()}),
            # each port's datapath port number: added one by one, in container order
            "datapath_ports": {port: number for s in switches for port, number in datapath_ports(s).items()},
            "container_tx_offloads": "off" if datapath == "netdev" else "default",
            "bridges": [deployment.names.bridge(h.index) for h in deployment.hosts],
        }


def disable_tx_offloads(container: Container) -> None:
    proc.run_in(container.netns, ["ethtool", "-K", container.ifname, *TX_OFFLOADS_OFF])


def datapath_ports(switch: OvsHost) -> dict[str, int]:
    """The datapath port number of every port of *switch*'s bridges, from `dpif/show`'s lines
    '<port> <OpenFlow port>/<datapath port>: (<type>)'."""
    found = (re.fullmatch(r"\s+(\S+) \d+/(\d+): .*", line) for line in switch.appctl("dpif/show").splitlines())
    return {match[1]: int(match[2]) for match in found if match}


def datapath_flows(switch: OvsHost) -> int:
    """Flows in the datapath of *switch* (`dpctl/dump-flows`: one line per flow, after a
    'flow-dump from ...' header per thread in the userspace datapath)."""
    return sum("actions:" in line for line in switch.appctl("dpctl/dump-flows").splitlines())
