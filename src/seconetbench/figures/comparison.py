"""Each setup against its baseline, and a flow's first packet against the steady state."""

from __future__ import annotations

import altair as alt
import pandas as pd

from seconetbench.figures import FigureSpec, register
from seconetbench.figures._common import (
    CELL_CONVERGENCE, CELL_STATISTICS, NOT_CONVERGED, cell_tooltips, inline, labelled, no_rows, require,
    small_multiples, unconverged_note,
)
from seconetbench.figures.first_packet import first_against_later

EFFECT_STATISTICS = ["pairing", "ratio_to_baseline", "ratio_ci_low", "ratio_ci_high", "ratio_n", "effect_conclusive"]


def baseline_ratio(summary_frame: pd.DataFrame) -> alt.TopLevelMixin:
    """Each filter's effect: the summary's ratio to the same setup without a filter (ratio 1 = no
    cost), paired per round where the run order allowed it, with its 95 % CI as an error bar.

    Setups with extra rules are left out (rule_scaling shows them); effects whose CI contains 1
    (inconclusive) are drawn pale; cells whose repetitions did not converge are drawn hollow."""
    figure = "baseline_ratio"
    require(summary_frame, ["setup", "implementation", "filter", "metric", "workload", "effect_of", "baseline_setup",
                            *EFFECT_STATISTICS, *CELL_STATISTICS, *CELL_CONVERGENCE], figure)
    plain = summary_frame[~summary_frame["setup"].str.contains(r"-r\d+", regex=True)]
    if plain.empty:
        raise no_rows(figure, "any workload")
    data = plain[(plain["effect_of"] == "filter") & plain["ratio_to_baseline"].notna()]
    if data.empty:
        raise no_rows(figure, "any workload on a setup with a filter and its no-filter baseline")
    data = labelled(data).assign(converged=data["convergence"] != NOT_CONVERGED,
                                 conclusive=data["effect_conclusive"].fillna(False).astype(bool))
    columns = ["setup", "setup_label", "scenario", "containers", "filter", "metric", "workload", *CELL_STATISTICS,
               *CELL_CONVERGENCE,
               "baseline_setup", *EFFECT_STATISTICS, "converged", "conclusive"]
    base = alt.Chart().encode(y=alt.Y("setup_label:N", title="setup (implementation)", axis=alt.Axis(labelLimit=400)),
                              color=alt.Color("workload:N", title="workload"))
    interval = base.mark_rule().encode(x=alt.X("ratio_ci_low:Q"), x2="ratio_ci_high:Q",
                                       opacity=alt.condition("datum.conclusive", alt.value(1.0), alt.value(0.35)))
    point = base.mark_point(size=60).encode(
        x=alt.X("ratio_to_baseline:Q", title="setup ÷ its no-filter baseline", scale=alt.Scale(zero=False)),
        shape=alt.Shape("filter:N", title="packet filter"),
        fill=alt.condition("datum.converged", alt.Color("workload:N", legend=None), alt.value("transparent")),
        opacity=alt.condition("datum.conclusive", alt.value(1.0), alt.value(0.35)),
        tooltip=[alt.Tooltip("setup_label:N", title="setup (implementation)"), alt.Tooltip("workload:N", title="workload"),
                 alt.Tooltip("metric:N", title="metric (unit of the median)"),
                 *cell_tooltips("of the setup"),
                 alt.Tooltip("baseline_setup:N", title="baseline (no filter)"),
                 alt.Tooltip("pairing:N", title="pairing (paired: per-round ratios)"),
                 alt.Tooltip("ratio_to_baseline:Q", title="ratio to the baseline", format=".3f"),
                 alt.Tooltip("ratio_ci_low:Q", title="95 % CI of the ratio, low", format=".3f"),
                 alt.Tooltip("ratio_ci_high:Q", title="95 % CI of the ratio, high", format=".3f"),
                 alt.Tooltip("ratio_n:Q", title="rounds (paired) / repetitions (unpaired)"),
                 alt.Tooltip("effect_conclusive:N", title="conclusive (CI excludes 1)")])
    one = alt.Chart().mark_rule(strokeDash=[4, 4], color="gray").encode(x=alt.datum(1.0))
    pairing = data["pairing"].value_counts()
    # one x scale per metric: a latency cost and a throughput cost differ in size and direction;
    # a row of panels per scenario x container count, each listing its own setups
    chart = small_multiples(alt.layer(one, interval, point, data=inline(data[columns])), data,
                            alt.Column("metric:N", title="metric"), independent=("x", "y"))
    return chart.properties(title=alt.TitleParams(
        "Cost of each filter against its no-filter baseline", anchor="start",
        subtitle=[f"n = {len(data):,} cells: {int(pairing.get('paired', 0)):,} paired per round (blocked run "
                  f"order), {int(pairing.get('unpaired', 0)):,} unpaired; error bar: 95 % CI of the ratio; pale: "
                  f"inconclusive, the CI contains 1 or needs more rounds ({int((~data['conclusive']).sum()):,})",
                  unconverged_note("hollow")]))


FLOW = ["setup", "scenario", "containers", "filter", "workload", "rep", "pair"]


def first_packet(latency_frame: pd.DataFrame) -> pd.DataFrame:
    """Per flow (setup, workload, rep, pair): the first probe's RTT and the median of the rest."""
    require(latency_frame, [*FLOW, "seq", "rtt_ms", "received"], "first_packet")
    received = latency_frame[latency_frame["received"]]
    first = received[received["seq"] == 1].set_index(FLOW)["rtt_ms"].rename("first_ms")
    steady = received[received["seq"] > 1].groupby(FLOW, observed=True)["rtt_ms"].median().rename("steady_ms")
    return pd.concat([first, steady], axis=1, join="inner").reset_index()


def first_packet_figure(latency_frame: pd.DataFrame, summary_frame: pd.DataFrame) -> alt.TopLevelMixin:
    """A box of the first probes' RTT and one of the flows' steady-state RTT per setup (one column
    per latency workload), each with a median tick carrying its n, median and 95 % CI; red where
    the cell's repetitions (decided on its round-trip times) did not converge."""
    figure = "first_packet"
    data = first_packet(latency_frame)
    if data.empty:
        raise no_rows(figure, "'latency' with at least two probes per pair")
    long = data.melt(id_vars=FLOW, value_vars=["first_ms", "steady_ms"], var_name="probe", value_name="rtt_ms")
    long["probe"] = long["probe"].map({"first_ms": "first probe", "steady_ms": "steady state (median)"})
    chart = first_against_later(long, latency_frame, summary_frame, figure)
    return chart.properties(title=alt.TitleParams(
        "First packet of a flow against the steady state", anchor="start",
        subtitle=[f"n = {len(data):,} flows (pair and repetition); the first probe pays for ARP and "
                  "flow set-up (e.g. OVS's userspace classification); n, median and its 95 % CI per box in "
                  "the median's tooltip", unconverged_note()]))


def has_baselines(sweep, config) -> bool:
    """Some setup has a filter and the sweep also measures the same setup without one."""
    unfiltered = {(s.scenario, s.solution, s.tunnel, s.containers) for s in sweep.setups if s.filter == "none"}
    return any(s.filter != "none" and (s.scenario, s.solution, s.tunnel, s.containers) in unfiltered
               for s in sweep.setups)


register(FigureSpec(
    name="baseline_ratio", table="summary", builder=baseline_ratio, requires=has_baselines,
    caption="Latency, throughput and delay of each filtered setup relative to the same setup without a "
            "filter: the median of the per-round ratios where the run order paired them (blocked), else the "
            "ratio of the medians, with its 95 % CI as an error bar; pale marks are inconclusive (the CI "
            "contains 1), hollow marks are cells whose repetitions did not converge."))
register(FigureSpec(
    name="first_packet", table="latency", extra_tables=("summary",), builder=first_packet_figure,
    requires=lambda sweep, config: any(w.kind == "latency" and w.params.get("count", 20) >= 2
                                       for w in sweep.workloads),
    caption="Round-trip time of the first ping probe of every pair and repetition against the median of "
            "its later probes, per setup, with n, median and its 95 % CI per box in the tooltip, and a red median "
            "and a red ⚠ after the setup where the repetitions did not converge."))
