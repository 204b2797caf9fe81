"""Helpers shared by the figure modules."""

from __future__ import annotations

import json
from typing import Any

import altair as alt
import pandas as pd

from seconetbench import stats
from seconetbench.errors import InvalidValueError


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
        raise InvalidValueError(f"figure {figure}: the table lacks columns {absent}; it has {list(frame.columns)}")


def no_rows(figure: str, workload: str) -> ValueError:
    return ValueError(f"no rows for figure {figure}; did the sweep measure workload {workload}?")


def reps_text(frame: pd.DataFrame) -> str:
    reps = frame.groupby("setup", observed=True)["rep"].nunique()
    low, high = int(reps.min()), int(reps.max())
    return f"{low} repetition{'s' if high > 1 else ''}" if low == high else f"{low}–{high} repetitions"


def plural(count: int, word: str) -> str:
    return f"{count:,} {word}{'' if count == 1 else 's'}"


# --------------------------------------------------------------------------------------------
# per-cell statistics and convergence (a cell = one setup x workload, what repetitions repeat)
CELL = ["setup", "workload"]
# the summary table's columns a figure shows per cell (docs/tables.md, "summary"): the median
# and its 95 % CI over n repetitions, and how many samples the repetitions pooled
CELL_STATISTICS = ["n", "probes", "median", "median_ci_low", "median_ci_high"]
CELL_CONVERGENCE = ["repetitions", "convergence"]
NOT_CONVERGED = "not_converged"
# Vega expression: the datum's cell stopped at repetitions.max before its CI reached the target
UNCONVERGED_TEST = f"datum.convergence === '{NOT_CONVERGED}'"
UNCONVERGED_COLOUR = "#d62728"
# after the setup in an axis label, or above a mark; the subtitle says what it means. Only the
# glyph: Vega places a faceted axis's title over labels longer than about 200 px
UNCONVERGED_GLYPH = "⚠"


def summary_cells(summary_frame: pd.DataFrame, metric: str, figure: str) -> pd.DataFrame:
    """The *metric* rows of the summary table, for a figure that draws that very metric: per
    setup x workload its n, median, 95 % CI of the median, repetitions and convergence."""
    require(summary_frame, [*CELL, "metric", *CELL_STATISTICS, *CELL_CONVERGENCE], figure)
    rows = summary_frame.loc[summary_frame["metric"] == metric, [*CELL, *CELL_STATISTICS, *CELL_CONVERGENCE]]
    return rows.reset_index(drop=True)


def drawn_cells(values: pd.DataFrame, value_column: str, by: list[str], summary_frame: pd.DataFrame,
                figure: str) -> pd.DataFrame:
    """Per group *by* (a setup x workload cell, or finer): the median and 95 % CI of the drawn
    *value_column* over the repetitions (each repetition's median of *values*, which need a
    ``rep`` column: :func:`stats.repetition_summary`, as the summary table computes them; n =
    repetitions, probes = values drawn), with the cell's repetitions and convergence from the
    summary. For figures that draw another quantity than the summary's metric (per-flow D-ITG
    values, CPU per gigabit, first probes): the CI belongs to what is drawn, while convergence
    was decided per cell on the summary's metric."""
    require(summary_frame, [*CELL, *CELL_CONVERGENCE], figure)
    statistics = stats.repetition_summary(values, value_column, by)[[*by, *CELL_STATISTICS]]
    convergence = summary_frame[[*CELL, *CELL_CONVERGENCE]].drop_duplicates(CELL)
    return statistics.merge(convergence, on=CELL, how="left")


def cell_key_expression(columns: list[str]) -> str:
    """Vega expression joining *columns* of a datum like :func:`cell_keys` joins them in pandas."""
    return " + '|' + ".join(f"datum[{column!r}]" for column in columns)


def cell_keys(frame: pd.DataFrame, columns: list[str]) -> pd.Series:
    keys = frame[columns[0]].astype(str)
    for column in columns[1:]:
        keys = keys + "|" + frame[column].astype(str)
    return keys


def look_up_cells(chart: alt.TopLevelMixin, cells: pd.DataFrame, by: list[str]) -> alt.TopLevelMixin:
    """*chart* (a layer of raw rows) with each row's cell statistics and convergence looked up
    from *cells* (one row per group *by*). A lookup rather than a column per raw row keeps the
    embedded data small; it sits on the layer, not inside it, because Vega-Lite fails on a lookup
    inside a faceted layer ("Undefined data set name ... lookup")."""
    fields = [c for c in cells.columns if c not in by]
    keyed = cells[fields].assign(cell_key=cell_keys(cells, by))
    return chart.transform_calculate(cell_key=cell_key_expression(by)).transform_lookup(
        lookup="cell_key", from_=alt.LookupData(data=inline(keyed), key="cell_key", fields=fields))


def cell_tooltips(value_title: str, number_format: str = ",.3f") -> list[alt.Tooltip]:
    """Tooltips of a per-cell mark: n (the repetitions the CI is over), the samples they pooled,
    median, its 95 % CI, repetitions and convergence."""
    return [
        alt.Tooltip("n:Q", title="n (repetitions with a value)", format=","),
        alt.Tooltip("probes:Q", title="samples pooled over the repetitions", format=","),
        alt.Tooltip("median:Q", title=f"median {value_title}", format=number_format),
        alt.Tooltip("median_ci_low:Q", title="95 % CI of the median over the repetitions, low (none below 6)",
                    format=number_format),
        alt.Tooltip("median_ci_high:Q", title="95 % CI of the median over the repetitions, high",
                    format=number_format),
        alt.Tooltip("repetitions:Q", title="repetitions"),
        alt.Tooltip("convergence:N", title="convergence"),
    ]


def unconverged_note(marking: str = f"red median tick and a red {UNCONVERGED_GLYPH} after the setup") -> str:
    """The subtitle line that explains a figure's *marking* of unconverged cells."""
    return (f"{marking}: the cell's repetitions reached repetitions.max before the 95 % CI of its "
            "median was narrow enough (not converged)")


def median_tick(per_cell: alt.Chart, size: int, **encoding: Any) -> alt.Chart:
    """The tick on a box's median (*per_cell* has one row per box), black, or red where the
    box's cell did not converge; *encoding* places it and gives its tooltip."""
    return per_cell.mark_tick(thickness=2, size=size).encode(color=unconverged_colour(), **encoding)


def unconverged_colour(default: str = "black") -> dict:
    """Colour of a per-cell mark: red when its cell did not converge, *default* otherwise."""
    return alt.condition(UNCONVERGED_TEST, alt.value(UNCONVERGED_COLOUR), alt.value(default))


# what a label says for targets that did not record their implementation (docs/tables.md)
UNKNOWN_IMPLEMENTATION = "implementation unknown"


def implementation_label(name: str, implementation: Any) -> str:
    """How every figure names a setup or technology it compares: *name* and what ran it, e.g.
    "single-ovs-none-c2 (userspace)", "wireguard (userspace (wireguard-go 0.0.2023))". The
    implementation is the identity column `implementation` (or a deploy's own words for it); a
    setup id names it only when it was pinned, so the label says it for all, and says
    "(implementation unknown)" where a target did not record it."""
    known = isinstance(implementation, str) and implementation not in ("", "unknown")
    return f"{name} ({implementation if known else UNKNOWN_IMPLEMENTATION})"


def labelled(frame: pd.DataFrame, name: str = "setup") -> pd.DataFrame:
    """*frame* with a column ``<name>_label``: :func:`implementation_label` of each row's *name*
    (setup, solution, ...) and ``implementation``."""
    labels = [implementation_label(value, implementation)
              for value, implementation in zip(frame[name], frame["implementation"])]
    return frame.assign(**{f"{name}_label": pd.Series(labels, index=frame.index, dtype=object)})


def look_up_setup_labels(chart: alt.TopLevelMixin, frame: pd.DataFrame, figure: str) -> alt.TopLevelMixin:
    """*chart* (a layer of raw rows with a ``setup`` column) with each row's ``setup_label``
    (:func:`labelled`) looked up from the setups of *frame*. One label per setup rather than a
    column per raw row keeps the embedded data small (some 50 bytes per latency probe). A setup
    has one implementation: the cell fingerprint refuses repetitions that differ in it."""
    require(frame, ["setup", "implementation"], figure)
    labels = labelled(frame[["setup", "implementation"]].drop_duplicates("setup"))[["setup", "setup_label"]]
    return chart.transform_lookup(lookup="setup", from_=alt.LookupData(data=inline(labels), key="setup",
                                                                        fields=["setup_label"]))


def flagged_label(text_expression: str) -> str:
    """Vega expression: *text_expression* followed by " ⚠" when the datum's cell did not converge.
    For axis labels: unlike a text mark beside the box, a label never runs into the legend or off
    the plot."""
    return f"{text_expression} + ({UNCONVERGED_TEST} ? ' {UNCONVERGED_GLYPH}' : '')"


def flagged_axis(**axis: Any) -> alt.Axis:
    """An axis that draws the labels :func:`flagged_label` flagged in red. (Not bold: Vega sizes
    the axis by the labels' normal width, and a bold label would run into the axis title.)"""
    flagged = f"indexof(datum.label, '{UNCONVERGED_GLYPH}') >= 0"
    return alt.Axis(labelColor=alt.condition(flagged, alt.value(UNCONVERGED_COLOUR), alt.value("black")), **axis)


# Vega expression: the top of a per-cell mark, the CI's upper end, or the median where the cell
# has no CI (fewer than 6 repetitions)
CELL_TOP = "isValid(datum.median_ci_high) ? datum.median_ci_high : datum.median"


def unconverged_glyph(chart: alt.Chart) -> alt.Chart:
    """A red "⚠" just above every per-cell mark of *chart* whose cell did not converge (the
    caller encodes y at the top of the mark)."""
    # colour as an encoding: it must override a colour encoding the glyph inherits from *chart*
    glyph = chart.transform_filter(UNCONVERGED_TEST).mark_text(
        text=UNCONVERGED_GLYPH, fontWeight="bold", baseline="bottom", dy=-4)
    return glyph.encode(color=alt.value(UNCONVERGED_COLOUR))


def cell_point_layers(base: alt.Chart, y: alt.Y, tooltip: list) -> list[alt.Chart]:
    """Layers that draw one point per cell at its median on *base* (which encodes x and colour):
    the 95 % CI as an error bar, a filled point where the cell converged, a hollow one and a
    "⚠" where it did not."""
    interval = base.mark_rule().encode(y=alt.Y("median_ci_low:Q"), y2="median_ci_high:Q")
    # two point layers rather than a conditional fill, which would draw a second colour legend
    converged = base.transform_filter(f"!({UNCONVERGED_TEST})").mark_point(size=60, filled=True, opacity=1)
    unconverged = base.transform_filter(UNCONVERGED_TEST).mark_point(size=60, filled=False, strokeWidth=2)
    points = [layer.encode(y=y, tooltip=tooltip) for layer in (converged, unconverged)]
    warning = unconverged_glyph(base.transform_calculate(cell_top=CELL_TOP)).encode(y=alt.Y("cell_top:Q"))
    return [interval, *points, warning]
