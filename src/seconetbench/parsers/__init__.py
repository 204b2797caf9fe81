"""Pure parsers: raw tool output (text) -> ``Parsed(samples, summary)``.

Each module exposes ``parse(text, source=None) -> Parsed``; ``source`` (usually the file path) is
only used in error messages. Nothing here does I/O except ``parse_file``. A truncated or garbage
input raises :class:`~seconetbench.errors.ParseError` naming the file and line; a well-formed
report of a failed run raises :class:`~seconetbench.errors.ToolError`. Formats, columns, units and
quirks are documented in ``docs/parsers.md``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from seconetbench.parsers import dstat, iperf3, itgdec, itgdec_packets, ping, uperf
from seconetbench.parsers._common import Parsed

__all__ = ["PARSERS", "Parsed", "parse_file", "parse_text"]

PARSERS: dict[str, Callable[[str, str | None], Parsed]] = {
    "ping": ping.parse,
    "iperf3": iperf3.parse,
    "uperf": uperf.parse,
    "itgdec": itgdec.parse,
    "dstat": dstat.parse,
    "itgdec_packets": itgdec_packets.parse,
}
# Parsers of big outputs that take the bytes as they are (no decode into a str first).
BYTE_PARSERS: dict[str, Callable[[bytes, str | None], Parsed]] = {
    "itgdec_packets": itgdec_packets.parse_bytes,
}


def parse_text(tool: str, text: str, source: str | None = None) -> Parsed:
    """Parse *text* printed by *tool* (a key of ``PARSERS``)."""
    try:
        parser = PARSERS[tool]
    except KeyError:
        raise ValueError(f"no parser for tool {tool!r}; known: {sorted(PARSERS)}") from None
    return parser(text, source)


def parse_file(tool: str, path: str | os.PathLike[str]) -> Parsed:
    """Read *path* and parse it; undecodable bytes become U+FFFD rather than aborting the read."""
    if tool in BYTE_PARSERS:
        return BYTE_PARSERS[tool](Path(path).read_bytes(), str(path))
    text = Path(path).read_bytes().decode("utf-8", errors="replace")
    return parse_text(tool, text, source=str(path))
