"""What a setup costs besides latency and throughput: CPU per gigabit, deploy and rule-install
time, and how throughput changes with the size of the filter's rule set."""

from __future__ import annotations

import altair as alt
import pandas as pd

from seconetbench import stats
from seconetbench.figures import FigureSpec, register
from seconetbench.figures._common import inline, no_rows, require

TARGET = ["setup", "filter", "solution", "containers", "workload", "rep"]


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


def cpu_per_gbit_figure(throughput_frame: pd.DataFrame, host_usage_frame: pd.DataFrame) -> alt.TopLevelMixin:
    data = cpu_per_gigabit(throughput_frame, host_usage_frame)
    if data.empty:
        raise no_rows("cpu_per_gbit", "a throughput workload with the monitor enabled")
    return alt.Chart(inline(data)).mark_boxplot().encode(
        y=alt.Y("setup:N", title="setup"),
        x=alt.X("cpu_s_per_gbit:Q", title="host CPU-seconds per gigabit delivered"),
        color=alt.Color("filter:N", title="packet filter"),
        row=alt.Row("payload_bytes:O", title="payload (bytes)"),
        tooltip=["setup:N", "workload:N", "rep:Q", "cpu_s:Q", "gigabits:Q", "cpu_s_per_gbit:Q"],
    ).properties(title=alt.TitleParams(
        "CPU cost per gigabit", anchor="start",
        subtitle=f"n = {len(data):,} throughput targets; host CPU (all cores) while the workload ran"))


def deploy_time(deployment_frame: pd.DataFrame) -> alt.TopLevelMixin:
    """Deploy time, rule-install time and rule-update time of every fresh deploy, per setup."""
    require(deployment_frame, ["reused", "deploy_s", "filter_apply_s", "rule_update_s", "setup", "filter"],
            "deploy_time")
    fresh = deployment_frame[~deployment_frame["reused"]]
    if fresh.empty:
        raise no_rows("deploy_time", "any workload")
    steps = {"deploy_s": "whole deploy", "filter_apply_s": "filter rules", "rule_update_s": "one more pair (live)"}
    data = fresh.melt(id_vars=["setup", "filter", "extra_rules"], value_vars=list(steps),
                      var_name="step", value_name="seconds").dropna()
    data["step"] = data["step"].map(steps)
    return alt.Chart(inline(data)).mark_tick(thickness=2, size=14).encode(
        y=alt.Y("setup:N", title="setup"),
        x=alt.X("seconds:Q", title="seconds"),
        color=alt.Color("step:N", title="what"),
        tooltip=["setup:N", "step:N", "seconds:Q", "extra_rules:Q"],
    ).properties(title=alt.TitleParams(
        "Deploy and rule-install time", anchor="start",
        subtitle=f"n = {len(fresh):,} fresh deploys (reused deployments are not counted)"))


def rule_scaling(throughput_frame: pd.DataFrame, deployment_frame: pd.DataFrame) -> alt.TopLevelMixin:
    """Median per-pair throughput over the number of extra rules, one line per filter and solution."""
    require(deployment_frame, ["setup", "extra_rules"], "rule_scaling")
    pairs = stats.per_pair_throughput(throughput_frame)
    rules = deployment_frame.groupby("setup", observed=True)["extra_rules"].first().reset_index()
    data = pairs.merge(rules, on="setup")
    data = data[data["filter"] != "none"]
    if data.empty:
        raise no_rows("rule_scaling", "a throughput workload on setups with a filter")
    median = data.groupby(["solution", "filter", "extra_rules", "payload_bytes"], observed=True).agg(
        throughput_mbps=("throughput_mbps", "median"), n=("throughput_mbps", "size")).reset_index()
    return alt.Chart(inline(median)).mark_line(point=True).encode(
        x=alt.X("extra_rules:O", title="extra rules before the whitelist"),
        y=alt.Y("throughput_mbps:Q", title="median throughput per pair (Mbit/s)"),
        color=alt.Color("filter:N", title="packet filter"),
        strokeDash=alt.StrokeDash("solution:N", title="solution"),
        column=alt.Column("payload_bytes:O", title="payload (bytes)"),
        tooltip=["solution:N", "filter:N", "extra_rules:O", "throughput_mbps:Q", "n:Q"],
    ).properties(title=alt.TitleParams(
        "Throughput by rule-set size", anchor="start",
        subtitle=f"n = {len(data):,} per-pair values; config/scaling.yaml sweeps the rule-set size"))


register(FigureSpec(
    name="cpu_per_gbit", table="throughput", extra_tables=("host_usage",), builder=cpu_per_gbit_figure,
    requires=lambda sweep, config: config["monitor"]["enabled"],
    caption="Host CPU-seconds (all cores) spent per gigabit delivered, per throughput target and setup."))
register(FigureSpec(
    name="deploy_time", table="deployment", builder=deploy_time,
    caption="Time to deploy each setup (namespaces, links, technologies), to install its filter rules and "
            "to whitelist one more pair live, per fresh deploy."))
register(FigureSpec(
    name="rule_scaling", table="throughput", extra_tables=("deployment",), scenarios=("single",),
    builder=rule_scaling, requires=lambda sweep, config: any(s.filter != "none" for s in sweep.setups),
    caption="Median throughput per pair over the number of non-matching rules installed before the "
            "whitelist, per filter and solution."))
