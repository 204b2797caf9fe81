"""Altair chart builders over the benchmark tables, and one function that saves a chart.

Every builder is pure: it takes a table (a pandas DataFrame in the schema of ``tables.py``) and
returns an Altair chart; only :func:`save_chart` touches files. The data is embedded in the chart
as inline values (not as a DataFrame), so ``chart.to_dict()``/``to_json()`` never hit Altair's
``max_rows`` limit and do not depend on global data-transformer settings (see :func:`_inline`). Builders keep only the
columns they draw to keep the embedded spec small.

Every figure states n: in its subtitle (total) and per mark (axis label or tooltip). The registry
:data:`FIGURES` lists every figure with the table kind it reads; the workflow builds each figure
whose table exists. docs/figures.md describes each figure.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import altair as alt
import pandas as pd
import vl_convert

from seconetbench import stats
from seconetbench.fsutil import atomic_path

# Vega-Lite version for the SVG export: the one Altair writes its specs for (e.g. "6.4").
# Falls back to vl-convert's newest if it does not bundle that version.
_VL_VERSION: str | None = ".".join(alt.SCHEMA_VERSION.lstrip("v").split(".")[:2])
if _VL_VERSION not in vl_convert.get_vegalite_versions():
    _VL_VERSION = None


def _inline(frame: pd.DataFrame) -> dict:
    """Embed *frame* as inline JSON values (NaN → null, numpy scalars → JSON numbers).

    A plain ``{"values": [...]}`` dict rather than ``alt.Data``: Altair neither applies its
    ``max_rows`` limit to it nor validates every row against the schema (which takes seconds at
    some 10k rows); ``to_dict()`` moves it to the top-level ``datasets``.
    """
    return {"values": json.loads(frame.to_json(orient="records", double_precision=10))}


def _require(frame: pd.DataFrame, columns: list[str], figure: str) -> None:
    absent = [c for c in columns if c not in frame.columns]
    if absent:
        raise ValueError(f"figure {figure}: the table lacks columns {absent}; it has {list(frame.columns)}")


def _no_rows(figure: str, workload: str) -> ValueError:
    return ValueError(f"no rows for figure {figure}; did the sweep measure workload {workload}?")


def _reps_text(frame: pd.DataFrame) -> str:
    reps = frame.groupby("setup", observed=True)["rep"].nunique()
    low, high = int(reps.min()), int(reps.max())
    return f"{low} repetition{'s' if high > 1 else ''}" if low == high else f"{low}–{high} repetitions"


def _plural(count: int, word: str) -> str:
    return f"{count:,} {word}{'' if count == 1 else 's'}"


# --------------------------------------------------------------------------------------------
# latency
LATENCY_COLUMNS = ["setup", "filter", "containers", "workload", "rep", "pair", "rtt_ms"]


def latency_boxplot(latency_frame: pd.DataFrame) -> alt.TopLevelMixin:
    """Box plot of the round-trip time of received probes, one box per setup, coloured by filter.

    y: setup, labelled "setup (n=…)"; x: ``rtt_ms``. Boxes follow Vega-Lite's default (whiskers at
    1.5 IQR, points beyond them drawn as outliers). A black tick on each median carries a tooltip
    with n, lost probes and percentiles. With several container counts, one row per count; with
    several latency workloads, one column per workload.
    """
    figure = "latency_boxplot"
    _require(latency_frame, [*LATENCY_COLUMNS, "received"], figure)
    if latency_frame.empty:
        raise _no_rows(figure, "'latency'")
    frame = latency_frame[[*LATENCY_COLUMNS, "received"]]
    received = frame["received"].fillna(False).astype(bool) & frame["rtt_ms"].notna()
    data = frame.loc[received, LATENCY_COLUMNS]
    if data.empty:
        raise ValueError(
            f"no rows for figure {figure}: all {len(frame):,} probes were lost (no received probe has an rtt_ms)"
        )
    sent = frame.groupby(["setup", "workload"], observed=True).size().rename("sent")
    data = data.join(sent, on=["setup", "workload"])

    n_setups = data["setup"].nunique()
    several_containers = frame["containers"].nunique() > 1
    several_workloads = frame["workload"].nunique() > 1
    lost = len(frame) - len(data)
    subtitle = [
        f"n = {len(data):,} received probes of {len(frame):,} sent ({lost:,} lost); "
        f"{_plural(n_setups, 'setup')}, {_reps_text(data)}",
        "box: quartiles and median; whiskers: 1.5 IQR; n per setup in the axis label",
    ]

    group = ["setup", "filter", "containers", "workload"]
    y = alt.Y("label:N", title="setup", sort="ascending", axis=alt.Axis(labelLimit=400))
    x = alt.X("rtt_ms:Q", title="round-trip time (ms)", scale=alt.Scale(zero=False))
    color = alt.Color("filter:N", title="packet filter")
    box = alt.Chart().mark_boxplot(size=14).encode(x=x, y=y, color=color)
    median = (
        alt.Chart()
        .transform_aggregate(
            n="count()",
            median_rtt_ms="median(rtt_ms)",
            q1_rtt_ms="q1(rtt_ms)",
            q3_rtt_ms="q3(rtt_ms)",
            min_rtt_ms="min(rtt_ms)",
            max_rtt_ms="max(rtt_ms)",
            sent="max(sent)",
            groupby=[*group, "label"],
        )
        .transform_calculate(lost="datum.sent - datum.n")
        .mark_tick(color="black", thickness=2, size=14)
        .encode(
            x=alt.X("median_rtt_ms:Q"),
            y=y,
            tooltip=[
                alt.Tooltip("setup:N", title="setup"),
                alt.Tooltip("filter:N", title="packet filter"),
                alt.Tooltip("containers:Q", title="containers"),
                alt.Tooltip("n:Q", title="n (received probes)", format=","),
                alt.Tooltip("lost:Q", title="lost probes", format=","),
                alt.Tooltip("median_rtt_ms:Q", title="median RTT (ms)", format=".3f"),
                alt.Tooltip("q1_rtt_ms:Q", title="25th percentile RTT (ms)", format=".3f"),
                alt.Tooltip("q3_rtt_ms:Q", title="75th percentile RTT (ms)", format=".3f"),
                alt.Tooltip("min_rtt_ms:Q", title="min RTT (ms)", format=".3f"),
                alt.Tooltip("max_rtt_ms:Q", title="max RTT (ms)", format=".3f"),
            ],
        )
    )
    chart = (
        alt.layer(box, median, data=_inline(data))
        .transform_joinaggregate(n_setup="count()", groupby=["setup", "workload"])
        .transform_calculate(label="datum.setup + ' (n=' + format(datum.n_setup, ',') + ')'")
    )
    title = alt.TitleParams("Round-trip time per setup", subtitle=subtitle, anchor="start")
    if several_containers or several_workloads:
        facet = {}
        if several_containers:
            facet["row"] = alt.Row("containers:O", title="containers")
        if several_workloads:
            facet["column"] = alt.Column("workload:N", title="workload")
        return chart.properties(width=420).facet(**facet).resolve_scale(y="independent").properties(title=title)
    return chart.properties(width=420, title=title)


# --------------------------------------------------------------------------------------------
# throughput
THROUGHPUT_COLUMNS = [
    "setup", "filter", "containers", "workload", "protocol", "generator", "payload_bytes",
    "rep", "pair", "flows", "duration_s", "throughput_mbps",
]  # fmt: skip


def throughput_by_payload(throughput_frame: pd.DataFrame) -> alt.TopLevelMixin:
    """Per-pair throughput over the payload size, one box (and its points) per setup and payload.

    Each point is one pair in one repetition (:func:`stats.per_pair_throughput`: bytes of all the
    pair's flows over the seconds they cover). x: ``payload_bytes`` (ordinal), offset and colour:
    setup, y: ``throughput_mbps``. Tooltips on the points give the pair's value and n and median of
    its box. With several protocols, one column per protocol.
    """
    figure = "throughput_by_payload"
    if throughput_frame.empty:
        raise _no_rows(figure, "'throughput_<payload>'")
    pairs = stats.per_pair_throughput(throughput_frame)
    data = pairs.loc[pairs["throughput_mbps"].notna(), THROUGHPUT_COLUMNS]
    if data.empty:
        raise ValueError(f"no rows for figure {figure}: no pair covered a positive duration")
    box_keys = ["setup", "workload", "protocol", "payload_bytes"]

    n_setups = data["setup"].nunique()
    n_payloads = data["payload_bytes"].nunique()
    subtitle = [
        f"n = {len(data):,} per-pair values (one per pair and repetition); "
        f"{_plural(n_setups, 'setup')}, {_reps_text(data)}",
        "pair throughput = bytes of all its flows × 8 / seconds covered; n per box in the tooltip",
    ]
    x = alt.X("payload_bytes:O", title="payload (bytes per write)", sort="ascending", axis=alt.Axis(labelAngle=0))
    offset = alt.XOffset("setup:N", sort="ascending")
    y = alt.Y("throughput_mbps:Q", title="throughput (Mbit/s)")
    # 20 distinguishable colours beyond 10 setups; past 20 they repeat (the tooltip names the setup)
    scale = alt.Scale(scheme="tableau20") if n_setups > 10 else alt.Undefined
    color = alt.Color("setup:N", title="setup", sort="ascending", scale=scale, legend=alt.Legend(labelLimit=400))
    box = alt.Chart().mark_boxplot(size=12, opacity=0.6).encode(x=x, xOffset=offset, y=y, color=color)
    points = (
        alt.Chart()
        .transform_joinaggregate(n="count()", median_mbps="median(throughput_mbps)", groupby=box_keys)
        .mark_circle(size=28, opacity=0.9)
        .encode(
            x=x,
            xOffset=offset,
            y=y,
            color=color,
            tooltip=[
                alt.Tooltip("setup:N", title="setup"),
                alt.Tooltip("workload:N", title="workload"),
                alt.Tooltip("protocol:N", title="protocol"),
                alt.Tooltip("generator:N", title="generator"),
                alt.Tooltip("payload_bytes:Q", title="payload (bytes)"),
                alt.Tooltip("rep:Q", title="repetition"),
                alt.Tooltip("pair:N", title="pair"),
                alt.Tooltip("flows:Q", title="flows"),
                alt.Tooltip("duration_s:Q", title="covered (s)", format=".2f"),
                alt.Tooltip("throughput_mbps:Q", title="throughput (Mbit/s)", format=",.1f"),
                alt.Tooltip("n:Q", title="n in this box"),
                alt.Tooltip("median_mbps:Q", title="median of this box (Mbit/s)", format=",.1f"),
            ],
        )
    )
    width = max(320, n_payloads * (n_setups * 16 + 24))
    chart = alt.layer(box, points, data=_inline(data)).properties(width=width, height=300)
    title = alt.TitleParams("Throughput per pair by payload size", subtitle=subtitle, anchor="start")
    if data["protocol"].nunique() > 1:
        return chart.facet(column=alt.Column("protocol:N", title="protocol")).properties(title=title)
    return chart.properties(title=title)


# --------------------------------------------------------------------------------------------
# registry
@dataclass(frozen=True)
class FigureSpec:
    """A figure the workflow can build: *builder* turns the *table* kind's table into a chart."""

    name: str  # file stem under results/figures/
    table: str  # table kind it reads (tables.MEASURES key)
    builder: Callable[[pd.DataFrame], alt.TopLevelMixin]
    caption: str  # one sentence for the Snakemake report


FIGURES: dict[str, FigureSpec] = {
    spec.name: spec
    for spec in [
        FigureSpec(
            name="latency_boxplot",
            table="latency",
            builder=latency_boxplot,
            caption=(
                "Round-trip time of the received ping probes per setup (box: quartiles and median, "
                "whiskers: 1.5 IQR), coloured by packet filter; n per setup in the axis label."
            ),
        ),
        FigureSpec(
            name="throughput_by_payload",
            table="throughput",
            builder=throughput_by_payload,
            caption=(
                "Throughput of each container pair in each repetition (all its flows' bytes over the "
                "seconds covered) by payload size and setup; n per box in the tooltips."
            ),
        ),
    ]
}


# --------------------------------------------------------------------------------------------
# the one I/O function
def save_chart(chart: alt.TopLevelMixin, out_base: str | Path) -> list[Path]:
    """Write *chart* as ``<out_base>.html`` (self-contained, opens offline) and ``<out_base>.svg``.

    The HTML inlines the Vega, Vega-Lite and vega-embed libraries (from vl-convert, no network).
    The SVG is rendered by vl-convert. Each file is written to a temporary name and renamed, so a
    reader never sees half a figure. Returns the written paths.
    """
    out_base = Path(out_base)
    html_path, svg_path = out_base.with_suffix(".html"), out_base.with_suffix(".svg")
    with alt.data_transformers.disable_max_rows():
        spec_json = chart.to_json()
        with atomic_path(html_path) as tmp:
            chart.save(str(tmp), format="html", inline=True)
    svg = vl_convert.vegalite_to_svg(spec_json, vl_version=_VL_VERSION)
    with atomic_path(svg_path) as tmp:
        tmp.write_text(svg, encoding="utf-8")
    return [html_path, svg_path]
