"""Metadata that makes a result reproducible: versions, kernel, machine, git revision; and the
one reader and writer of a raw target's meta.json."""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

import seconetbench

META_FILE = "meta.json"  # in every complete raw target directory (docs/tables.md)


def read_meta(raw_dir: str | os.PathLike) -> dict[str, Any]:
    """The meta.json of the raw target directory *raw_dir* (FileNotFoundError: incomplete)."""
    return json.loads((Path(raw_dir) / META_FILE).read_text())


def write_meta(raw_dir: str | os.PathLike, meta: dict[str, Any]) -> None:
    """Write *meta* as *raw_dir*'s meta.json (indent=1 and sorted keys: cells.py finds the
    fingerprint in the text without parsing it)."""
    (Path(raw_dir) / META_FILE).write_text(json.dumps(meta, indent=1, sort_keys=True))

# How to ask each tool its version (argv, stream); the first line matching a version is kept.
VERSION_COMMANDS = {
    "ping": ["ping", "-V"],
    "iperf3": ["iperf3", "--version"],
    "uperf": ["uperf", "-V"],
    "ip": ["ip", "-V"],
    "iptables": ["iptables", "--version"],
    "nft": ["nft", "--version"],
    "ITGSend": ["ITGSend", "-v"],
}


@lru_cache(maxsize=None)
def tool_version(tool: str) -> str | None:
    argv = VERSION_COMMANDS.get(tool, [tool, "--version"])
    if shutil.which(argv[0]) is None:
        return None
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=5)
    except (subprocess.TimeoutExpired, OSError):
        return None
    for line in (result.stdout + "\n" + result.stderr).splitlines():
        if re.search(r"\d+\.\d+", line):
            return line.strip()
    return None


@lru_cache(maxsize=1)
def git_revision() -> str | None:
    source = Path(seconetbench.__file__).resolve().parent
    try:
        result = subprocess.run(["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True,
                                text=True, timeout=5)
        dirty = subprocess.run(["git", "-C", str(source), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if result.returncode != 0:
        return None
    return result.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def machine() -> dict[str, Any]:
    return {
        "hostname": platform.node(),
        "kernel": platform.release(),
        "kernel_version": platform.version(),
        "arch": platform.machine(),
        "cpus": os.cpu_count(),
        "cpu_model": cpu_model(),
        "python": platform.python_version(),
    }


def software(tools: list[str]) -> dict[str, Any]:
    packages = {}
    for name in ("pyroute2", "pandas", "pyarrow", "snakemake"):
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            packages[name] = None
    return {
        "seconetbench": seconetbench.__version__,
        "git_revision": git_revision(),
        "python_packages": packages,
        "tools": {tool: tool_version(tool) for tool in tools},
    }


# What a run's results depend on besides its setups, as `compare` reports it when two runs differ
# (docs/compare.md): fact name -> the values one target's meta.json gives for it. Per-setup
# facts (implementation, cipher, MTU, accelerator) are columns of the deployment table instead.
def _nested(meta: dict[str, Any], *keys: str) -> Any:
    node: Any = meta
    for key in keys:
        node = node.get(key) if isinstance(node, dict) else None
    return node


def _host_kernels(meta: dict[str, Any]) -> list[Any]:
    # the ssh backend's hosts (their agents' machine()), a kubernetes cluster's nodes
    hosts = _nested(meta, "deployment", "hosts")
    nodes = _nested(meta, "deployment", "kubernetes", "nodes")
    return ([h.get("kernel") for h in hosts.values() if isinstance(h, dict)] if isinstance(hosts, dict) else []) + \
           ([n.get("kernel") for n in nodes if isinstance(n, dict)] if isinstance(nodes, list) else [])


def _cni(meta: dict[str, Any]) -> list[Any]:
    cni = _nested(meta, "deployment", "solution", "cni")
    if not isinstance(cni, dict):
        return []
    return [" ".join(f"{key}={cni[key]}" for key in ("name", "tunnel", "encryption", "dataplane") if cni.get(key))]


ENVIRONMENT_FACTS: dict[str, Any] = {
    "machine": lambda m: [_nested(m, "machine", "hostname")],
    "kernel": lambda m: [_nested(m, "machine", "kernel")],
    "kernel build": lambda m: [_nested(m, "machine", "kernel_version")],
    "CPU model": lambda m: [_nested(m, "machine", "cpu_model")],
    "CPUs": lambda m: [_nested(m, "machine", "cpus")],
    "hosts' kernels": _host_kernels,
    "accelerator": lambda m: [_nested(m, "deployment", "vm", "accel")],
    "CNI": _cni,
    "kubernetes server": lambda m: [_nested(m, "deployment", "kubernetes", "server_version")],
    "backend": lambda m: [_nested(m, "setup", "backend")],
    "run order": lambda m: [_nested(m, "run_order", "mode")],
    "CPU pinning": lambda m: [json.dumps(_nested(m, "cpu_pinning", "requested"), sort_keys=True)
                              if _nested(m, "cpu_pinning", "requested") else None],
    "seconetbench": lambda m: [_nested(m, "software", "seconetbench")],
    "git revision": lambda m: [_nested(m, "software", "git_revision")],
    "python": lambda m: [_nested(m, "machine", "python")],
}


def environment(metas: Any) -> dict[str, list[str]]:
    """The distinct values of every :data:`ENVIRONMENT_FACTS` entry, of every tool version
    (``tool <name>``) and Python package (``package <name>``) over the targets' meta.json
    *metas*: a run's environment in a few hundred bytes, which the aggregated tables carry
    (pipeline.aggregate) so that tables shared without raw files still say what they ran on."""
    found: dict[str, set[str]] = {}
    for meta in metas:
        facts = {name: extract(meta) for name, extract in ENVIRONMENT_FACTS.items()}
        for group, prefix in (("tools", "tool"), ("python_packages", "package")):
            for name, version in (_nested(meta, "software", group) or {}).items():
                facts[f"{prefix} {name}"] = [version]
        for name, values in facts.items():
            found.setdefault(name, set()).update(str(v) for v in values if v is not None)
    return {name: sorted(values) for name, values in sorted(found.items()) if values}
