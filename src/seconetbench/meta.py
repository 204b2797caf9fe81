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
