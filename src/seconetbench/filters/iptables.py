"""iptables: one ACCEPT per allowed direction of each pair, then DROP, in a chain of our own.

Where the chain hangs depends on the solution (filters/_common.py): from the host namespace's
FORWARD chain for bridge (the paper's iptables (b), via br_netfilter) and routing (iptables (r)),
from each container's INPUT chain for macvlan. The rules are stateless, as in the paper; each
enforcement point is loaded by one iptables-restore call.
"""

from __future__ import annotations

import subprocess
from functools import lru_cache

from seconetbench.backends.base import Deployment
from seconetbench.filters._common import EnforcementPoint, NetfilterWhitelist, extra_flows
from seconetbench.technology import register


@lru_cache(maxsize=1)
def iptables_version() -> str:
    return subprocess.run(["iptables", "--version"], capture_output=True, text=True).stdout.strip()


@register
class Iptables(NetfilterWhitelist):
    name = "iptables"
    description = ("iptables chain, one ACCEPT per allowed direction then DROP: host FORWARD "
                   "(bridge, routing) or container INPUT (macvlan)")
    loader = ("iptables-restore", "--noflush")

    def chain(self, deployment: Deployment) -> str:
        return f"{deployment.prefix.upper()}-ALLOW"

    def ruleset(self, deployment: Deployment, point: EnforcementPoint, extra_rules: int = 0) -> str:
        """The iptables-restore input: *extra_rules* never-matching rules first, then the
        whitelist, then DROP."""
        chain = self.chain(deployment)
        hook = "-A FORWARD" if point.interface is None else f"-A INPUT -i {point.interface}"
        lines = ["*filter", f":{chain} - [0:0]", f"{hook} -j {chain}"]
        lines += [f"-A {chain} -s {s}/32 -d {d}/32 -j ACCEPT" for s, d in extra_flows(extra_rules)]
        lines += [f"-A {chain} -s {s}/32 -d {d}/32 -j ACCEPT" for s, d in point.flows]
        lines += [f"-A {chain} -j DROP", "COMMIT", ""]
        return "\n".join(lines)

    def addition(self, deployment: Deployment, point: EnforcementPoint) -> str:
        # Inserted right after the extra rules, at the head of the whitelist (before the DROP).
        chain, position = self.chain(deployment), deployment.setup.extra_rules + 1
        lines = ["*filter"]
        lines += [f"-I {chain} {position} -s {s}/32 -d {d}/32 -j ACCEPT" for s, d in point.flows]
        return "\n".join([*lines, "COMMIT", ""])

    def removal(self, deployment: Deployment, point: EnforcementPoint) -> str:
        chain = self.chain(deployment)
        lines = ["*filter"] + [f"-D {chain} -s {s}/32 -d {d}/32 -j ACCEPT" for s, d in point.flows]
        return "\n".join([*lines, "COMMIT", ""])

    def version(self) -> str:
        return iptables_version()

    def describe(self, deployment: Deployment) -> dict:
        facts = super().describe(deployment)
        # rules in our chain, over all enforcement points: extra + whitelist + DROP at each
        facts["rules"] = facts["whitelist_entries"] + facts["enforcement_points"] * (deployment.setup.extra_rules + 1)
        return facts
