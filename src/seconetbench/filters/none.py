"""No packet filter: every container reaches every other (the baseline)."""

from __future__ import annotations

from seconetbench.technology import Technology, register


@register
class NoFilter(Technology):
    kind = "filter"
    name = "none"
    description = "no filtering (baseline); isolation check expects every pair to be reachable"
    enforces_whitelist = False
    backends = ("netns", "docker", "ssh", "vm", "kubernetes")  # nothing to build, so on a cluster too

    def apply(self, deployment) -> None:
        pass
