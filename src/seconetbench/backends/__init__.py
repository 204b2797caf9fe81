"""Backends deploy setups and run commands in their containers: netns (default), later docker
and kubernetes, all behind the interface of :class:`seconetbench.backends.base.Backend`."""

from __future__ import annotations


def get_backend(name: str, prefix: str):
    if name == "netns":
        from seconetbench.backends.netns import NetnsBackend

        return NetnsBackend(prefix)
    raise KeyError(f"backend '{name}' is not implemented; available: ['netns']")
