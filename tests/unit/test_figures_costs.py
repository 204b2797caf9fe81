"""Figures that join several tables: CPU per gigabit, deploy time, rule scaling, multi-host."""

from __future__ import annotations

import pytest

from seconetbench import figures, tables
from seconetbench.figures import costs, multi_host
from tests.unit import tablegen

pytestmark = pytest.mark.unit

SETUP = "single-bridge-iptables-c2"


def values(chart) -> list[dict]:
    spec = chart.to_dict()
    return next(iter(spec["datasets"].values()))


def subtitle(chart) -> str:
    text = chart.to_dict()["title"]["subtitle"]
    return "\n".join(text) if isinstance(text, list) else text


def test_cpu_per_gigabit_is_cpu_seconds_over_gigabits_delivered():
    throughput = tablegen.throughput_table(setups=[SETUP], payloads=[653], intervals=3, bytes_per_interval=125_000_000)
    usage = tablegen.host_usage_table(setups=[SETUP], workloads=["throughput_653"], samples=4, busy_pct=50.0)
    data = costs.cpu_per_gigabit(throughput, usage)
    assert len(data) == 1
    # 3 intervals × 126 MB = 3.024 Gbit; 4 one-second samples at 50 % of 2 cores = 4 CPU-seconds
    assert data["gigabits"].iloc[0] == pytest.approx(3.024)
    assert data["cpu_s"].iloc[0] == pytest.approx(4.0)
    assert data["cpu_s_per_gbit"].iloc[0] == pytest.approx(4.0 / 3.024)


def test_cpu_per_gbit_figure_builds_saves_and_refuses_empty_input(tmp_path):
    throughput = tablegen.throughput_table(setups=[SETUP, "single-bridge-none-c2"], payloads=[64, 1370], reps=2)
    usage = tablegen.host_usage_table(setups=[SETUP, "single-bridge-none-c2"],
                                      workloads=["throughput_64", "throughput_1370"], reps=2)
    summary = tablegen.summary_table(throughput)
    chart = costs.cpu_per_gbit_figure(throughput, usage, summary)
    assert "n = 8 throughput targets" in subtitle(chart)
    assert [p.suffix for p in figures.save_chart(chart, tmp_path / "cpu")] == [".html", ".svg"]
    with pytest.raises(ValueError, match="no rows for figure cpu_per_gbit"):
        costs.cpu_per_gbit_figure(throughput, tables.empty("host_usage"), summary)


def test_deploy_time_counts_only_fresh_deploys():
    deployment = tablegen.deployment_table(setups=[SETUP, "single-bridge-none-c2"],
                                           workloads=["latency", "throughput_653"], reps=2)
    chart = costs.deploy_time(deployment)
    assert "n = 2 fresh deploys" in subtitle(chart)
    assert {v["step"] for v in values(chart)} == {"whole deploy", "filter rules", "one more pair (live)"}
    with pytest.raises(ValueError, match="no rows for figure deploy_time"):
        costs.deploy_time(tables.empty("deployment"))


def test_rule_scaling_draws_one_point_per_rule_count_and_leaves_out_no_filter():
    small = tablegen.throughput_table(setups=[SETUP, "single-bridge-none-c2"], payloads=[653])
    big = tablegen.throughput_table(setups=[SETUP], payloads=[653], bytes_per_interval=60_000_000)
    big["setup"] = "single-bridge-iptables-c2-r1000"
    deployment = tablegen.deployment_table(setups=[SETUP, "single-bridge-none-c2"], workloads=["throughput_653"])
    scaled = tablegen.deployment_table(setups=[SETUP], workloads=["throughput_653"], extra_rules=1000)
    scaled["setup"] = "single-bridge-iptables-c2-r1000"
    import pandas as pd

    throughput = pd.concat([small, big])
    chart = costs.rule_scaling(throughput, pd.concat([deployment, scaled]), tablegen.summary_table(throughput))
    points = {(v["filter"], v["extra_rules"]): v["median"] for v in values(chart)}
    assert set(points) == {("iptables", 0), ("iptables", 1000)}
    assert points[("iptables", 1000)] < points[("iptables", 0)]


def test_multi_host_figures_label_each_tunnel_with_its_implementation():
    setups = ["multi-wireguard-none-c4", "multi-vxlan-none-c4"]
    deployment = tablegen.deployment_table(setups=setups, workloads=["latency", "throughput_653"], reps=2,
                                           tunnel_implementation="userspace (wireguard-go)")
    facts = multi_host.tunnel_facts(deployment)
    assert sorted(facts["setup"]) == sorted(setups)  # one fresh deploy per setup
    setup_time = multi_host.multi_host_setup_time(deployment)
    assert {v["tunnel_label"] for v in values(setup_time)} == {
        "wireguard (userspace (wireguard-go))", "vxlan (userspace (wireguard-go))"}
    throughput = tablegen.throughput_table(setups=setups, payloads=[64, 1370], max_pairs=2)
    latency = tablegen.latency_table(setups=setups)
    summary = tablegen.summary_table(throughput, latency)
    labels = {v["tunnel_label"] for v in values(multi_host.multi_host_throughput(throughput, deployment, summary))}
    assert labels == {"wireguard (userspace (wireguard-go))", "vxlan (userspace (wireguard-go))"}
    assert values(multi_host.multi_host_latency(latency, deployment, summary))
    with pytest.raises(ValueError, match="no rows"):
        multi_host.multi_host_setup_time(tables.empty("deployment"))


def sweep_of(single=None, multi=None, monitor=True):
    from seconetbench import config
    from seconetbench.sweep import expand

    sweep = {"workloads": ["latency"]}
    if single:
        sweep["single"] = {"solutions": ["bridge"], "filters": single, "containers": [2]}
    if multi:
        sweep["multi"] = {"tunnels": ["vxlan"], "filters": multi, "containers": [2]}
    cfg = config.validate({"sweep": sweep, "workloads": {"latency": {"kind": "latency"}},
                           "monitor": {"enabled": monitor}})
    return expand(cfg), cfg


def test_figures_are_planned_only_where_the_sweep_can_draw_them():
    kinds = [*tables.KINDS]
    single_none, cfg = sweep_of(single=["none"])
    both, both_cfg = sweep_of(single=["none", "iptables"])
    multi, multi_cfg = sweep_of(single=["none"], multi=["none"])
    latency = figures.FIGURES["multi_host_latency"]
    assert not latency.applies(kinds, single_none, cfg) and latency.applies(kinds, multi, multi_cfg)
    # no filtered setup (or no baseline for it): nothing to compare, nothing to scale
    for name in ("baseline_ratio", "rule_scaling"):
        assert not figures.FIGURES[name].applies(kinds, single_none, cfg), name
        assert figures.FIGURES[name].applies(kinds, both, both_cfg), name
    _, off = sweep_of(single=["none", "iptables"], monitor=False)
    assert not figures.FIGURES["cpu_per_gbit"].applies(kinds, both, off)
    assert not figures.FIGURES["cpu_per_gbit"].applies(["throughput"], both, both_cfg)  # needs host_usage


def test_first_packet_separates_the_first_probe_from_the_steady_state():
    from seconetbench.figures import comparison

    latency = tablegen.latency_table(setups=[SETUP], reps=2, probes=10)
    latency.loc[latency["seq"] == 1, "rtt_ms"] = 5.0  # a slow first packet
    data = comparison.first_packet(latency)
    assert len(data) == 2 and (data["first_ms"] == 5.0).all() and (data["steady_ms"] < 5.0).all()
    assert "n = 2 flows" in subtitle(comparison.first_packet_figure(latency, tablegen.summary_table(latency)))


def test_baseline_ratio_compares_each_filter_with_no_filter_and_marks_unconverged_cells():
    from seconetbench.figures import comparison

    latency = tablegen.latency_table(setups=["single-bridge-none-c2", SETUP], reps=6)
    latency["rtt_ms"] = latency["filter"].map({"none": 0.05, "iptables": 0.10})  # the filter doubles the RTT
    summary = tablegen.summary_table(latency, not_converged=[f"{SETUP}/latency"],
                                     design={"run_order": "blocked", "rounds": 6})
    chart = comparison.baseline_ratio(summary)
    (point,) = values(chart)
    assert point["setup"] == SETUP and point["ratio_to_baseline"] == pytest.approx(2.0)
    assert point["setup_label"] == f"{SETUP} (kernel)"  # the y axis names what ran the setup
    assert (point["pairing"], point["ratio_n"], point["conclusive"]) == ("paired", 6, True)
    assert point["converged"] is False  # drawn hollow
    assert "1 paired per round" in subtitle(chart)
    with pytest.raises(ValueError, match="no rows for figure baseline_ratio"):
        comparison.baseline_ratio(summary[summary["filter"] == "none"])
