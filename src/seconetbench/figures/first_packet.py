"""A flow's first packet against its later ones: one box per setup and probe kind.

``first_against_later`` draws both the latency workload's view (the first ping of a pair
against its steady state, figure ``first_packet``, figures/comparison.py) and the controlled
one of the first_packet workload (caches flushed before every probe, figure
``first_packet_flushed``)."""

from __future__ import annotations

import altair as alt
import pandas as pd

from seconetbench.figures import FigureSpec, register
from seconetbench.figures._common import (
    CELL, CELL_CONVERGENCE, CELL_STATISTICS, cell_tooltips, drawn_cells, flagged_axis, flagged_label, inline,
    look_up_cells, look_up_setup_labels, median_tick, no_rows, plural, reps_text, require, small_multiples,
    unconverged_note,
)

PROBE = ["setup", "scenario", "containers", "filter", "workload", "rep", "pair", "flow"]


def first_against_later(long: pd.DataFrame, labels_frame: pd.DataFrame, summary_frame: pd.DataFrame, figure: str,
                        log_scale: bool = False) -> alt.TopLevelMixin:
    """Boxes of ``rtt_ms`` per setup and ``probe`` (the probe kind: first or later) of *long*,
    each with a median tick carrying its n, median and 95 % CI over the repetitions; a row of
    panels per scenario x container count, a column per workload when there are several. Setup
    labels (with the implementation) come from *labels_frame*, convergence from the summary."""
    box_of = [*CELL, "probe"]
    cells = drawn_cells(long, "rtt_ms", box_of, summary_frame, figure)
    y = alt.Y("label:N", title="setup (implementation)", axis=flagged_axis(labelLimit=400))
    offset = alt.YOffset("probe:N")
    scale = alt.Scale(type="log") if log_scale else alt.Undefined
    box = alt.Chart().mark_boxplot(size=10).encode(
        y=y, yOffset=offset, x=alt.X("rtt_ms:Q", title=f"round-trip time (ms{', log scale' if log_scale else ''})",
                                     scale=scale),
        color=alt.Color("probe:N", title="probe"))
    per_box = alt.Chart().transform_aggregate(  # one row per box, with its looked-up statistics
        count="count()", groupby=[*box_of, "setup_label", "label", *CELL_STATISTICS, *CELL_CONVERGENCE])
    median = median_tick(
        per_box, 10, y=y, yOffset=offset, x=alt.X("median:Q", scale=scale),
        tooltip=[alt.Tooltip("setup_label:N", title="setup (implementation)"), alt.Tooltip("workload:N", title="workload"),
                 alt.Tooltip("probe:N", title="probe"), *cell_tooltips("RTT (ms)")])
    chart = look_up_setup_labels(look_up_cells(alt.layer(box, median, data=inline(long)), cells, box_of),
                                 labels_frame, figure).transform_calculate(
        label=flagged_label("datum.setup_label")).properties(width=420)
    # independent y: a setup's label carries the convergence of its cell, which differs by workload
    column = alt.Column("workload:N", title="workload") if long["workload"].nunique() > 1 else None
    return small_multiples(chart, long, column)


def first_packet_flushed_figure(first_packet_frame: pd.DataFrame, summary_frame: pd.DataFrame) -> alt.TopLevelMixin:
    """The first_packet workload: per setup, a box of the first packets' RTT (caches flushed) and
    one of the same flows warm, on a log scale (an OVS upcall can cost 100 times a cached flow)."""
    figure = "first_packet_flushed"
    require(first_packet_frame, [*PROBE, "implementation", "first_ms", "warm_ms"], figure)
    if first_packet_frame.empty:
        raise no_rows(figure, "'first_packet'")
    long = first_packet_frame.melt(id_vars=PROBE, value_vars=["first_ms", "warm_ms"], var_name="probe",
                                   value_name="rtt_ms").dropna(subset=["rtt_ms"])
    long["probe"] = long["probe"].map({"first_ms": "first packet (caches flushed)", "warm_ms": "same flow, warm"})
    chart = first_against_later(long, first_packet_frame, summary_frame, figure, log_scale=True)
    lost = int(first_packet_frame["first_ms"].isna().sum())
    return chart.properties(title=alt.TitleParams(
        "First packet of a flow after flushing the flow caches, against the same flow warm", anchor="start",
        subtitle=[f"n = {plural(len(first_packet_frame), 'probe')} ({reps_text(first_packet_frame)}; "
                  f"{plural(lost, 'first packet')} lost); before each probe conntrack and the datapath's flow "
                  "cache (OVS) were flushed; n, median and its 95 % CI per box in the median's tooltip",
                  unconverged_note()]))


register(FigureSpec(
    name="first_packet_flushed", table="first_packet", extra_tables=("summary",), builder=first_packet_flushed_figure,
    caption="Round-trip time of a flow's first packet right after the setup's flow caches (conntrack, OVS datapath "
            "flows) were flushed, against the same flow's second packet, per setup on a log scale, with n, median and "
            "its 95 % CI per box in the tooltip, and a red median and a red ⚠ after the setup where the repetitions "
            "did not converge."))
