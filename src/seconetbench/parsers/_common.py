"""Helpers shared by the parsers: the result type, line numbering, numbers with context, typed frames.

Kept out of ``parsers/__init__.py``, which holds only the registry and the two entry points.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from seconetbench.errors import InvalidValueError, ParseError


@dataclass(frozen=True, eq=False)
class Parsed:
    """What every parser returns.

    ``samples`` is tidy (one row per probe, interval or flow) with units in the column names;
    ``summary`` holds the tool's own totals as plain Python scalars (float/int/str/bool/None).
    ``eq=False`` because DataFrames have no truth value; compare with ``pandas.testing``.
    """

    samples: pd.DataFrame
    summary: dict[str, Any]


def numbered_lines(text: str) -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, line)`` with 1-based numbers, as an editor would show them.

    A trailing ``\\r`` (CRLF files) is dropped; other carriage returns are left to the caller
    (uperf uses them inside a line to redraw its progress).
    """
    for number, line in enumerate(text.split("\n"), start=1):
        yield number, line.removesuffix("\r")


def to_float(token: str, what: str, source: str | None, line: int | None, *, allow_nan: bool = False) -> float:
    """Parse *token* as a float, or raise a ParseError naming *what* was expected and where.

    NaN and infinities are refused unless *allow_nan*: the tools print ``-nan`` or ``inf`` only
    when they had nothing to measure, and a silent NaN would travel into the tables.
    """
    try:
        value = float(token)
    except ValueError:
        raise ParseError(f"expected a number for {what}, got {token!r}", source, line) from None
    if not allow_nan and not math.isfinite(value):
        raise ParseError(f"{what} is {token!r}: the tool had nothing to measure", source, line)
    return value


def to_int(token: str, what: str, source: str | None, line: int | None) -> int:
    """Parse *token* as a base-10 integer, or raise a ParseError naming *what* and where."""
    try:
        return int(token)
    except ValueError:
        raise ParseError(f"expected an integer for {what}, got {token!r}", source, line) from None


def typed_frame(
    rows: Sequence[Mapping[str, Any]] | Mapping[str, Sequence[Any]], dtypes: Mapping[str, Any]
) -> pd.DataFrame:
    """Build a DataFrame with exactly the columns of *dtypes*, in that order and with those dtypes.

    Works for zero rows too, so an empty result still has the documented schema.
    *rows* is either a list of records or a mapping column -> values.
    """
    if isinstance(rows, Mapping) and set(rows) != set(dtypes):
        # pandas would silently add the missing columns as NaN: a bug in the caller, not in the input.
        raise InvalidValueError(f"columns {sorted(rows)} do not match the schema {sorted(dtypes)}")
    frame = pd.DataFrame(rows, columns=list(dtypes))
    return frame.astype(dict(dtypes))
