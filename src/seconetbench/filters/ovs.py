"""OpenFlow rules in the `ovs` solution's bridges: the whitelist at high priority, drop by default.

The flow table of every host bridge:

- ARP from anyone, action NORMAL (containers must resolve each other's MAC to be filtered on IP);
- *extra_rules* IPv4 flows that never match (filters/_common.extra_flows: addresses the testbed
  never assigns), at the whitelist's priority, to measure how the classifier scales;
- one flow per direction of each whitelisted pair, action NORMAL;
- priority 0: drop (replaces the bridge's default NORMAL flow).

The table is written to a file and installed by one ``ovs-ofctl --bundle replace-flows`` call
per bridge: one atomic OpenFlow transaction, so the bridge never runs with half a table.
"""

from __future__ import annotations

import time

from seconetbench.backends.base import Deployment, Host
from seconetbench.filters._common import extra_flows
from seconetbench.ovs_daemon import OvsHost, requirements
from seconetbench.technology import Technology, register

ALLOW_PRIORITY = 100
ARP_PRIORITY = 50
OPENFLOW_VERSION = "OpenFlow14"  # the first with bundles (atomic transactions of flow changes)


def allow(source: str, destination: str) -> str:
    return f"priority={ALLOW_PRIORITY},ip,nw_src={source},nw_dst={destination},actions=NORMAL"


def pair_flows(deployment: Deployment, a: str, b: str) -> list[str]:
    """Both directions between containers *a* and *b*."""
    ip_a, ip_b = deployment.container(a).ip, deployment.container(b).ip
    return [allow(ip_a, ip_b), allow(ip_b, ip_a)]


def flow_table(deployment: Deployment, extra_rules: int = 0) -> str:
    """The flows of every host bridge, in ovs-ofctl's file syntax (one flow per line)."""
    flows = [f"priority={ARP_PRIORITY},arp,actions=NORMAL"]
    flows += [allow(source, destination) for source, destination in extra_flows(extra_rules)]
    for sender, sink in deployment.pairs:
        flows += pair_flows(deployment, sender, sink)
    flows.append("priority=0,actions=drop")
    return "\n".join(flows) + "\n"


@register
class OvsFilter(Technology):
    kind = "filter"
    name = "ovs"
    description = "OpenFlow flows in the OVS bridge: ARP and whitelisted IPv4 pairs NORMAL, priority-0 drop"
    enforces_whitelist = True

    def __init__(self) -> None:
        self.install_s: dict[str, float] = {}  # host -> seconds the flow table took to install

    def requires(self, setup):
        return requirements("ovs-ofctl")

    def incompatibility(self, setup):
        if setup.solution != "ovs":
            return (f"the ovs filter installs OpenFlow flows in the bridge of the ovs solution; "
                    f"solution '{setup.solution}' has none (use solution ovs)")
        return None

    def apply(self, deployment: Deployment) -> None:
        """Install the flow table in the bridge of each host this process builds. The table
        derives from the deployment alone, so every host writes the same file."""
        table = flow_table(deployment, deployment.setup.extra_rules)
        for host in deployment.local_hosts():
            flows = OvsHost.of(deployment, host).run_dir / "filter.flows"
            flows.write_text(table)
            started = time.monotonic()
            change_flows(deployment, host, "replace-flows", str(flows))
            self.install_s[host.name] = round(time.monotonic() - started, 6)

    def update_pair(self, deployment: Deployment, a: str, b: str) -> float:
        """Whitelist containers *a* and *b* on the running bridges; the seconds until the
        datapath enforces it. It changes the bridges of the hosts this process builds
        (Deployment.local_hosts: every host's on netns; its own in an ssh host's agent, which
        the ssh backend asks on every host at once) and times the whole."""
        flows = "\n".join(pair_flows(deployment, a, b)) + "\n"
        started = time.monotonic()
        for host in deployment.local_hosts():
            change_flows(deployment, host, "add-flows", "-", input=flows)
        return time.monotonic() - started

    def remove_pair(self, deployment: Deployment, a: str, b: str) -> float:
        """Undo update_pair: delete exactly those two flows (strict match, actions left out).
        On the local hosts, like update_pair."""
        matches = "\n".join(flow.rsplit(",actions=", 1)[0] for flow in pair_flows(deployment, a, b)) + "\n"
        started = time.monotonic()
        for host in deployment.local_hosts():
            change_flows(deployment, host, "del-flows", "-", input=matches, strict=True)
        return time.monotonic() - started

    def describe(self, deployment: Deployment):
        return {"flows": 2 * len(deployment.pairs) + 2 + deployment.setup.extra_rules,
                "extra_rules": deployment.setup.extra_rules, "install_s": self.install_s,
                "openflow": OPENFLOW_VERSION}


def change_flows(deployment: Deployment, host: Host, command: str, source: str,
                 input: str | None = None, strict: bool = False) -> None:
    """One atomic flow change (*command*: replace-flows, add-flows, del-flows) on *host*'s bridge, the flows
    read from file *source* ('-': *input*). Returns once the datapath enforces it: flows cached
    from the old table (e.g. a drop for a pair just whitelisted) are revalidated asynchronously,
    so wait for a revalidation round."""
    switch = OvsHost.of(deployment, host)
    bridge = switch.switch(deployment.names.bridge(host.index))
    switch.ofctl("-O", OPENFLOW_VERSION, "--bundle", *(["--strict"] if strict else []), command, bridge, source,
                 input=input)
    switch.appctl("revalidator/wait")
