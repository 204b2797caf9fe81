"""Pure parsers: raw tool output (text) -> ``Parsed(samples, summary)``.

Each module registers ``parse(text, source=None) -> Parsed`` under its tool's name in
:data:`PARSERS`; ``source`` (usually the file path) is only used in error messages. Nothing here does I/O except ``parse_file``. A truncated or garbage
input raises :class:`~seconetbench.errors.ParseError` naming the file and line; a well-formed
report of a failed run raises :class:`~seconetbench.errors.ToolError`. Formats, columns, units and
quirks are documented in ``docs/parsers.md``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seconetbench.registry import Registry

if TYPE_CHECKING:
    from seconetbench.parsers._common import Parsed

__all__ = ["BYTE_PARSERS", "PARSERS", "Parsed", "parse_file", "parse_text"]

# Each module registers its ``parse`` under the tool's name (``@PARSERS.register("ping")``); the
# modules are imported on the first lookup (registry.py), and the CLI offers exactly these names.
PARSERS: Registry[Callable[[str, str | None], Parsed]] = Registry("parser for tool", package=__name__)
# Parsers of big outputs that take the bytes as they are (no decode into a str first).
BYTE_PARSERS: Registry[Callable[[bytes, str | None], Parsed]] = Registry("byte parser for tool", package=__name__)


def parse_text(tool: str, text: str, source: str | None = None) -> Parsed:
    """Parse *text* printed by *tool* (a key of ``PARSERS``)."""
    return PARSERS.get(tool)(text, source)


def parse_file(tool: str, path: str | os.PathLike[str]) -> Parsed:
    """Read *path* and parse it; undecodable bytes become U+FFFD rather than aborting the read."""
    if tool in BYTE_PARSERS:
        return BYTE_PARSERS.get(tool)(Path(path).read_bytes(), str(path))
    text = Path(path).read_bytes().decode("utf-8", errors="replace")
    return parse_text(tool, text, source=str(path))


def __getattr__(name: str) -> Any:
    # Parsed holds a pandas frame: imported when asked for, so that the CLI and config validation,
    # which only need the parsers' names, do not import pandas.
    if name == "Parsed":
        from seconetbench.parsers._common import Parsed

        return Parsed
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
