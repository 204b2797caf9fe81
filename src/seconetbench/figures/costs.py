"""What a setup costs besides latency and throughput: CPU per gigabit, deploy and rule-install
time, and how throughput changes with the size of the filter's rule set."""

from __future__ import annotations

import altair as alt
import pandas as pd

from seconetbench import stats
from seconetbench.figures import FigureSpec, register
from seconetbench.figures._common import (
    CELL, CELL_CONVERGENCE, CELL_STATISTICS, cell_point_layers, cell_tooltips, drawn_cells, flagged_axis,
    flagged_label, inline, labelled, look_up_cells, look_up_setup_labels, median_tick, no_rows, require, small_multiples,
    summary_cells, technology_color, unconverged_note,
)

TARGET = ["setup", "scenario", "filter", "solution", "containers", "workload", "rep"]


def cpu_per_gigabit(throughput_frame: pd.DataFrame, host_usage_frame: pd.DataFrame) -> pd.DataFrame:
    """Per throughput target: host CPU-seconds spent (all cores, busy = 100 - idle) per gigabit
    delivered. The host figure includes everything the machine did meanwhile."""
    require(host_usage_frame, ["interval_s", "cpus", "cpu_idle_pct", *TARGET], "cpu_per_gbit")
    delivered = throughput_frame.groupby(TARGET + ["payload_bytes"], observed=True)["bytes"].sum()
    gigabits = (delivered * 8 / 1e9).rename("gigabits").reset_index()
    usage = host_usage_frame.copy()
    usage["cpu_s"] = (100 - usage["cpu_idle_pct"]) / 100 * usage["cpus"] * usage["interval_s"]
    cpu = usage.groupby(TARGET, observed=True)["cpu_s"].sum().reset_index()
    joined = gigabits.merge(cpu, on=TARGET)
    joined = joined[joined["gigabits"] > 0]
    joined["cpu_s_per_gbit"] = joined["cpu_s"] / joined["gigabits"]
    return joined


def cpu_per_gbit_figure(throughput_frame: pd.DataFrame, host_usage_frame: pd.DataFrame,
                        summary_frame: pd.DataFrame) -> alt.TopLevelMixin:
    """CPU-seconds per gigabit of each throughput target: a box per setup (one row per payload),
    its points, and a median tick with the box's n, median and 95 % CI, red where the cell's
    repetitions (decided on its throughput) did not converge."""
    figure = "cpu_per_gbit"
    data = cpu_per_gigabit(throughput_frame, host_usage_frame)
    if data.empty:
        raise no_rows(figure, "a throughput workload with the monitor enabled")
    data = data[[*TARGET, "payload_bytes", "cpu_s", "gigabits", "cpu_s_per_gbit"]]
    cells = drawn_cells(data, "cpu_s_per_gbit", CELL, summary_frame, figure)
    y = alt.Y("label:N", title="setup (implementation)", axis=flagged_axis(labelLimit=400))
    x = alt.X("cpu_s_per_gbit:Q", title="host CPU-seconds per gigabit delivered")
    color = technology_color("filter", data, "packet filter")
    box = alt.Chart().mark_boxplot(size=14, opacity=0.6).encode(x=x, y=y, color=color)
    targets = alt.Chart().mark_circle(size=30).encode(x=x, y=y, color=color, tooltip=[
        alt.Tooltip("setup_label:N", title="setup (implementation)"), alt.Tooltip("workload:N", title="workload"),
        alt.Tooltip("rep:Q", title="repetition"), alt.Tooltip("cpu_s:Q", title="CPU-seconds", format=",.2f"),
        alt.Tooltip("gigabits:Q", title="gigabits delivered", format=",.3f"),
        alt.Tooltip("cpu_s_per_gbit:Q", title="CPU-seconds per gigabit", format=",.3f")])
    per_cell = alt.Chart().transform_aggregate(  # one row per box, with its looked-up statistics
        count="count()", groupby=["setup", "setup_label", "label", "workload", *CELL_STATISTICS, *CELL_CONVERGENCE])
    median = median_tick(
        per_cell, 14, x=alt.X("median:Q"), y=y,
        tooltip=[alt.Tooltip("setup_label:N", title="setup (implementation)"), alt.Tooltip("workload:N", title="workload"),
                 *cell_tooltips("CPU-seconds per gigabit")])
    layers = look_up_setup_labels(look_up_cells(alt.layer(box, targets, median, data=inline(data)), cells, CELL),
                                  throughput_frame, figure).transform_calculate(label=flagged_label("datum.setup_label"))
    # a column per payload, a row of panels per scenario x container count; independent y: a
    # setup's label carries the convergence of its cell, which differs by payload
    column = alt.Column("payload_bytes:O", title="payload (bytes)")
    return small_multiples(layers.properties(width=320), data, column, independent=("x", "y")).properties(
        title=alt.TitleParams("CPU cost per gigabit", anchor="start", subtitle=[
            f"n = {len(data):,} throughput targets; host CPU (all cores) while the workload ran; n, median and "
            "its 95 % CI per box in the median's tooltip",
            unconverged_note("red median tick and a red ⚠ after the setup (convergence decided on the "
                             "cell's throughput)")]))


def deploy_time(deployment_frame: pd.DataFrame) -> alt.TopLevelMixin:
    """Deploy time, rule-install time and rule-update time of every fresh deploy, per setup."""
    require(deployment_frame, ["reused", "deploy_s", "filter_apply_s", "rule_update_s", "setup", "implementation",
                               "filter"], "deploy_time")
    fresh = deployment_frame[~deployment_frame["reused"]]
    if fresh.empty:
        raise no_rows("deploy_time", "any workload")
    steps = {"deploy_s": "whole deploy", "filter_apply_s": "filter rules", "rule_update_s": "one more pair (live)"}
    data = labelled(fresh).melt(id_vars=["setup", "setup_label", "scenario", "containers", "filter", "extra_rules"],
                                value_vars=list(steps), var_name="step", value_name="seconds").dropna(subset=["seconds"])
    data["step"] = data["step"].map(steps)
    ticks = alt.Chart().mark_tick(thickness=2, size=14).encode(
        y=alt.Y("setup_label:N", title="setup (implementation)", axis=alt.Axis(labelLimit=400)),
        x=alt.X("seconds:Q", title="seconds"),
        color=alt.Color("step:N", title="what"),
        tooltip=[alt.Tooltip("setup_label:N", title="setup (implementation)"), "step:N", "seconds:Q", "extra_rules:Q"],
    )
    # a row of panels per scenario x container count: a full sweep's 117 setups in panels of at most 24
    chart = small_multiples(alt.layer(ticks, data=inline(data)).properties(width=420), data)
    return chart.properties(title=alt.TitleParams(
        "Deploy and rule-install time", anchor="start",
        subtitle=f"n = {len(fresh):,} fresh deploys (reused deployments are not counted)"))


def rule_scaling(throughput_frame: pd.DataFrame, deployment_frame: pd.DataFrame,
                 summary_frame: pd.DataFrame) -> alt.TopLevelMixin:
    """Median per-pair throughput of each filtered setup over its number of extra rules, one line
    per filter and solution, with the 95 % CI of the median as an error bar."""
    figure = "rule_scaling"
    require(deployment_frame, ["setup", "extra_rules"], figure)
    pairs = stats.per_pair_throughput(throughput_frame)
    rules = deployment_frame.groupby("setup", observed=True)["extra_rules"].first().reset_index()
    identity = ["setup", "workload", "solution", "implementation", "filter", "containers", "payload_bytes"]
    cells = pairs[identity].drop_duplicates().merge(rules, on="setup")
    cells = cells[cells["filter"] != "none"]
    if cells.empty:
        raise no_rows(figure, "a throughput workload on setups with a filter")
    # a point per setup x workload cell: its convergence is the cell's (setups with different rule
    # counts are different setups)
    cells = labelled(cells.merge(summary_cells(summary_frame, "throughput_mbps", figure), on=CELL), "solution")
    # a line connects one solution (and implementation), filter and container count over the rule counts
    base = alt.Chart().encode(x=alt.X("extra_rules:O", title="extra rules before the whitelist"),
                              color=technology_color("filter", cells, "packet filter"), detail="containers:N")
    y = alt.Y("median:Q", title="median throughput per pair (Mbit/s)")
    line = base.mark_line().encode(y=y, strokeDash=alt.StrokeDash("solution_label:N", title="solution (implementation)",
                                                                   legend=alt.Legend(labelLimit=400)))
    tooltip = [alt.Tooltip("setup:N", title="setup"),
               alt.Tooltip("solution_label:N", title="solution (implementation)"),
               *(alt.Tooltip(f"{c}:N", title=c) for c in ["filter", "containers"]),
               alt.Tooltip("extra_rules:Q", title="extra rules"),
               *cell_tooltips("throughput per pair (Mbit/s)", ",.1f")]
    facet = {"column": alt.Column("payload_bytes:O", title="payload (bytes)")}
    if cells["containers"].nunique() > 1:
        facet["row"] = alt.Row("containers:O", title="containers")
    width = max(160, 50 * cells["extra_rules"].nunique())  # room for the x title under every column
    layers = alt.layer(line, *cell_point_layers(base, y, tooltip), data=inline(cells)).properties(width=width)
    return layers.facet(**facet).properties(
        title=alt.TitleParams("Throughput by rule-set size", anchor="start", subtitle=[
            f"n = {int(cells['probes'].sum()):,} per-pair values in {len(cells):,} setup x workload cells; "
            "config/scaling.yaml sweeps the rule-set size; error bar: 95 % CI of the median over the repetitions",
            unconverged_note("hollow point / ⚠")]))


register(FigureSpec(
    name="cpu_per_gbit", table="throughput", extra_tables=("host_usage", "summary"), builder=cpu_per_gbit_figure,
    requires=lambda sweep, config: config["monitor"]["enabled"],
    caption="Host CPU-seconds (all cores) spent per gigabit delivered, per throughput target and setup, with n, "
            "median and its 95 % CI per box in the tooltip, and a red median and a red ⚠ after the setup where "
            "the repetitions did not converge."))
register(FigureSpec(
    name="deploy_time", table="deployment", builder=deploy_time,
    caption="Time to deploy each setup (namespaces, links, technologies), to install its filter rules and "
            "to whitelist one more pair live, per fresh deploy."))
register(FigureSpec(
    name="rule_scaling", table="throughput", extra_tables=("deployment", "summary"), scenarios=("single",),
    builder=rule_scaling, requires=lambda sweep, config: any(s.filter != "none" for s in sweep.setups),
    caption="Median throughput per pair over the number of non-matching rules installed before the "
            "whitelist, per filter and solution, with the 95 % CI of the median; hollow points marked '⚠' "
            "did not converge."))
