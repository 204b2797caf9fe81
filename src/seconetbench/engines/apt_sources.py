"""The Debian mirror this machine's apt already uses, read from its own sources, so that a local
mirror or proxy serves the image build too and no registry host is written into the code.

Both formats apt reads: deb822 stanzas (``/etc/apt/sources.list.d/*.sources``, ``URIs:``) and
one-line entries (``/etc/apt/sources.list`` and ``sources.list.d/*.list``, ``deb [opts] URI suite
components``). tools/debian.sh does the same for the shell scripts (``debian_mirror``).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from seconetbench.errors import DeployError

APT_DIR = Path("/etc/apt")
OVERRIDE = "SECONETBENCH_DEBIAN_MIRROR"


@dataclass(frozen=True)
class AptEntry:
    uri: str
    suites: tuple[str, ...]
    components: tuple[str, ...]
    source: Path  # the file it came from


def _deb822(path: Path) -> list[AptEntry]:
    entries = []
    for stanza in re.split(r"\n[ \t]*\n", path.read_text(errors="replace")):
        fields: dict[str, str] = {}
        key = None
        for line in stanza.splitlines():
            if line.startswith("#"):
                continue
            if line[:1] in (" ", "\t"):  # a continuation (e.g. an inline Signed-By key block)
                if key:
                    fields[key] += " " + line.strip()
            elif ":" in line:
                key, value = line.split(":", 1)
                key = key.strip().lower()
                fields[key] = value.strip()
        if "deb" not in fields.get("types", "").split() or fields.get("enabled", "yes").lower() == "no":
            continue
        for uri in fields.get("uris", "").split():
            entries.append(AptEntry(uri, tuple(fields.get("suites", "").split()),
                                    tuple(fields.get("components", "").split()), path))
    return entries


def _one_line(path: Path) -> list[AptEntry]:
    entries = []
    for line in path.read_text(errors="replace").splitlines():
        words = line.split("#", 1)[0].split()
        if not words or words[0] != "deb":
            continue
        words = words[1:]
        if words and words[0].startswith("["):  # options: [arch=amd64 signed-by=...]
            while words and not words[0].endswith("]"):
                words = words[1:]
            words = words[1:]
        if len(words) >= 2:
            entries.append(AptEntry(words[0], (words[1],), tuple(words[2:]), path))
    return entries


def apt_entries(apt_dir: Path = APT_DIR) -> list[AptEntry]:
    """The binary (``deb``) entries of the machine's apt sources, in apt's reading order."""
    entries = []
    if (apt_dir / "sources.list").is_file():
        entries += _one_line(apt_dir / "sources.list")
    parts = apt_dir / "sources.list.d"
    for path in sorted(parts.iterdir()) if parts.is_dir() else []:
        if path.suffix == ".list":
            entries += _one_line(path)
        elif path.suffix == ".sources":
            entries += _deb822(path)
    return entries


def debian_mirror(suite: str, apt_dir: Path = APT_DIR) -> str:
    """The mirror serving Debian *suite*: $SECONETBENCH_DEBIAN_MIRROR (an archive mirror, so not
    for the ``*-security`` suites), or the URI of the first apt entry of this machine with *suite*."""
    override = os.environ.get(OVERRIDE)
    if override and not suite.endswith("-security"):
        return override
    for entry in apt_entries(apt_dir):
        if suite in entry.suites:
            return entry.uri.rstrip("/")
    raise DeployError(f"no apt source of this machine serves Debian '{suite}' (read {apt_dir}/sources.list and "
                      f"{apt_dir}/sources.list.d/*.list, *.sources); add one, or set {OVERRIDE} to a mirror's URL")
