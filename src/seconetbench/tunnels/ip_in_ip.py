"""IPIP (IP protocol 4, RFC 2003) and GRE (IP protocol 47, RFC 2784): unencrypted IP-in-IP tunnels
between the hosts' underlay addresses, with two implementations, recorded in meta.json as
``implementation``:

- ``kernel``: where the probe creates an ipip / gre device (seconetbench.probes), one
  point-to-point ipip or gre device per peer host (``<prefix>-t<peer>``) and a route to the peer's
  container subnet through it.
- ``tc-bpf``: otherwise (this machine's kernel has neither), or when
  sweep.multi.implementations pins it. No tunnel device: each host routes the
  other hosts' container subnets over its underlay device as the routing tunnel does, and tc
  programs on that device (data/bpf/tunnel_encap.bpf.c) add the outer IPv4 (+ GRE) header at
  egress and strip it at ingress. The bytes on the wire are those of the kernel tunnels; the
  datapath cost is not (BPF instead of the kernel's ip_tunnel code), so figures label it.

The programs' maps are pinned in the run's private bpffs and shared by every host:
``tunnel_routes`` maps (source /24, destination /24) of the container subnets to the outer
(source, destination) underlay addresses; ``tunnel_peers`` holds the outer address pairs that the
ingress program decapsulates.
"""

from __future__ import annotations

import ipaddress
import subprocess
from typing import ClassVar

from seconetbench import bpf, probes, proc
from seconetbench.backends.base import Deployment, Host
from seconetbench.errors import DeployError
from seconetbench.technology import register
from seconetbench.testbed import netlink
from seconetbench.tunnels._common import GRE, IPIP, Tunnel, Wire, container_subnet, host_pairs, peers
from seconetbench.tunnels.routing import route_subnets

SOURCE = bpf.SOURCES / "tunnel_encap.bpf.c"
ROUTE_MAP, PEER_MAP = "tunnel_routes", "tunnel_peers"
DECAP_SECTION = "decap"
OUTER_TTL = 64


def _bytes(*addresses: str) -> str:
    """bpftool's bytes of IPv4 *addresses* in network byte order, one after the other."""
    return " ".join(str(b) for a in addresses for b in ipaddress.IPv4Address(a).packed)


class IpInIp(Tunnel):
    """What IPIP and GRE share; the subclasses name the protocol."""

    KERNEL_KIND: ClassVar[str]  # `ip link add ... type <kind>`
    ENCAP_SECTION: ClassVar[str]
    implementations = ("kernel", "tc-bpf")

    def requires(self, setup):
        base = super().requires(setup)
        if self.implementation() == "kernel":
            return [*base, probes.requirement(self.kernel_probe, f"{self.KERNEL_KIND} tunnel devices")]
        return [*base, *bpf.requirements()]

    def device(self, deployment: Deployment, peer: Host) -> str:
        return f"{deployment.prefix}-t{peer.index}"

    def start(self, deployment: Deployment) -> None:
        if self.implementation() == "kernel":
            self._start_kernel(deployment)
        else:
            self._start_bpf(deployment)

    # ------------------------------------------------------------------ kernel devices
    def _start_kernel(self, deployment: Deployment) -> None:
        for host in deployment.local_hosts():
            for peer in peers(deployment, host):
                device = self.device(deployment, peer)
                proc.run_in(host.netns, ["ip", "link", "add", device, "type", self.KERNEL_KIND,
                                         "local", host.underlay_ip, "remote", peer.underlay_ip,
                                         "ttl", str(OUTER_TTL), "dev", host.underlay_dev])
                with netlink.route(host.netns) as sock:
                    index = netlink.index(sock, device)
                    sock.link("set", index=index, mtu=self.mtu())
                    sock.link("set", index=index, state="up")
                    sock.route("add", dst=container_subnet(peer).split("/")[0], dst_len=24, oif=index)

    # ------------------------------------------------------------------ tc-BPF
    def _start_bpf(self, deployment: Deployment) -> None:
        obj = bpf.build(SOURCE)
        bpf.mount_bpffs(deployment.prefix)
        for host in deployment.local_hosts():  # loading the first program creates and pins both maps
            device = host.underlay_dev
            bpf.tc_batch(deployment.prefix, host.netns, [
                f"qdisc replace dev {device} clsact",
                f"filter replace dev {device} egress {bpf.TC_SLOT} bpf da obj {obj} sec {self.ENCAP_SECTION}",
                f"filter replace dev {device} ingress {bpf.TC_SLOT} bpf da obj {obj} sec {DECAP_SECTION}"])
        routes, tunnels = self._map_paths(deployment)
        lines = []
        for a, b in host_pairs(deployment):
            for src, dst in ((a, b), (b, a)):
                lines.append(f"map update pinned {routes} key "
                             f"{_bytes(container_subnet(src).split('/')[0], container_subnet(dst).split('/')[0])} "
                             f"value {_bytes(src.underlay_ip, dst.underlay_ip)}\n")
                lines.append(f"map update pinned {tunnels} key {_bytes(src.underlay_ip, dst.underlay_ip)} "
                             f"value 1 0 0 0\n")
        result = subprocess.run(["bpftool", "batch", "file", "-"], input="".join(lines), capture_output=True,
                                text=True, timeout=60)
        if result.returncode != 0:
            raise DeployError(f"filling {routes} and {tunnels} failed: {(result.stderr or result.stdout).strip()}")
        route_subnets(deployment)  # only now: no container packet crosses before the maps hold it

    def _map_paths(self, deployment: Deployment):
        return bpf.pinned_map(deployment.prefix, ROUTE_MAP), bpf.pinned_map(deployment.prefix, PEER_MAP)

    def remove(self, deployment: Deployment) -> None:
        if self.implementation() == "tc-bpf":
            bpf.unmount_bpffs(deployment.prefix)  # drops the pins; the namespaces take the programs

    def describe(self, deployment: Deployment) -> dict:
        facts = {**super().describe(deployment), "protocol": self.wire.flows[0][0], "outer_ttl": OUTER_TTL}
        if self.implementation() == "kernel":
            return {**facts, "devices": {h.name: [self.device(deployment, p) for p in peers(deployment, h)]
                                         for h in deployment.hosts}}
        return {**facts, "program": f"{SOURCE.name}:{self.ENCAP_SECTION},{DECAP_SECTION}",
                "object": bpf.build(SOURCE).name,
                "attach": "tc clsact egress (encap) and ingress (decap), direct-action, on each host's underlay device",
                "maps": [ROUTE_MAP, PEER_MAP], **bpf.versions()}


@register
class Ipip(IpInIp):
    name = "ipip"
    description = "IPIP (IP proto 4): kernel ipip devices, or tc-BPF encapsulation where the kernel has none"
    wire = Wire("IPIP (IP proto 4)", ((IPIP, None),))
    kernel_probe = "ipip"
    KERNEL_KIND = "ipip"
    ENCAP_SECTION = "encap_ipip"

    def overhead(self) -> int:
        return 20  # outer IPv4


@register
class Gre(IpInIp):
    name = "gre"
    description = "GRE (IP proto 47): kernel gre devices, or tc-BPF encapsulation where the kernel has none"
    wire = Wire("GRE (IP proto 47)", ((GRE, None),))
    kernel_probe = "gre"
    KERNEL_KIND = "gre"
    ENCAP_SECTION = "encap_gre"

    def overhead(self) -> int:
        return 20 + 4  # outer IPv4, GRE base header (no key, checksum or sequence number)
