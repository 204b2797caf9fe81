"""eBPF forwarding, as eBPF-based CNIs (Cilium's BPF host routing) do it.

The topology is the routing solution's: /32 per container, an on-link gateway, a /32 host route
per container. On top, a tc program at clsact ingress of every host-side veth (section "forward"
of data/bpf/tc_pairs.bpf.c) looks the destination up in the host's FIB (bpf_fib_lookup) and hands
the packet straight to the destination container with bpf_redirect_peer. Packets between
containers thus skip the host's IP stack, its netfilter hooks and the backlog of the host-side
veth. Only what the program cannot forward (ARP, the first packet to a container whose neighbour
entry is not resolved yet) takes the host stack.

That is also why host filters are refused: iptables or nftables in the host namespace would see
the first packet of a flow and none after it. The ebpf filter instead replaces the forwarding
program by its filtering variant (section "forward_filter": pair lookup, then forwarding), so
each packet runs one program.
"""

from __future__ import annotations

import platform

from seconetbench import bpf
from seconetbench.backends.base import Deployment
from seconetbench.solutions.routing import Routing
from seconetbench.technology import register

SECTION = "forward"
# Filters verified with this solution (tests/privileged/test_ebpf.py).
SUPPORTED_FILTERS = ("none", "ebpf")
HOST_NETFILTER = ("iptables", "nftables")  # bypassed by bpf_redirect_peer, see above


@register
class Ebpf(Routing):
    kind = "solution"
    name = "ebpf"
    description = ("routing topology; a tc ingress program on each host-side veth forwards between "
                   "containers with bpf_fib_lookup + bpf_redirect_peer (host stack bypassed)")
    implementations = ("tc-bpf",)  # the identity column `implementation` (the kernel forwards, in BPF)

    def requires(self, setup):
        return [*super().requires(setup), *bpf.requirements()]

    def incompatibility(self, setup):
        if setup.scenario != "single":
            return "the ebpf solution is single-host only: the tunnels attach to a Linux bridge"
        if setup.filter in HOST_NETFILTER:
            return (f"filter '{setup.filter}' cannot see traffic the ebpf solution forwards: "
                    "bpf_redirect_peer moves packets from veth to veth past the host's IP stack and "
                    f"netfilter hooks (only a flow's first packet passes them); use one of "
                    f"{list(SUPPORTED_FILTERS)}")
        if setup.filter not in SUPPORTED_FILTERS:
            return (f"filter '{setup.filter}' is not verified with the ebpf solution; "
                    f"use one of {list(SUPPORTED_FILTERS)}")
        return None

    def apply(self, deployment: Deployment) -> None:
        super().apply(deployment)
        bpf.attach(deployment, SECTION)

    def remove(self, deployment: Deployment) -> None:
        bpf.unmount_bpffs(deployment.prefix)

    def describe(self, deployment: Deployment):
        return {
            **super().describe(deployment),
            "program": f"{bpf.TC_PROGRAMS.name}:{SECTION}",
            "object": bpf.build().name,
            "attach": "tc clsact ingress, direct-action, host-side veth of every container",
            "forwarding": "bpf_fib_lookup + bpf_redirect_peer",
            "kernel": platform.release(),
            **bpf.versions(),
        }
