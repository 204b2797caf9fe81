"""Namespaces, links, addresses and sysctls through netlink (pyroute2): no process per command."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from seconetbench.errors import UnknownNameError

if TYPE_CHECKING:
    from pyroute2 import IPRoute

# pyroute2 is imported where it is used: validating a config imports every technology module
# (and so this one) only to read the technologies' metadata (docs/decisions.md).

NETNS_RUN_DIR = Path("/run/netns")
CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def list_netns() -> list[str]:
    from pyroute2 import netns

    return sorted(netns.listnetns())


def create_netns(name: str) -> None:
    """A new named namespace (pyroute2 makes it as `ip netns add` does, in a helper process).

    An in-thread version (unshare + bind mount) saved about 4 ms per namespace but, under heavy
    concurrent load, once in a few hundred runs left a namespace that `ip netns exec` could not
    enter; see docs/decisions.md."""
    from pyroute2 import netns

    netns.create(name)


def delete_netns(name: str) -> None:
    from pyroute2 import netns

    try:
        netns.remove(name)
    except OSError as exc:
        if exc.errno not in (errno.ENOENT, errno.EINVAL):
            raise


def netns_inode(name: str) -> int | None:
    try:
        return os.stat(NETNS_RUN_DIR / name).st_ino
    except FileNotFoundError:
        return None


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns failed: {os.strerror(err)}")


@contextlib.contextmanager
def entered(name: str) -> Iterator[None]:
    """Run the block with this thread in namespace *name* (for /proc/sys writes), then return."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(NETNS_RUN_DIR / name, os.O_RDONLY)
    try:
        _setns(target)
        try:
            yield
        finally:
            _setns(home)
    finally:
        os.close(target)
        os.close(home)


def set_sysctls(name: str, values: dict[str, str | int], optional: bool = False) -> None:
    """Write sysctls (dotted keys) inside namespace *name*. *optional* skips keys this kernel lacks."""
    with entered(name):
        for key, value in values.items():
            path = Path("/proc/sys") / key.replace(".", "/")
            try:
                path.write_text(f"{value}\n")
            except FileNotFoundError:
                if not optional:
                    raise


_pool = threading.local()  # sockets kept open inside a pooled() block, per thread


@contextlib.contextmanager
def pooled() -> Iterator[None]:
    """Within the block, route() reuses one socket per namespace instead of opening one per call
    (opening a NetNS socket costs milliseconds; a 32-container deploy asks for hundreds)."""
    if getattr(_pool, "sockets", None) is not None:
        yield  # already pooled by an outer block
        return
    _pool.sockets = {}
    try:
        yield
    finally:
        sockets, _pool.sockets = _pool.sockets, None
        for sock in sockets.values():
            sock.close()


@contextlib.contextmanager
def route(name: str | None = None) -> Iterator[IPRoute]:
    """A netlink socket in namespace *name* (None = the namespace of this process)."""
    sockets = getattr(_pool, "sockets", None)
    if sockets is not None:
        if name not in sockets:
            sockets[name] = _open(name)
        yield sockets[name]
        return
    sock = _open(name)
    try:
        yield sock
    finally:
        sock.close()


def _open(name: str | None) -> IPRoute:
    # A netlink socket belongs to the namespace it was created in: creating it with this thread
    # inside *name* costs about 1 ms, where pyroute2's NetNS (a helper process) costs about 6 ms.
    from pyroute2 import IPRoute

    if name is None:
        return IPRoute()
    with entered(name):
        return IPRoute()


def index(sock: IPRoute, ifname: str) -> int:
    found = sock.link_lookup(ifname=ifname)
    if not found:
        raise UnknownNameError("interface", ifname)
    return found[0]


def link_mtus(name: str | None) -> dict[str, int]:
    with route(name) as sock:
        return {link.get_attr("IFLA_IFNAME"): link.get_attr("IFLA_MTU") for link in sock.get_links()}


def link_names(name: str | None = None) -> list[str]:
    with route(name) as sock:
        return [link.get_attr("IFLA_IFNAME") for link in sock.get_links()]


def delete_link(sock: IPRoute, ifname: str) -> None:
    found = sock.link_lookup(ifname=ifname)
    if found:
        sock.link("del", index=found[0])
