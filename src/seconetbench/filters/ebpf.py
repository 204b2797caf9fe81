"""eBPF packet filter: a tc program looks every packet's (saddr, daddr) up in a hash map.

The program (section "filter" of data/bpf/tc_pairs.bpf.c) runs at tc clsact ingress, in
direct-action mode, on the host-side end of every container's veth, i.e. on every packet a
container sends: a whitelisted pair passes (TC_ACT_OK), ARP passes, anything else is dropped
(TC_ACT_SHOT). The whitelist is the pinned map allowed_pairs, one key per allowed direction,
filled with one bpftool batch. extra_rules never-matching keys go in first; the install time
covers the whole fill.

Where the program sits, per solution:

- ``bridge``: the veths are bridge ports; tc ingress sees each frame before the bridge does.
- ``routing``: the veths are the host's routed interfaces; tc ingress runs before routing.
- ``ebpf``: the solution's forwarding program already holds the slot, and two programs in a row
  would cost two runs per packet. The filter replaces it in place by "forward_filter" (the same
  forwarding, after the pair lookup): the filter is inline.
"""

from __future__ import annotations

import time

from seconetbench import bpf
from seconetbench.backends.base import Deployment
from seconetbench.filters._common import Flow, extra_flows
from seconetbench.technology import Technology, register

# Solutions verified with this filter (tests/privileged/test_ebpf.py), and the section each runs.
SECTIONS = {"bridge": "filter", "routing": "filter", "ebpf": "forward_filter"}
WHY_NOT = {
    "macvlan": "traffic between macvlans of one parent is switched inside the macvlan driver and "
               "never crosses the host-side veths the program is attached to",
    "ovs": "ovs-vswitchd reads frames off the host-side veths with packet sockets, which get their "
           "copy before tc ingress drops anything (the reference run let every pair through)",
}


def flows(deployment: Deployment, pairs: list[tuple[str, str]]) -> list[Flow]:
    """Both directions of each pair, as (source ip, destination ip)."""
    result = []
    for a, b in pairs:
        ip_a, ip_b = deployment.container(a).ip, deployment.container(b).ip
        result += [(ip_a, ip_b), (ip_b, ip_a)]
    return result


def update_pair(deployment: Deployment, a: str, b: str) -> float:
    """Whitelist containers *a* and *b* live, both directions (two map updates, one bpftool);
    return the seconds it took. deployment.pairs, which the workloads measure, stays as it is.
    It writes the pair map pinned on this machine (the filter is single-host; on the ssh
    backend this runs in the host's agent, SshPairChanger)."""
    return bpf.fill(deployment.prefix, flows(deployment, [(a, b)]))


@register
class EbpfFilter(Technology):
    kind = "filter"
    name = "ebpf"
    description = ("tc clsact ingress program (direct-action) on each host-side veth: (saddr, daddr) "
                   "in a pinned BPF hash map passes, other IPv4 is dropped")
    enforces_whitelist = True

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}  # of apply(), for describe()

    def requires(self, setup):
        return bpf.requirements()

    def incompatibility(self, setup):
        if setup.scenario != "single":
            return "the ebpf filter is verified on single-host setups only, not with tunnels"
        if setup.solution not in SECTIONS:
            why = WHY_NOT.get(setup.solution, "nobody verified where its traffic meets the program")
            return (f"ebpf filter with solution '{setup.solution}': {why}; "
                    f"verified solutions: {sorted(SECTIONS)}")
        return None

    def update_pair(self, deployment: Deployment, a: str, b: str) -> float:
        return update_pair(deployment, a, b)

    def remove_pair(self, deployment: Deployment, a: str, b: str) -> float:
        """Undo update_pair: both directions leave the map again."""
        return bpf.drain(deployment.prefix, flows(deployment, [(a, b)]))

    def apply(self, deployment: Deployment) -> None:
        """Attach on the hosts this process builds (bpf.attach) and fill their pair map with
        the whole whitelist, which derives from the deployment alone."""
        started = time.monotonic()
        bpf.attach(deployment, SECTIONS[deployment.setup.solution])
        self.timings["attach_s"] = time.monotonic() - started
        entries = [*extra_flows(deployment.setup.extra_rules), *flows(deployment, deployment.pairs)]
        self.timings["install_s"] = bpf.fill(deployment.prefix, entries)

    def remove(self, deployment: Deployment) -> None:
        bpf.unmount_bpffs(deployment.prefix)

    def describe(self, deployment: Deployment) -> dict:
        solution = deployment.setup.solution
        return {
            "program": f"{bpf.TC_PROGRAMS.name}:{SECTIONS[solution]}",
            "object": bpf.build().name,
            "attach": "tc clsact ingress, direct-action, host-side veth of every container",
            "inline_in_forwarding": solution == "ebpf",
            "map": f"{bpf.PAIR_MAP} (BPF_MAP_TYPE_HASH, key saddr+daddr), filled by bpftool batch",
            "extra_rules": deployment.setup.extra_rules,
            "whitelist_entries": 2 * len(deployment.pairs),
            "entries": deployment.setup.extra_rules + 2 * len(deployment.pairs),
            **{k: round(v, 6) for k, v in self.timings.items()},
            **bpf.versions(),
        }
