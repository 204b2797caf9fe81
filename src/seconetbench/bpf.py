"""The project's eBPF programs: built with clang, attached with tc, their map filled with bpftool.

- :func:`build` compiles a source of ``data/bpf/`` into a cache outside the repository, keyed by
  the source, the clang version and the flags, so that clang runs once per change, not per deploy.
- Pinned maps need a bpffs. The machine's /sys/fs/bpf may be absent (it is on the reference VM)
  and belongs to the machine, so every run prefix mounts a private one under its state directory
  (:func:`mount_bpffs`) and unmounts it at remove (:func:`unmount_bpffs`); pins vanish with it.
- A mount exists in one mount namespace, and ``ip netns exec`` makes a fresh one per command. tc
  therefore runs through ``nsenter --net`` (network namespace only, our mount namespace kept), and
  iproute2 pins the maps of the programs it loads below ``$TC_BPF_MNT/tc/globals/``.
- Map entries go in through one ``bpftool batch`` process, however many there are.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import shutil
import subprocess
import sysconfig
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from seconetbench import proc
from seconetbench.errors import DeployError, SeconetError, UnsupportedError
from seconetbench.technology import Requirement
from seconetbench.testbed import cleanup, netlink

if TYPE_CHECKING:
    from seconetbench.backends.base import Deployment

SOURCES = Path(__file__).parent / "data" / "bpf"
TC_PROGRAMS = SOURCES / "tc_pairs.bpf.c"  # sections "filter", "forward", "forward_filter"
PAIR_MAP = "allowed_pairs"  # the map of TC_PROGRAMS: key (saddr, daddr), value 1
CACHE_DIR = Path(os.environ.get("SECONETBENCH_BPF_CACHE", "/var/cache/seconetbench/bpf"))
# -g emits the BTF that libbpf needs to read the map definitions in section .maps
CFLAGS = ("-O2", "-g", "-target", "bpf")
# Debian keeps asm/types.h (included by linux/types.h) under the multiarch directory, which
# clang does not search for the bpf target.
MULTIARCH_INCLUDE = Path("/usr/include") / (sysconfig.get_config_var("MULTIARCH") or "x86_64-linux-gnu")
HEADERS = {"linux/bpf.h": "linux-libc-dev", "asm/types.h": "linux-libc-dev",
           "bpf/bpf_helpers.h": "libbpf-dev"}
# One program per hook, in a fixed slot: the ebpf filter replaces the forwarding program of the
# ebpf solution in place (one atomic `tc filter replace`), and attaching twice is idempotent.
TC_SLOT = "pref 1 handle 1"


class BuildError(SeconetError):
    """clang rejected a BPF source; the message names the file and quotes clang."""


@dataclass(frozen=True)
class HeaderRequirement(Requirement):
    """A C header the BPF sources include (kind "header"; *why* names its Debian package)."""

    def missing(self) -> str | None:
        if any((directory / self.name).exists() for directory in (Path("/usr/include"), MULTIARCH_INCLUDE)):
            return None
        return f"C header <{self.name}> is missing (Debian package {self.why})"


def requirements() -> list[Requirement]:
    """What building, attaching and filling the tc programs needs from this machine."""
    return [
        Requirement("binary", "clang", "Debian package clang: builds the BPF programs at deploy time"),
        Requirement("binary", "tc", "Debian package iproute2: attaches the programs"),
        Requirement("binary", "bpftool", "Debian package bpftool: fills the pair map"),
        Requirement("binary", "nsenter", "Debian package util-linux: tc in a host namespace, our mounts kept"),
        Requirement("kernel", "CONFIG_BPF_SYSCALL", "eBPF"),
        Requirement("kernel", "CONFIG_NET_SCH_INGRESS", "tc clsact qdisc"),
        Requirement("kernel", "CONFIG_NET_CLS_BPF", "tc bpf classifier"),
        Requirement("kernel", "CONFIG_NET_CLS_ACT", "direct-action verdicts"),
        *(HeaderRequirement("header", name, package) for name, package in HEADERS.items()),
    ]


# ---------------------------------------------------------------------------------------- build
@lru_cache(maxsize=1)
def clang_version() -> str:
    clang = shutil.which("clang")
    if clang is None:
        raise UnsupportedError("clang is not on PATH: the eBPF programs are compiled at deploy time; "
                               "install the Debian packages clang and llvm (tools/setup.sh does)")
    return proc.run([clang, "--version"]).stdout.splitlines()[0]


def cflags() -> list[str]:
    return [*CFLAGS, f"-I{MULTIARCH_INCLUDE}"]


def build(source: Path = TC_PROGRAMS, cache_dir: Path = CACHE_DIR) -> Path:
    """The object file of *source*, compiled now only if the cache has none for this exact
    source text, clang version and flags."""
    version, flags = clang_version(), cflags()
    key = hashlib.sha256("\0".join([source.read_text(), version, *flags]).encode()).hexdigest()[:16]
    obj = cache_dir / f"{source.name.removesuffix('.bpf.c')}-{key}.o"
    if obj.exists():
        return obj
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = obj.with_name(f".{obj.name}.{os.getpid()}")  # renamed when complete: never half an object
    result = subprocess.run(["clang", *flags, "-c", str(source), "-o", str(partial)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        partial.unlink(missing_ok=True)
        raise BuildError(f"compiling {source} with clang failed (exit {result.returncode}):\n"
                         f"{result.stderr.strip()}")
    os.replace(partial, obj)
    return obj


# ---------------------------------------------------------------------------------------- bpffs
def bpffs(prefix: str) -> Path:
    return cleanup.state_dir(prefix) / "bpffs"


def pinned_map(prefix: str, name: str = PAIR_MAP) -> Path:
    """Where iproute2 pins a map of a tc program (pinning by name) under the prefix's bpffs."""
    return bpffs(prefix) / "tc" / "globals" / name


def mount_bpffs(prefix: str) -> Path:
    """The prefix's private bpffs, mounted if it is not yet (idempotent)."""
    mountpoint = bpffs(prefix)
    if not os.path.ismount(mountpoint):
        mountpoint.mkdir(parents=True, exist_ok=True)
        # the source name carries the prefix, so `findmnt` tells whose mount it is
        _run(["mount", "-t", "bpf", f"{prefix}-bpffs", str(mountpoint)], f"mounting a bpffs at {mountpoint}")
    pinned_map(prefix).parent.mkdir(parents=True, exist_ok=True)
    return mountpoint


def unmount_bpffs(prefix: str) -> None:
    """Unmount the prefix's bpffs, which unpins its maps (idempotent)."""
    mountpoint = bpffs(prefix)
    if os.path.ismount(mountpoint):
        _run(["umount", str(mountpoint)], f"unmounting {mountpoint}")
    if mountpoint.exists():
        mountpoint.rmdir()


# ---------------------------------------------------------------------------------------- tc
def attach(deployment: Deployment, section: str) -> Path:
    """Attach program *section* of TC_PROGRAMS at tc clsact ingress (direct-action) of the
    host-side veth of every container on the hosts this process builds (local_hosts), replacing
    what the slot held. Returns the object file: each host compiles it from the same source (the
    cache key makes it deterministic per clang version), so nothing is shipped between hosts."""
    obj = build()
    mount_bpffs(deployment.prefix)
    for host in deployment.local_hosts():
        commands = []
        for container in deployment.containers_on(host):
            device = deployment.names.host_veth(container.name)
            commands += [f"qdisc replace dev {device} clsact",
                         f"filter replace dev {device} ingress {TC_SLOT} bpf da obj {obj} sec {section}"]
        tc_batch(deployment.prefix, host.netns, commands)
    return obj


def tc_batch(prefix: str, netns: str, commands: Sequence[str]) -> None:
    """Run tc *commands* in one process in *netns*, pinning into the prefix's bpffs. Without a
    mounted bpffs at TC_BPF_MNT, iproute2 would mount one itself: refuse instead."""
    if not os.path.ismount(bpffs(prefix)):
        raise DeployError(f"no bpffs mounted at {bpffs(prefix)}: call bpf.mount_bpffs('{prefix}') first")
    _run(_tc_in(netns, "-batch", "-"), f"tc in {netns}", input="\n".join(commands) + "\n",
         env={**os.environ, "TC_BPF_MNT": str(bpffs(prefix))})


def attached(netns: str, device: str) -> str:
    """What `tc filter show` reports at ingress of *device* (names the program and its section)."""
    return _run(_tc_in(netns, "filter", "show", "dev", device, "ingress"), f"tc filter show in {netns}")


def _tc_in(netns: str, *args: str) -> list[str]:
    # nsenter --net, not `ip netns exec`: the latter's fresh mount namespace per command is not
    # where our bpffs is guaranteed to be, and tc must see it to pin there.
    return ["nsenter", f"--net={netlink.NETNS_RUN_DIR / netns}", "tc", *args]


# ---------------------------------------------------------------------------------------- map
def pair_key(source: str, destination: str) -> str:
    """bpftool's bytes of the key (saddr, daddr), both in network byte order."""
    return " ".join(str(b) for b in ipaddress.IPv4Address(source).packed + ipaddress.IPv4Address(destination).packed)


def fill(prefix: str, pairs: Iterable[tuple[str, str]]) -> float:
    """Insert (saddr, daddr) *pairs* into the pair map, in order, with one bpftool process;
    return the seconds it took."""
    path = pinned_map(prefix)
    lines = "".join(f"map update pinned {path} key {pair_key(s, d)} value 1 0 0 0\n" for s, d in pairs)
    started = time.monotonic()
    _run(["bpftool", "batch", "file", "-"], f"filling {path}", input=lines)
    return time.monotonic() - started


def drain(prefix: str, pairs: Iterable[tuple[str, str]]) -> float:
    """Delete (saddr, daddr) *pairs* from the pair map with one bpftool process; return the
    seconds it took."""
    path = pinned_map(prefix)
    lines = "".join(f"map delete pinned {path} key {pair_key(s, d)}\n" for s, d in pairs)
    started = time.monotonic()
    _run(["bpftool", "batch", "file", "-"], f"draining {path}", input=lines)
    return time.monotonic() - started


def entries(prefix: str) -> int:
    """How many keys the pair map holds now."""
    return len(json.loads(_run(["bpftool", "--json", "map", "dump", "pinned", str(pinned_map(prefix))],
                               "dumping the pair map")))


def map_id(prefix: str) -> int:
    """The kernel's id of the pair map (to see, after teardown, that the kernel freed it)."""
    return json.loads(_run(["bpftool", "--json", "map", "show", "pinned", str(pinned_map(prefix))],
                           "reading the pair map"))["id"]


def versions() -> dict[str, str]:
    """The tool chain, for meta.json."""
    def first_line(argv: list[str]) -> str:
        return subprocess.run(argv, capture_output=True, text=True).stdout.partition("\n")[0]

    return {"clang": clang_version(), "tc": first_line(["tc", "-V"]), "bpftool": first_line(["bpftool", "version"])}


def _run(argv: Sequence[str], what: str, input: str | None = None, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(list(argv), input=input, capture_output=True, text=True, env=env, timeout=60)
    if result.returncode != 0:
        raise DeployError(f"{what} failed ('{' '.join(argv[:4])} ...', exit {result.returncode}): "
                          f"{(result.stderr or result.stdout).strip()}")
    return result.stdout
