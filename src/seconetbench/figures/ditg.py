"""The D-ITG workloads per setup, like the paper's Figures 5 (synthetic: bursty, tcp100) and 6
(realistic: quake3, video): per-flow bitrate and per-flow one-way delay, one column per workload.
docs/workloads.md describes both figures."""

from __future__ import annotations

import altair as alt
import pandas as pd

from seconetbench.errors import InvalidValueError
from seconetbench.figures import FigureSpec, register
from seconetbench.figures._common import (
    CELL, CELL_CONVERGENCE, CELL_STATISTICS, cell_tooltips, drawn_cells, flagged_axis, flagged_label, inline,
    look_up_cells, look_up_setup_labels, median_tick, no_rows, plural, reps_text, require, small_multiples,
    technology_color, unconverged_note,
)

FLOW_KEYS = ["setup", "scenario", "filter", "containers", "workload", "traffic", "rep", "pair", "flow"]
PAIR_KEYS = [key for key in FLOW_KEYS if key != "flow"]


def per_flow(ditg_frame: pd.DataFrame) -> pd.DataFrame:
    """One row per flow: its average bitrate (ITGDec's summary, interval 0) and the median of the
    mean delays of its intervals that received packets. The median keeps the ~1 s delay that
    D-ITG stamps on the last packet of every burst (one interval per burst) from dominating."""
    whole = ditg_frame[ditg_frame["interval"] == 0].set_index(FLOW_KEYS)[["bitrate_kbps", "packets"]]
    intervals = ditg_frame[(ditg_frame["interval"] > 0) & ditg_frame["delay_ms"].notna()]
    delay = intervals.groupby(FLOW_KEYS, observed=True)["delay_ms"].median().rename("delay_ms")
    return whole.join(delay).reset_index()


def per_pair(ditg_frame: pd.DataFrame) -> pd.DataFrame:
    """One row per pair and repetition: ``throughput_kbps``, the payload bytes all its flows
    received (ITGDec's whole-flow rows) × 8 over the seconds its intervals cover (from the pair's
    first received packet to the end of its last interval), the paper's unit in its Figs. 8 and 9;
    and ``flows``. A pair whose intervals were not recorded falls back to its longest flow."""
    require(ditg_frame, [*FLOW_KEYS, "interval", "start_s", "duration_s", "bytes"], "ditg per pair")
    whole = ditg_frame[ditg_frame["interval"] == 0]
    received = whole.groupby(PAIR_KEYS, observed=True).agg(bytes=("bytes", "sum"), flows=("flow", "nunique"),
                                                           longest_s=("duration_s", "max"))
    intervals = ditg_frame[ditg_frame["interval"] > 0]
    covered = (intervals["start_s"] + intervals["duration_s"]).groupby(
        [intervals[key] for key in PAIR_KEYS], observed=True).max().rename("covered_s")
    pairs = received.join(covered)
    seconds = pairs["covered_s"].fillna(pairs["longest_s"])
    pairs["duration_s"] = seconds
    pairs["throughput_kbps"] = (pairs["bytes"] * 8 / 1e3 / seconds).where(seconds > 0)
    return pairs.drop(columns=["covered_s", "longest_s"]).reset_index()


def _boxes(ditg_frame: pd.DataFrame, summary_frame: pd.DataFrame, figure: str, value: str, axis_title: str,
           title: str, note: str) -> alt.TopLevelMixin:
    require(ditg_frame, [*FLOW_KEYS, "interval", "bitrate_kbps", "packets", "delay_ms"], figure)
    if ditg_frame.empty:
        raise no_rows(figure, "'bursty', 'tcp100', 'quake3' or 'video'")
    flows = per_flow(ditg_frame)
    data = flows.loc[flows[value].notna(), [*FLOW_KEYS, value]]
    if data.empty:
        raise InvalidValueError(f"no rows for figure {figure}: no flow received a packet")
    # the boxes draw one value per flow, not the summary's per-interval delay: their own n, median
    # and CI, with the convergence the workflow decided for the cell
    cells = drawn_cells(data, value, CELL, summary_frame, figure)
    subtitle = [f"n = {len(data):,} flows (one value per flow and repetition); "
                f"{plural(data['setup'].nunique(), 'setup')}, {reps_text(data)}", note,
                "n, median and its 95 % CI of each box in the median's tooltip", unconverged_note()]
    y = alt.Y("label:N", title="setup (implementation)", axis=flagged_axis(labelLimit=400))
    x = alt.X(f"{value}:Q", title=axis_title, scale=alt.Scale(zero=False))
    color = technology_color("filter", data, "packet filter")
    box = alt.Chart().mark_boxplot(size=14).encode(x=x, y=y, color=color)
    per_cell = alt.Chart().transform_aggregate(
        q1=f"q1({value})", q3=f"q3({value})",
        groupby=["setup", "setup_label", "label", "filter", "containers", "workload", *CELL_STATISTICS,
                 *CELL_CONVERGENCE])
    median = median_tick(per_cell, 14, x=alt.X("median:Q"), y=y, tooltip=[
            alt.Tooltip("setup_label:N", title="setup (implementation)"),
            alt.Tooltip("workload:N", title="workload"),
            *cell_tooltips(axis_title),
            alt.Tooltip("q1:Q", title="25th percentile", format=",.3f"),
            alt.Tooltip("q3:Q", title="75th percentile", format=",.3f"),
        ])
    chart = (
        look_up_setup_labels(look_up_cells(alt.layer(box, median, data=inline(data)), cells, CELL), ditg_frame, figure)
        .transform_calculate(label=flagged_label("datum.setup_label"))
        .properties(width=260)
    )
    # a column per workload, a row of panels per scenario x container count
    return small_multiples(chart, data, alt.Column("workload:N", title="workload"), independent=("x", "y")).properties(
        title=alt.TitleParams(title, subtitle=subtitle, anchor="start"))


def ditg_bitrate(ditg_frame: pd.DataFrame, summary_frame: pd.DataFrame) -> alt.TopLevelMixin:
    """Average received payload bitrate of each D-ITG flow, one box per setup, one column per workload."""
    return _boxes(ditg_frame, summary_frame, "ditg_bitrate", "bitrate_kbps", "bitrate per flow (kbit/s)",
                  "D-ITG workloads: bitrate per flow",
                  "payload bytes received × 8 / (last − first arrival) (ITGDec); box: quartiles, whiskers: 1.5 IQR")


def ditg_delay(ditg_frame: pd.DataFrame, summary_frame: pd.DataFrame) -> alt.TopLevelMixin:
    """One-way delay of each D-ITG flow (median of its interval means), one box per setup and workload."""
    return _boxes(ditg_frame, summary_frame, "ditg_delay", "delay_ms", "one-way delay per flow (ms)",
                  "D-ITG workloads: one-way delay per flow",
                  "per flow: median of the mean delays of its intervals (robust to bursty mode's ~1 s stamp "
                  "per burst); box: quartiles, whiskers: 1.5 IQR")


register(FigureSpec(
    name="ditg_bitrate", table="ditg", extra_tables=("summary",), builder=ditg_bitrate,
    caption="Average received bitrate of each D-ITG flow per setup (box: quartiles and median, whiskers: "
            "1.5 IQR), one column per D-ITG workload; n in the subtitle, n, median and its 95 % CI per box in "
            "the tooltip, and a red median and a red ⚠ after the setup where the repetitions did not converge.",
))
register(FigureSpec(
    name="ditg_delay", table="ditg", extra_tables=("summary",), builder=ditg_delay,
    caption="One-way delay of each D-ITG flow (median of its per-interval mean delays) per setup, one "
            "column per D-ITG workload; n in the subtitle, n, median and its 95 % CI per box in the tooltip, "
            "and a red median and a red ⚠ after the setup where the repetitions did not converge.",
))
