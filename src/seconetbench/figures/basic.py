"""The walking skeleton's figures: latency per setup, throughput by payload size."""

from __future__ import annotations

import altair as alt
import pandas as pd

from seconetbench import stats
from seconetbench.errors import InvalidValueError
from seconetbench.figures import FigureSpec, register
from seconetbench.figures._common import (
    CELL, CELL_CONVERGENCE, CELL_STATISTICS, cell_tooltips, flagged_axis, flagged_label, inline, look_up_cells, look_up_setup_labels,
    median_tick, no_rows, plural, reps_text, require, small_multiples, summary_cells, technology_color,
    unconverged_note,
)


# --------------------------------------------------------------------------------------------
# latency
LATENCY_COLUMNS = ["setup", "scenario", "filter", "containers", "workload", "rep", "pair", "rtt_ms"]


def latency_boxplot(latency_frame: pd.DataFrame, summary_frame: pd.DataFrame) -> alt.TopLevelMixin:
    """Box plot of the round-trip time of received probes, one box per setup, coloured by filter.

    y: setup, labelled "setup (implementation), n=…"; x: ``rtt_ms``. Boxes follow Vega-Lite's default (whiskers at
    1.5 IQR, points beyond them drawn as outliers). A tick on each median carries a tooltip with
    the summary table's n, median and 95 % CI of the cell, lost probes and percentiles; it is red,
    and the setup's label ends in a red "⚠", where the cell's repetitions did not converge. With
    several container counts, one row per count; with several latency workloads, one column per
    workload.
    """
    figure = "latency_boxplot"
    require(latency_frame, [*LATENCY_COLUMNS, "implementation", "received"], figure)
    if latency_frame.empty:
        raise no_rows(figure, "'latency'")
    frame = latency_frame[[*LATENCY_COLUMNS, "received"]]
    received = frame["received"].fillna(False).astype(bool) & frame["rtt_ms"].notna()
    data = frame.loc[received, LATENCY_COLUMNS]
    if data.empty:
        raise InvalidValueError(
            f"no rows for figure {figure}: all {len(frame):,} probes were lost (no received probe has an rtt_ms)"
        )
    sent = frame.groupby(["setup", "workload"], observed=True).size().rename("sent")
    data = data.join(sent, on=["setup", "workload"])
    cells = summary_cells(summary_frame, "rtt_ms", figure)

    n_setups = data["setup"].nunique()
    several_workloads = frame["workload"].nunique() > 1
    lost = len(frame) - len(data)
    subtitle = [
        f"n = {len(data):,} received probes of {len(frame):,} sent ({lost:,} lost); "
        f"{plural(n_setups, 'setup')}, {reps_text(data)}",
        "box: quartiles and median; whiskers: 1.5 IQR; implementation and n per setup in the axis label; n, median and "
        "its 95 % CI in the median's tooltip",
        unconverged_note(),
    ]

    group = ["setup", "setup_label", "filter", "containers", "workload"]
    y = alt.Y("label:N", title="setup (implementation)", sort="ascending", axis=flagged_axis(labelLimit=400))
    x = alt.X("rtt_ms:Q", title="round-trip time (ms)", scale=alt.Scale(zero=False))
    color = technology_color("filter", data, "packet filter")
    box = alt.Chart().mark_boxplot(size=14).encode(x=x, y=y, color=color)
    # one row per cell: the box's own percentiles; n, median and CI come from the summary lookup
    per_cell = (
        alt.Chart()
        .transform_aggregate(
            median_rtt_ms="median(rtt_ms)",
            q1_rtt_ms="q1(rtt_ms)",
            q3_rtt_ms="q3(rtt_ms)",
            min_rtt_ms="min(rtt_ms)",
            max_rtt_ms="max(rtt_ms)",
            sent="max(sent)",
            groupby=[*group, "label", *CELL_STATISTICS, *CELL_CONVERGENCE],
        )
        .transform_calculate(lost="datum.sent - datum.n")
    )
    median = median_tick(
        per_cell,
        14,
        x=alt.X("median_rtt_ms:Q"),
        y=y,
        tooltip=[
            alt.Tooltip("setup_label:N", title="setup (implementation)"),
            alt.Tooltip("filter:N", title="packet filter"),
            alt.Tooltip("containers:Q", title="containers"),
            *cell_tooltips("RTT (ms)"),
            alt.Tooltip("lost:Q", title="lost probes", format=","),
            alt.Tooltip("q1_rtt_ms:Q", title="25th percentile RTT (ms)", format=".3f"),
            alt.Tooltip("q3_rtt_ms:Q", title="75th percentile RTT (ms)", format=".3f"),
            alt.Tooltip("min_rtt_ms:Q", title="min RTT (ms)", format=".3f"),
            alt.Tooltip("max_rtt_ms:Q", title="max RTT (ms)", format=".3f"),
        ],
    )
    chart = (
        look_up_setup_labels(look_up_cells(alt.layer(box, median, data=inline(data)), cells, CELL), latency_frame, figure)
        .transform_joinaggregate(n_setup="count()", groupby=["setup", "workload"])
        .transform_calculate(label=flagged_label("datum.setup_label + ', n=' + format(datum.n_setup, ',')"))
    )
    title = alt.TitleParams("Round-trip time per setup", subtitle=subtitle, anchor="start")
    # one panel per scenario x container count (a full sweep: 15 or 24 setups each), a column per workload
    column = alt.Column("workload:N", title="workload") if several_workloads else None
    return small_multiples(chart.properties(width=420), data, column).properties(title=title)


# --------------------------------------------------------------------------------------------
# throughput
THROUGHPUT_COLUMNS = [
    "setup", "scenario", "filter", "containers", "workload", "protocol", "generator", "payload_bytes",
    "rep", "pair", "flows", "duration_s", "throughput_mbps",
]  # fmt: skip


def throughput_by_payload(throughput_frame: pd.DataFrame, summary_frame: pd.DataFrame) -> alt.TopLevelMixin:
    """Per-pair throughput, one horizontal box (and its points) per setup, one column per payload
    size (and protocol) and one row of panels per scenario x container count.

    Each point is one pair in one repetition (:func:`stats.per_pair_throughput`: bytes of all the
    pair's flows over the seconds they cover). y: setup, labelled with its implementation; x:
    ``throughput_mbps``; colour: the packet filter, in its colour of every figure. A tick on each
    box's median and the points carry the summary table's n, median and 95 % CI of the box's
    cell; the tick is red, and the setup's label ends in a red "⚠", where the cell's repetitions
    did not converge.
    """
    figure = "throughput_by_payload"
    if throughput_frame.empty:
        raise no_rows(figure, "'throughput_<payload>'")
    pairs = stats.per_pair_throughput(throughput_frame)
    data = pairs.loc[pairs["throughput_mbps"].notna(), THROUGHPUT_COLUMNS]
    if data.empty:
        raise InvalidValueError(f"no rows for figure {figure}: no pair covered a positive duration")
    cells = summary_cells(summary_frame, "throughput_mbps", figure)
    box_keys = ["setup", "workload", "protocol", "payload_bytes"]  # one box = one setup x workload cell

    n_setups = data["setup"].nunique()
    subtitle = [
        f"n = {len(data):,} per-pair values (one per pair and repetition); "
        f"{plural(n_setups, 'setup')}, {reps_text(data)}",
        "pair throughput = bytes of all its flows × 8 / seconds covered; box: quartiles and median, whiskers: 1.5 IQR; "
        "n, median and its 95 % CI per box in the tooltips",
        unconverged_note(),
    ]
    # one column per payload, or per payload and protocol where a sweep measured both protocols
    several_protocols = data["protocol"].nunique() > 1
    # padded on the left, so that the names sort by size: Vega-Lite orders a column facet's headers
    # by their text whatever the `sort` when rows are faceted too (seen with 6.4), while it orders
    # the panels by `sort`
    width = len(str(int(data["payload_bytes"].max())))
    column_expression = (f"pad(datum.payload_bytes + '', {width}, ' ', 'left') + ' B'"
                         + (" + ', ' + datum.protocol" if several_protocols else ""))
    y = alt.Y("label:N", title="setup (implementation)", sort="ascending", axis=flagged_axis(labelLimit=400))
    x = alt.X("throughput_mbps:Q", title="throughput per pair (Mbit/s)")
    color = technology_color("filter", data, "packet filter")
    box = alt.Chart().mark_boxplot(size=12, opacity=0.6).encode(x=x, y=y, color=color)
    box_tooltips = cell_tooltips("throughput of this box (Mbit/s)", ",.1f")
    points = alt.Chart().mark_circle(size=20, opacity=0.8).encode(
        x=x,
        y=y,
        color=color,
        tooltip=[
            alt.Tooltip("setup_label:N", title="setup (implementation)"),
            alt.Tooltip("workload:N", title="workload"),
            alt.Tooltip("protocol:N", title="protocol"),
            alt.Tooltip("generator:N", title="generator"),
            alt.Tooltip("payload_bytes:Q", title="payload (bytes)"),
            alt.Tooltip("rep:Q", title="repetition"),
            alt.Tooltip("pair:N", title="pair"),
            alt.Tooltip("flows:Q", title="flows"),
            alt.Tooltip("duration_s:Q", title="covered (s)", format=".2f"),
            alt.Tooltip("throughput_mbps:Q", title="throughput (Mbit/s)", format=",.1f"),
            *box_tooltips,
        ],
    )
    per_box = alt.Chart().transform_aggregate(
        count="count()", groupby=[*box_keys, "setup_label", "label", *CELL_STATISTICS, *CELL_CONVERGENCE])
    median = median_tick(
        per_box, 12, x=alt.X("median:Q"), y=y,
        tooltip=[alt.Tooltip("setup_label:N", title="setup (implementation)"), alt.Tooltip("workload:N", title="workload"),
                 *box_tooltips])
    layers = alt.layer(box, points, median, data=inline(data))
    chart = (look_up_setup_labels(look_up_cells(layers, cells, CELL), pairs, figure)
             .transform_calculate(label=flagged_label("datum.setup_label"))
             .properties(width=300))
    title = alt.TitleParams("Throughput per pair by payload size", subtitle=subtitle, anchor="start")
    column = alt.Column("payload:N", title="payload (bytes per write)", sort="ascending")
    # the throughput of 64 B and 1370 B writes differs tenfold: an x scale per panel
    faceted = small_multiples(chart, data, column, independent=("x", "y"))
    return faceted.transform_calculate(payload=column_expression).properties(title=title)


register(
    FigureSpec(name="latency_boxplot",
        table="latency",
        extra_tables=("summary",),
        builder=latency_boxplot,
        caption=(
            "Round-trip time of the received ping probes per setup (box: quartiles and median, "
            "whiskers: 1.5 IQR), coloured by packet filter; implementation and n per setup in the axis label; n, median and "
            "its 95 % CI in the tooltip of the median tick, which is red, with a red ⚠ after the "
            "setup, where the setup's repetitions did not converge."
        ),
    )
)


register(
    FigureSpec(name="throughput_by_payload",
        table="throughput",
        extra_tables=("summary",),
        builder=throughput_by_payload,
        caption=(
            "Throughput of each container pair in each repetition (all its flows' bytes over the "
            "seconds covered) per setup, coloured by packet filter, one column per payload size and a row of panels "
            "per scenario and container count; n, median and its 95 % CI per box in the tooltips, and a red median "
            "tick with a red ⚠ after the setup where the repetitions did not converge."
        ),
    )
)
