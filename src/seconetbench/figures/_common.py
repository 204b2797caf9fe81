"""Helpers shared by the figure modules."""

from __future__ import annotations

import json

import pandas as pd


def inline(frame: pd.DataFrame) -> dict:
    """Embed *frame* as inline JSON values (NaN → null, numpy scalars → JSON numbers).

    A plain ``{"values": [...]}`` dict rather than ``alt.Data``: Altair neither applies its
    ``max_rows`` limit to it nor validates every row against the schema (which takes seconds at
    some 10k rows); ``to_dict()`` moves it to the top-level ``datasets``.
    """
    return {"values": json.loads(frame.to_json(orient="records", double_precision=10))}


def require(frame: pd.DataFrame, columns: list[str], figure: str) -> None:
    absent = [c for c in columns if c not in frame.columns]
    if absent:
        raise ValueError(f"figure {figure}: the table lacks columns {absent}; it has {list(frame.columns)}")


def no_rows(figure: str, workload: str) -> ValueError:
    return ValueError(f"no rows for figure {figure}; did the sweep measure workload {workload}?")


def reps_text(frame: pd.DataFrame) -> str:
    reps = frame.groupby("setup", observed=True)["rep"].nunique()
    low, high = int(reps.min()), int(reps.max())
    return f"{low} repetition{'s' if high > 1 else ''}" if low == high else f"{low}–{high} repetitions"


def plural(count: int, word: str) -> str:
    return f"{count:,} {word}{'' if count == 1 else 's'}"
