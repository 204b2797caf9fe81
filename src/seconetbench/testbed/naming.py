"""Names of every testbed object. All carry the run prefix so that cleanup finds exactly what
this project created, and link names stay within the kernel's 15 characters."""

from __future__ import annotations

import re
from dataclasses import dataclass

from seconetbench.errors import InvalidValueError

IFNAMSIZ = 15  # the kernel's limit on interface names (16 bytes with the terminating NUL)
PREFIX_PATTERN = re.compile(r"^scn[a-z0-9]{0,5}$")
PROJECT_PREFIX = "scn"  # every run prefix starts with this


@dataclass(frozen=True)
class Names:
    prefix: str

    def __post_init__(self) -> None:
        if not PREFIX_PATTERN.match(self.prefix):
            raise InvalidValueError(f"prefix '{self.prefix}' must be 'scn' followed by up to 5 of [a-z0-9]")

    def _link(self, suffix: str) -> str:
        name = f"{self.prefix}-{suffix}"
        if len(name) > IFNAMSIZ:
            raise InvalidValueError(f"interface name '{name}' exceeds {IFNAMSIZ} characters")
        return name

    # namespaces
    def host_netns(self, host: int) -> str:
        return f"{self.prefix}-h{host}"

    def container_netns(self, container: str) -> str:
        return f"{self.prefix}-{container}"

    # links
    def bridge(self, host: int) -> str:
        return self._link(f"br{host}")

    def host_veth(self, container: str) -> str:
        """Host-side end of a container's veth ('c07' -> 'scnab12-v07')."""
        return self._link("v" + container.removeprefix("c"))

    def macvlan_parent(self, host: int) -> tuple[str, str]:
        """The veth pair of *host* whose first end is the macvlan parent (the kernel may lack dummy)."""
        return self._link(f"mvp{host}"), self._link(f"mvq{host}")

    def container_if(self) -> str:
        """The container's own interface (inside its namespace, so one name serves all)."""
        return self._link("e0")


def container_name(index: int) -> str:
    """1-based container index -> 'c01', 'c02', ..., 'c100'."""
    return f"c{index:02d}"
