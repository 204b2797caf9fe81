"""Every figure of repeated measurements marks its unconverged cells and gives n, median and the
95 % CI of each cell in a tooltip: checked in the Vega-Lite spec (data and encodings) and in the
SVG vl-convert renders from it."""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

import pandas as pd
import pytest
import vl_convert

from seconetbench import figures, tables
from seconetbench.figures import _common
from tests.unit import tablegen
from tests.unit.test_policy_update import recorded_as

pytestmark = pytest.mark.unit

SINGLE = ["single-bridge-none-c2", "single-bridge-iptables-c2"]
MULTI = ["multi-wireguard-none-c4", "multi-vxlan-none-c4"]
THROUGHPUT_WORKLOADS = ["throughput_64", "throughput_653", "throughput_1370"]
# one unconverged cell per figure: (setup, workload) it must flag
UNCONVERGED = {
    "latency_boxplot": ("single-bridge-iptables-c2", "latency"),
    "first_packet": ("single-bridge-iptables-c2", "latency"),
    "first_packet_flushed": ("single-bridge-iptables-c2", "first_packet"),
    "throughput_by_payload": ("single-bridge-iptables-c2", "throughput_653"),
    "cpu_per_gbit": ("single-bridge-iptables-c2", "throughput_653"),
    "rule_scaling": ("single-bridge-iptables-c2", "throughput_653"),
    "baseline_ratio": ("single-bridge-iptables-c2", "latency"),
    "ditg_bitrate": ("single-bridge-iptables-c2", "bursty"),
    "ditg_delay": ("single-bridge-iptables-c2", "bursty"),
    "multi_host_latency": ("multi-vxlan-none-c4", "latency"),
    "multi_host_throughput": ("multi-vxlan-none-c4", "throughput_653"),
    "multi_host_ditg_throughput": ("multi-vxlan-none-c4", "bursty"),
    "policy_latency": ("single-bridge-iptables-c2", "policy"),
}
# figures without repetitions to converge (docs/figures.md says why): they state n only
WITHOUT_CONVERGENCE = {"deploy_time", "multi_host_setup_time", "security_matrix", "policy_rule_scaling",
                       "policy_established"}
CELL_TOOLTIP = {"n", "median", "median_ci_low", "median_ci_high", "convergence"}
# the SVG text of a flagged mark or axis label ends in the glyph (the subtitle's explanation does not)
FLAG_IN_SVG = re.compile(rf"{_common.UNCONVERGED_GLYPH}</text>")


def _sweep_tables(not_converged: list[str]) -> dict[str, pd.DataFrame]:
    """Schema-conforming tables of a small sweep with single- and multi-host setups."""
    setups = SINGLE + MULTI
    latency = tablegen.latency_table(setups=setups, reps=6, probes=10)  # 6: a CI of the median over repetitions
    throughput = tablegen.throughput_table(setups=setups, reps=3)
    ditg = tablegen.ditg_table(setups=SINGLE + MULTI, reps=2)
    first_packet = tablegen.first_packet_table(setups=SINGLE, reps=6)
    policy = recorded_as([(setup, "kernel") for setup in SINGLE], Path(tempfile.mkdtemp()) / "policy.parquet", reps=6)
    return {
        "latency": latency, "throughput": throughput, "ditg": ditg, "first_packet": first_packet,
        "policy_update": policy,
        "deployment": tablegen.deployment_table(setups=setups, workloads=["latency", *THROUGHPUT_WORKLOADS],
                                                reps=2, tunnel_implementation="kernel"),
        "host_usage": tablegen.host_usage_table(setups=SINGLE, workloads=THROUGHPUT_WORKLOADS, reps=3),
        "summary": tablegen.summary_table(latency, throughput, ditg, first_packet, policy,
                                          not_converged=not_converged),
    }


@pytest.fixture(scope="module")
def flagged_tables() -> dict[str, pd.DataFrame]:
    return _sweep_tables([f"{setup}/{workload}" for setup, workload in set(UNCONVERGED.values())])


@pytest.fixture(scope="module")
def converged_tables() -> dict[str, pd.DataFrame]:
    return _sweep_tables([])


def _build(name: str, frames: dict[str, pd.DataFrame]):
    spec = figures.FIGURES[name]
    return spec.builder(*(frames[kind] for kind in spec.tables))


def _walk(node):
    """Every dict in a Vega-Lite spec."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def _tooltip_field_sets(spec: dict) -> list[set[str]]:
    return [{t["field"] for t in node["tooltip"] if isinstance(t, dict) and "field" in t}
            for node in _walk(spec) if isinstance(node.get("tooltip"), list)]


def _rows_of_cell(spec: dict, setup: str, workload: str) -> list[dict]:
    """The embedded rows with a convergence (the main data's or a lookup's) of the cell setup x workload."""
    rows = [row for dataset in spec["datasets"].values() for row in dataset if "convergence" in row]
    return [row for row in rows
            if (row.get("setup"), row.get("workload")) == (setup, workload)
            or str(row.get("cell_key", "")).startswith(f"{setup}|{workload}")]


def test_every_figure_of_repeated_measurements_takes_the_summary():
    with_summary = {name for name, spec in figures.FIGURES.items() if "summary" in spec.tables}
    assert with_summary == set(UNCONVERGED)
    assert set(figures.FIGURES) - with_summary == WITHOUT_CONVERGENCE


@pytest.mark.parametrize("name", sorted(UNCONVERGED))
def test_figure_marks_the_unconverged_cell_and_gives_n_median_and_ci(name, flagged_tables):
    chart = _build(name, flagged_tables)
    spec = chart.to_dict()
    setup, workload = UNCONVERGED[name]
    # the data: the unconverged cell carries its status, the converged ones theirs
    statuses = {row.get("convergence") for row in _rows_of_cell(spec, setup, workload)}
    assert statuses == {"not_converged"}, statuses
    # the encoding: a condition or filter on that status (red tick, hollow point, ⚠ label)
    assert _common.UNCONVERGED_TEST in json.dumps(spec) or name == "baseline_ratio"
    # tooltips of the per-cell marks: n, median, CI (the summary's column names), convergence
    assert any(CELL_TOOLTIP <= fields for fields in _tooltip_field_sets(spec)), _tooltip_field_sets(spec)
    # every figure states n and explains the marking
    subtitle = json.dumps(spec["title"]["subtitle"], ensure_ascii=False)
    assert "n = " in subtitle and "not converge" in subtitle


@pytest.mark.parametrize("name", sorted(set(UNCONVERGED) - {"baseline_ratio"}))
def test_the_rendered_figure_flags_exactly_the_unconverged_cells(name, flagged_tables, converged_tables):
    flagged = vl_convert.vegalite_to_svg(_build(name, flagged_tables).to_json())
    assert _common.UNCONVERGED_COLOUR in flagged and FLAG_IN_SVG.search(flagged), name
    converged = vl_convert.vegalite_to_svg(_build(name, converged_tables).to_json())
    assert not FLAG_IN_SVG.search(converged), name


def test_baseline_ratio_draws_unconverged_cells_hollow(flagged_tables):
    spec = _build("baseline_ratio", flagged_tables).to_dict()
    row = next(r for r in _rows_of_cell(spec, *UNCONVERGED["baseline_ratio"]) if r.get("metric") == "rtt_ms")
    assert row["converged"] is False
    fills = [node["fill"] for node in _walk(spec) if isinstance(node.get("fill"), dict) and "condition" in node["fill"]]
    assert [fill["condition"]["test"] for fill in fills] == ["datum.converged"]


def test_per_cell_statistics_come_from_the_summary_where_the_figure_draws_its_metric(flagged_tables):
    summary = flagged_tables["summary"]
    cells = _common.summary_cells(summary, "rtt_ms", "latency_boxplot")
    row = summary[(summary["metric"] == "rtt_ms") & (summary["setup"] == "single-bridge-iptables-c2")].iloc[0]
    mine = cells[cells["setup"] == "single-bridge-iptables-c2"].iloc[0]
    assert row["n"] == 6 and not pd.isna(row["median_ci_low"])  # over the 6 repetitions
    for column in ("n", "probes", "median", "median_ci_low", "median_ci_high", "convergence"):
        assert mine[column] == row[column], column


def test_drawn_cells_summarise_what_is_drawn_with_the_cells_convergence(flagged_tables):
    from seconetbench.figures import ditg

    flows = ditg.per_flow(flagged_tables["ditg"])
    cells = _common.drawn_cells(flows, "bitrate_kbps", _common.CELL, flagged_tables["summary"], "ditg_bitrate")
    cell = cells.set_index(_common.CELL).loc[("single-bridge-iptables-c2", "bursty")]
    # 2 flows x 1 pair x 2 repetitions per cell, all at 500 kbit/s: n counts the repetitions, the
    # CI is over them (none from 2), probes counts the values drawn
    assert (cell["n"], cell["probes"], cell["median"]) == (2, 4, 500.0)
    assert pd.isna(cell["median_ci_low"]) and pd.isna(cell["median_ci_high"])
    assert cell["convergence"] == "not_converged" and cell["repetitions"] == 2


def test_figures_still_apply_to_a_sweep_because_the_workflow_always_makes_the_summary():
    from tests.unit.test_figures_costs import sweep_of

    sweep, cfg = sweep_of(single=["none", "iptables"])
    measured = ["latency", "throughput", "ditg", "deployment", "host_usage"]
    assert figures.FIGURES["latency_boxplot"].applies([*measured, "summary"], sweep, cfg)
    assert not figures.FIGURES["latency_boxplot"].applies(measured, sweep, cfg)


def test_an_empty_summary_is_named_when_its_columns_are_missing(flagged_tables):
    with pytest.raises(ValueError, match="figure latency_boxplot: the table lacks columns"):
        figures.FIGURES["latency_boxplot"].builder(flagged_tables["latency"], pd.DataFrame())
    # an empty but well-formed summary draws the boxes without convergence marks
    chart = figures.FIGURES["latency_boxplot"].builder(flagged_tables["latency"], tables.empty("summary"))
    assert not FLAG_IN_SVG.search(vl_convert.vegalite_to_svg(chart.to_json()))
