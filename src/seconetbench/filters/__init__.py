"""Packet filters enforcing default deny plus the whitelist; importing registers them."""

from seconetbench.filters import iptables, none  # noqa: F401
