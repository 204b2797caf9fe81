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

from seconetbench import ovs_daemon, parsers, probes, proc
from seconetbench.backends.base import Container, Deployment
from seconetbench.errors import WorkloadError
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
            command = ["add-br", bridge, "--", "set", "bridge", bridge, f"datapath_type={datapath}"]
            for container in deployment.containers_on(host):
                host_end = add_container_veth(deployment, container)
                with netlink.route(host.netns) as sock:
                    sock.link("set", index=netlink.index(sock, host_end), state="up")
                address_container(container, prefixlen=24)
                if datapath == "netdev":
                    disable_tx_offloads(container)
                command += ["--", "add-port", bridge, host_end]
            # One transaction; ovs-vsctl returns once ovs-vswitchd has applied it.
            switch.vsctl(*command)

    def remove(self, deployment: Deployment) -> None:
        for host in deployment.local_hosts():
            OvsHost.of(deployment, host).stop()

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
            "container_tx_offloads": "off" if datapath == "netdev" else "default",
            "bridges": [deployment.names.bridge(h.index) for h in deployment.hosts],
        }


def disable_tx_offloads(container: Container) -> None:
    proc.run_in(container.netns, ["ethtool", "-K", container.ifname, *TX_OFFLOADS_OFF])


def first_packet_latency(deployment: Deployment, source: str, destination: str,
                         steady_pings: int = 10) -> dict[str, float]:
    """RTT of the first packet of a new flow against the steady state, in ms.

    Flushes the datapath flows of every host, so that the first ping (request and reply) misses
    the datapath's flow cache and is classified by ovs-vswitchd's OpenFlow tables (an upcall);
    the following pings hit the cached flows. MAC tables and the containers' ARP caches stay
    warm, so only the flow setup is measured. One ping process sends all probes.

    Cross-host: it flushes every host's datapath and pings from a container, so it runs where
    every host's OVS control sockets and the source container's namespace are local (netns). On
    the ssh backend this is a controller step, which must reach each host and the container
    through access objects (Host.access, Container.access) instead.
    """
    for host in deployment.hosts:
        OvsHost.of(deployment, host).appctl("dpctl/del-flows")
    ping = ["ping", "-n", "-c", str(1 + steady_pings), "-i", "0.05", "-W", "1",
            deployment.container(destination).ip]
    output = proc.run_in(deployment.container(source).netns, ping, check=False).stdout
    samples = parsers.parse_text("ping", output).samples
    first, steady = samples.iloc[0], samples.iloc[1:]
    if not first["received"] or not steady["received"].any():
        raise WorkloadError(f"{source}->{destination}: the first or every later ping got no reply "
                          f"(is the pair whitelisted?): {output.strip()[-300:]}")
    return {"first_ms": float(first["rtt_ms"]), "steady_ms": float(steady["rtt_ms"].median()),
            "steady_samples": int(steady["received"].sum())}
