"""Namespaces, links, addresses and sysctls through netlink (pyroute2): no process per command."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import threading
from collections.abc import Iterator
from pathlib import Path

from pyroute2 import IPRoute, netns

NETNS_RUN_DIR = Path("/run/netns")
CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def list_netns() -> list[str]:
    return sorted(netns.listnetns())


MS_BIND, MS_REC, MS_SHARED = 0x1000, 0x4000, 1 << 20


def _share_run_dir() -> None:
    """Make /run/netns a shared mount point, as iproute2 and pyroute2 do before their first
    namespace, so that every tool sees the same namespace mounts."""
    directory = str(NETNS_RUN_DIR).encode()
    if _libc.mount(b"", directory, b"none", MS_SHARED | MS_REC, None) == 0:
        return
    if _libc.mount(directory, directory, b"none", MS_BIND | MS_REC, None) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"bind-mounting {NETNS_RUN_DIR}: {os.strerror(err)}")
    if _libc.mount(b"", directory, b"none", MS_SHARED | MS_REC, None) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"making {NETNS_RUN_DIR} a shared mount: {os.strerror(err)}")


def create_netns(name: str) -> None:
    """A new named namespace, made as `ip netns add` makes it: unshare this thread's network
    namespace, bind-mount it onto /run/netns/<name>, return to the original namespace."""
    NETNS_RUN_DIR.mkdir(parents=True, exist_ok=True)
    _share_run_dir()
    path = NETNS_RUN_DIR / name
    os.close(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0o444))
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        if _libc.unshare(CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"unshare(CLONE_NEWNET) for {name}: {os.strerror(err)}")
        try:
            if _libc.mount(b"/proc/thread-self/ns/net", str(path).encode(), b"none", MS_BIND, None) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"bind-mounting namespace {name}: {os.strerror(err)}")
        finally:
            _setns(home)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    finally:
        os.close(home)


def delete_netns(name: str) -> None:
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


def read_sysctl(name: str, key: str) -> str:
    with entered(name):
        return (Path("/proc/sys") / key.replace(".", "/")).read_text().strip()


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
    if name is None:
        return IPRoute()
    with entered(name):
        return IPRoute()


def index(sock: IPRoute, ifname: str) -> int:
    found = sock.link_lookup(ifname=ifname)
    if not found:
        raise LookupError(f"no interface '{ifname}'")
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
