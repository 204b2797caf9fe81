"""nftables: a set of allowed (source . destination) pairs, looked up by one rule, then drop.

One ``table inet <prefix>_filter`` per enforcement point (filters/_common.py). For bridge and
routing it sits in the host namespace's forward hook; bridged packets reach that hook through
br_netfilter, exactly as for iptables, so both filters pay the same bridge path and differ only
in the rule engine (a linear chain against a hash set). For macvlan the table sits in every
container's input hook. Each point is loaded by one ``nft -f -`` call.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable
from functools import lru_cache

from seconetbench.backends.base import Deployment
from seconetbench.filters._common import EnforcementPoint, Flow, NetfilterWhitelist, extra_flows
from seconetbench.technology import Requirement, register

SET = "allowed"


@lru_cache(maxsize=1)
def nft_version() -> str:
    return subprocess.run(["nft", "--version"], capture_output=True, text=True).stdout.strip()


def elements(flows: Iterable[Flow]) -> str:
    return ",\n\t\t\t".join(f"{s} . {d}" for s, d in flows)


@register
class Nftables(NetfilterWhitelist):
    name = "nftables"
    description = ("nftables inet table, a set of allowed address pairs then drop: host forward hook "
                   "(bridge, routing) or container input hook (macvlan)")
    loader = ("nft", "-f", "-")

    def requires(self, setup):
        return [*super().requires(setup), Requirement("kernel", "CONFIG_NF_TABLES_INET", "inet tables")]

    def table(self, deployment: Deployment) -> str:
        return f"{deployment.prefix}_filter"

    def ruleset(self, deployment: Deployment, point: EnforcementPoint, extra_rules: int = 0) -> str:
        """The nft -f input. In a hash set the *extra_rules* never-matching elements do not come
        "before" the whitelist in any lookup order: they only make the set larger."""
        flows: list[Flow] = [*extra_flows(extra_rules), *point.flows]
        # Policy accept plus an explicit drop of the scope: a container's loopback stays open.
        if point.interface is None:
            hook, scope = "forward", ""
        else:
            hook, scope = "input", f'iifname "{point.interface}" '
        set_body = ["\t\ttype ipv4_addr . ipv4_addr"]
        if flows:
            set_body.append(f"\t\telements = {{ {elements(flows)} }}")
        return "\n".join([
            f"table inet {self.table(deployment)} {{",
            f"\tset {SET} {{", *set_body, "\t}",
            f"\tchain {hook} {{",
            f"\t\ttype filter hook {hook} priority filter; policy accept;",
            f"\t\t{scope}ip saddr . ip daddr @{SET} accept",
            f"\t\t{scope}drop",
            "\t}",
            "}",
            "",
        ])

    def addition(self, deployment: Deployment, point: EnforcementPoint) -> str:
        return f"add element inet {self.table(deployment)} {SET} {{ {elements(point.flows)} }}\n"

    def removal(self, deployment: Deployment, point: EnforcementPoint) -> str:
        return f"delete element inet {self.table(deployment)} {SET} {{ {elements(point.flows)} }}\n"

    def version(self) -> str:
        return nft_version()

    def describe(self, deployment: Deployment) -> dict:
        facts = super().describe(deployment)
        facts["family"] = "inet"
        facts["set_elements"] = facts["whitelist_entries"] + facts["enforcement_points"] * deployment.setup.extra_rules
        facts["rules"] = 2 * facts["enforcement_points"]  # set lookup + drop at each point
        return facts
