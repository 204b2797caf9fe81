"""Parser for ``dstat --output file.csv`` (Dag Wieers' dstat, Debian 0.7.4 printing "Dstat 0.8.0").

Layout: a title line, metadata lines (``"Host:","vm",,,,"User:","root"``), a group line (group
names spanning several columns, empty cells continue the span), a column line, then data rows.
The first data row is dstat's since-boot average (net shows 0) and is dropped.
"""

from __future__ import annotations

import csv
import re

import numpy as np
import pandas as pd

from seconetbench.errors import ParseError
from seconetbench.parsers import PARSERS
from seconetbench.parsers._common import Parsed, numbered_lines

_TITLE = re.compile(r"dstat .*csv output", re.IGNORECASE)
_CPU_GROUP = re.compile(r"(?:total )?cpu(?P<cpu>\d*) usage")
_NET_GROUP = re.compile(r"net/(?P<interface>.+)")
_NOT_SNAKE = re.compile(r"[^0-9a-z]+")
# Columns of the groups this parser knows carry their unit and must be numeric.
_UNIT_SUFFIXES = ("_pct", "_bytes", "_bytes_per_s", "timestamp_s")


@PARSERS.register("dstat")
def parse(text: str, source: str | None = None) -> Parsed:
    lines = list(numbered_lines(text))
    first = lines[0][1].strip()
    if first.startswith("Traceback"):
        last = next((line for _, line in reversed(lines) if line.strip()), "")
        raise ParseError(f"this is a Python traceback, dstat crashed: {last.strip()}", source, 1)
    if _TITLE.search(first) is None:
        hint = " (dstat's terminal output? use --output)" if first.startswith("-") else ""
        raise ParseError(f"first line {first[:60]!r} is not dstat's '\"Dstat <version> CSV output\"' title{hint}",
                         source, 1)

    metadata: dict[str, str] = {}
    position = 1
    while position < len(lines) and (cells := _cells(lines[position][1])) and cells[0].endswith(":"):
        metadata.update(_key_values(cells))
        position += 1
    if position + 1 >= len(lines) or not lines[position + 1][1].strip():
        raise ParseError("no group and column header lines after the metadata: file truncated", source,
                         lines[min(position, len(lines) - 1)][0])
    group_cells = _cells(lines[position][1])
    column_number, column_line = lines[position + 1]
    column_cells = _cells(column_line)
    names = _column_names(group_cells, column_cells, source, column_number)

    data = _data_lines(lines[position + 2:], [group_cells, column_cells], text, source)
    if not data:
        raise ParseError("no data rows after the header: dstat crashed before writing any (the stock "
                         "Debian dstat does, with \"NameError: name 'types' is not defined\" in showcsv, "
                         "whenever --output is used; see docs/parsers.md)", source, column_number)
    if len(data) == 1:
        raise ParseError("only the since-boot average row, no sample: the run was shorter than one "
                         "interval or the file is cut", source, data[0][0])

    samples = _data_frame(names, data[1:], source)  # data[0] is the since-boot average
    summary = {
        "host": metadata.get("Host"),
        "user": metadata.get("User"),
        "cmdline": metadata.get("Cmdline"),
        "date": metadata.get("Date"),
        "rows": len(samples),
    }
    return Parsed(samples, summary)


def column_name(group: str, column: str) -> str:
    """The snake_case name with unit of dstat's *column* in *group* (``cpu_usr_pct``, ...)."""
    group = group.strip().lower()
    column = column.strip().lower()
    if group == "epoch" or column == "epoch":
        return "timestamp_s"
    if match := _CPU_GROUP.fullmatch(group):
        return f"cpu{match['cpu']}_{_snake(column)}_pct"
    if group == "memory usage":
        return f"mem_{_snake(column)}_bytes"
    if match := _NET_GROUP.fullmatch(group):
        interface = match["interface"]
        # "net/total" is the same quantity whether or not -N named it: no interface in the name.
        prefix = "net" if interface == "total" else f"net_{_snake(interface)}"
        return f"{prefix}_{_snake(column.rsplit(':', 1)[-1])}_bytes_per_s"  # "net/wl-va:recv" -> "recv"
    return f"{_snake(group)}_{_snake(column)}"  # unknown group: no unit guessed


def _snake(name: str) -> str:
    return _NOT_SNAKE.sub("_", name.lower()).strip("_")


def _cells(line: str) -> list[str]:
    return next(csv.reader([line]), [])


def _key_values(cells: list[str]) -> dict[str, str]:
    """``"Host:","vm",,,,"User:","root"`` -> {"Host": "vm", "User": "root"}."""
    pairs = {}
    for index, cell in enumerate(cells[:-1]):
        if cell.endswith(":"):
            pairs[cell[:-1]] = cells[index + 1]
    return pairs


def _column_names(groups: list[str], columns: list[str], source: str | None, number: int) -> list[str]:
    if not columns or any(not column for column in columns):
        raise ParseError(f"column header has empty names: {columns}", source, number)
    if len(groups) not in (len(columns), len(columns) + 1) or not groups[0]:  # +1: trailing comma
        raise ParseError(f"group line has {len(groups)} cells for {len(columns)} columns", source, number - 1)
    names = []
    group = ""
    for index, column in enumerate(columns):
        group = groups[index] or group  # an empty cell continues the group to its left
        names.append(column_name(group, column))
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ParseError(f"columns {duplicates} appear twice", source, number)
    return names


def _data_lines(lines: list[tuple[int, str]], headers: list[list[str]], text: str,
                source: str | None) -> list[tuple[int, list[str]]]:
    """The data rows with their line numbers; refuses appended runs and a cut-off last row."""
    while lines and not lines[-1][1].strip():
        lines = lines[:-1]
    rows = []
    for number, line in lines:
        cells = _cells(line)
        # --output appends: blank lines, then metadata ("Host:", ...), groups and columns again.
        if not line.strip() or cells[0].endswith(":") or cells in headers:
            raise ParseError("a second header block: --output appended a new run to an old file "
                             "(delete the file before each run)", source, number)
        rows.append((number, cells))
    if rows and not text.endswith("\n"):
        raise ParseError("the last row has no line end: file truncated (dstat killed mid-write?)",
                         source, rows[-1][0])
    return rows


def _data_frame(names: list[str], rows: list[tuple[int, list[str]]], source: str | None) -> pd.DataFrame:
    for number, cells in rows:
        if len(cells) != len(names):
            raise ParseError(f"row has {len(cells)} values, expected {len(names)}", source, number)
    raw = pd.DataFrame([cells for _, cells in rows], columns=names)
    frame = {}
    for name in names:
        values = pd.to_numeric(raw[name], errors="coerce")
        bad = values.isna().to_numpy()
        if not bad.any():
            frame[name] = values.astype("float64")
        elif name.endswith(_UNIT_SUFFIXES):
            row = int(np.argmax(bad))
            raise ParseError(f"{name} is {raw[name].iloc[row]!r}, expected a number", source, rows[row][0])
        else:  # an unknown group with text values (e.g. the "time" column of dstat -t): kept as text
            frame[name] = raw[name].astype("str")
    return pd.DataFrame(frame)
