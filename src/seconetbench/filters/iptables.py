"""iptables in each host namespace's FORWARD chain: accept the whitelisted pairs, drop the rest.

Bridged traffic reaches the FORWARD chain only through br_netfilter, so the host namespace gets
net.bridge.bridge-nf-call-iptables=1. The rules are stateless (one ACCEPT per direction of each
pair, as in the paper); all rules are loaded by one iptables-restore call per host.
"""

from __future__ import annotations

import re
import subprocess

from seconetbench import proc
from seconetbench.backends.base import Deployment
from seconetbench.technology import Requirement, Technology, register
from seconetbench.testbed import netlink

SUPPORTED_SOLUTIONS = ("bridge",)


@register
class Iptables(Technology):
    kind = "filter"
    name = "iptables"
    description = "iptables FORWARD chain in the host namespace, one ACCEPT per allowed direction, then DROP"
    enforces_whitelist = True

    def requires(self, setup):
        needs = [Requirement("binary", "iptables-restore", "Debian package iptables"),
                 Requirement("kernel", "CONFIG_NETFILTER_XT_MATCH_CONNTRACK", "iptables matches")]
        if setup.solution == "bridge":
            needs.append(Requirement("kernel", "CONFIG_BRIDGE_NETFILTER", "iptables on bridged traffic"))
        return needs

    def incompatibility(self, setup):
        if setup.solution not in SUPPORTED_SOLUTIONS:
            return (f"iptables filter is implemented for solutions {list(SUPPORTED_SOLUTIONS)}, "
                    f"not '{setup.solution}'")
        return None

    def chain(self, deployment: Deployment) -> str:
        return f"{deployment.prefix.upper()}-ALLOW"

    def ruleset(self, deployment: Deployment, extra_rules: int = 0) -> str:
        """The iptables-restore input: *extra_rules* never-matching rules first (sources in
        198.18.128.0/17, which the testbed never assigns), then the whitelist, then DROP."""
        chain = self.chain(deployment)
        lines = ["*filter", f":{chain} - [0:0]", f"-A FORWARD -j {chain}"]
        for k in range(extra_rules):
            lines.append(f"-A {chain} -s 198.18.{128 + k // 256}.{k % 256}/32 -d 198.18.255.1/32 -j ACCEPT")
        for sender, sink in deployment.pairs:
            a, b = deployment.container(sender).ip, deployment.container(sink).ip
            lines.append(f"-A {chain} -s {a}/32 -d {b}/32 -j ACCEPT")
            lines.append(f"-A {chain} -s {b}/32 -d {a}/32 -j ACCEPT")
        lines += [f"-A {chain} -j DROP", "COMMIT", ""]
        return "\n".join(lines)

    def apply(self, deployment: Deployment) -> None:
        rules = self.ruleset(deployment, deployment.setup.extra_rules)
        for host in deployment.hosts:
            if deployment.setup.solution == "bridge":
                netlink.set_sysctls(host.netns, {"net.bridge.bridge-nf-call-iptables": 1})
            proc.run_in(host.netns, ["iptables-restore", "--noflush"], input=rules)

    def describe(self, deployment: Deployment):
        version = subprocess.run(["iptables", "--version"], capture_output=True, text=True).stdout.strip()
        variant = re.search(r"\((\w+)\)", version)
        return {"version": version, "backend": variant.group(1) if variant else "legacy",
                "rules": 2 * len(deployment.pairs) + 1 + deployment.setup.extra_rules}
