"""Each setup against its baseline, and a flow's first packet against the steady state."""

from __future__ import annotations

import altair as alt
import pandas as pd

from seconetbench import stats
from seconetbench.figures import FigureSpec, register
from seconetbench.figures._common import inline, no_rows, require

BASELINE_KEYS = ["scenario", "solution", "tunnel", "containers", "workload", "metric"]


def baseline_ratio(summary_frame: pd.DataFrame) -> alt.TopLevelMixin:
    """Median of every setup relative to the same setup without a filter (ratio 1 = no cost).

    Setups with extra rules are left out (rule_scaling shows them); cells whose repetitions did
    not converge are drawn hollow."""
    figure = "baseline_ratio"
    require(summary_frame, [*BASELINE_KEYS, "setup", "filter", "median", "n", "convergence"], figure)
    plain = summary_frame[~summary_frame["setup"].str.contains(r"-r\d+", regex=True)]
    if plain.empty:
        raise no_rows(figure, "any workload")
    ratios = stats.ratio_to_baseline(plain, "none", keys=BASELINE_KEYS)
    data = ratios.dropna(subset=["ratio_to_baseline"])
    data = data[data["filter"] != "none"]
    if data.empty:
        raise no_rows(figure, "any workload on a setup with a filter and its no-filter baseline")
    data = data.assign(converged=data["convergence"] != "not_converged")
    return alt.Chart(inline(data[["setup", "filter", "metric", "workload", "median", "n", "baseline_setup",
                                  "ratio_to_baseline", "convergence", "converged"]])).mark_point(size=60).encode(
        y=alt.Y("setup:N", title="setup"),
        x=alt.X("ratio_to_baseline:Q", title="median relative to the same setup without a filter",
                scale=alt.Scale(zero=False)),
        color=alt.Color("workload:N", title="workload"),
        shape=alt.Shape("filter:N", title="packet filter"),
        fill=alt.condition("datum.converged", alt.Color("workload:N"), alt.value("transparent")),
        column=alt.Column("metric:N", title="metric"),
        tooltip=["setup:N", "workload:N", "median:Q", "n:Q", "baseline_setup:N", "ratio_to_baseline:Q",
                 "convergence:N"],
    ).properties(title=alt.TitleParams(
        "Cost of each filter against its no-filter baseline", anchor="start",
        subtitle=f"n = {int(data['n'].sum()):,} samples in {len(data):,} cells; hollow = repetitions did not converge"))


def first_packet(latency_frame: pd.DataFrame) -> pd.DataFrame:
    """Per flow (setup, workload, rep, pair): the first probe's RTT and the median of the rest."""
    require(latency_frame, ["setup", "filter", "workload", "rep", "pair", "seq", "rtt_ms", "received"], "first_packet")
    flows = ["setup", "filter", "workload", "rep", "pair"]
    received = latency_frame[latency_frame["received"]]
    first = received[received["seq"] == 1].set_index(flows)["rtt_ms"].rename("first_ms")
    steady = received[received["seq"] > 1].groupby(flows, observed=True)["rtt_ms"].median().rename("steady_ms")
    return pd.concat([first, steady], axis=1, join="inner").reset_index()


def first_packet_figure(latency_frame: pd.DataFrame) -> alt.TopLevelMixin:
    data = first_packet(latency_frame)
    if data.empty:
        raise no_rows("first_packet", "'latency' with at least two probes per pair")
    long = data.melt(id_vars=["setup", "filter", "workload", "rep", "pair"], value_vars=["first_ms", "steady_ms"],
                     var_name="probe", value_name="rtt_ms")
    long["probe"] = long["probe"].map({"first_ms": "first probe", "steady_ms": "steady state (median)"})
    return alt.Chart(inline(long)).mark_boxplot().encode(
        y=alt.Y("setup:N", title="setup"),
        x=alt.X("rtt_ms:Q", title="round-trip time (ms)"),
        color=alt.Color("probe:N", title="probe"),
        yOffset="probe:N",
    ).properties(title=alt.TitleParams(
        "First packet of a flow against the steady state", anchor="start",
        subtitle=f"n = {len(data):,} flows (pair and repetition); the first probe pays for ARP and "
                 "flow set-up (e.g. OVS's userspace classification)"))


def has_baselines(sweep, config) -> bool:
    """Some setup has a filter and the sweep also measures the same setup without one."""
    unfiltered = {(s.scenario, s.solution, s.tunnel, s.containers) for s in sweep.setups if s.filter == "none"}
    return any(s.filter != "none" and (s.scenario, s.solution, s.tunnel, s.containers) in unfiltered
               for s in sweep.setups)


register(FigureSpec(
    name="baseline_ratio", table="summary", builder=baseline_ratio, requires=has_baselines,
    caption="Median latency, throughput and delay of each filtered setup relative to the same setup "
            "without a filter; hollow marks are cells whose repetitions did not converge."))
register(FigureSpec(
    name="first_packet", table="latency", builder=first_packet_figure,
    requires=lambda sweep, config: any(w.kind == "latency" and w.params.get("count", 20) >= 2
                                       for w in sweep.workloads),
    caption="Round-trip time of the first ping probe of every pair and repetition against the median of "
            "its later probes, per setup."))
