"""Netlink primitives and naming for testbeds made of network namespaces."""
