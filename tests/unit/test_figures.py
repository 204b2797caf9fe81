"""Figures from schema-conforming fixture tables: Vega-Lite encodings, titles, n, edge sizes, saving."""

from __future__ import annotations

import json
import re

import altair as alt
import pandas as pd
import pytest

from seconetbench import figures, stats, tables
from seconetbench.figures import _common, basic
from tests.unit import tablegen

pytestmark = pytest.mark.unit

FOUR = [s for s in tablegen.SETUPS if s.startswith("single")]
# The generic tests below build a figure from one single-host table and its summary; figures that
# join further tables or draw multi-host setups have their own tests (test_figures_costs.py), and
# test_figures_convergence.py checks every figure's marking of unconverged cells.
ONE_TABLE = sorted(n for n, s in figures.FIGURES.items() if s.extra_tables == ("summary",) and "single" in s.scenarios
                   and s.table in ("latency", "throughput", "ditg") and s.builder.__module__.endswith(("basic", "ditg")))


def _fixture(kind: str, **kwargs) -> pd.DataFrame:
    builders = {"latency": tablegen.latency_table, "throughput": tablegen.throughput_table, "ditg": tablegen.ditg_table}
    return builders[kind](**kwargs)


def _build(name: str, frame: pd.DataFrame):
    """Figure *name* from its table *frame* and the summary of that table."""
    return figures.FIGURES[name].builder(frame, tablegen.summary_table(frame))


def _layers(spec: dict) -> list[dict]:
    """The unit specs of a (possibly faceted) layered chart."""
    inner = spec.get("spec", spec)
    return inner["layer"]


def _mark(layer: dict) -> str:
    mark = layer["mark"]
    return mark["type"] if isinstance(mark, dict) else mark


def _values(spec: dict) -> list[dict]:
    data = spec["data"]
    return data["values"] if "values" in data else spec["datasets"][data["name"]]


def _title(spec: dict) -> tuple[str, str]:
    subtitle = spec["title"]["subtitle"]
    return spec["title"]["text"], "\n".join(subtitle if isinstance(subtitle, list) else [subtitle])


def _tooltip_fields(layer: dict) -> set[str]:
    return {t["field"] for t in layer["encoding"].get("tooltip", [])}


# ------------------------------------------------------------------------------------ fixtures
@pytest.mark.parametrize("kind", ["latency", "throughput"])
def test_fixture_tables_follow_the_schema(kind):
    frame = _fixture(kind, setups=FOUR, reps=2)
    conformed = tables.conform(frame, kind)
    assert conformed.schema.names == tables.schema(kind).names
    assert conformed.num_rows == len(frame) > 0


# ------------------------------------------------------------------------------------ registry
def test_registry_lists_every_figure_with_its_table():
    assert set(figures.FIGURES) == {"latency_boxplot", "throughput_by_payload", "ditg_bitrate", "ditg_delay",
                                    "multi_host_throughput", "multi_host_latency", "multi_host_setup_time",
                                    "multi_host_ditg_throughput", "cpu_per_gbit", "deploy_time", "rule_scaling", "baseline_ratio",
                                    "first_packet", "first_packet_flushed", "security_matrix", "policy_latency", "policy_rule_scaling",
                                    "policy_established"}
    for name, spec in figures.FIGURES.items():
        assert spec.name == name
        assert all(kind in tables.KINDS for kind in spec.tables)
        assert callable(spec.builder)
        assert spec.caption.endswith(".") and spec.caption.count(". ") == 0  # one sentence


# ------------------------------------------------------------------------------------- latency
def test_latency_boxplot_encodings_titles_and_n():
    latency = tablegen.latency_table(setups=["single-bridge-none-c2", "single-bridge-iptables-c2"], reps=2, loss_every=10)
    spec = _build("latency_boxplot", latency).to_dict()
    assert "facet" not in spec  # one container count → no facet
    box, median = _layers(spec)
    assert _mark(box) == "boxplot" and _mark(median) == "tick"
    assert box["encoding"]["x"]["field"] == "rtt_ms"
    assert box["encoding"]["x"]["title"] == "round-trip time (ms)"
    assert box["encoding"]["y"]["title"] == "setup (implementation)"
    assert box["encoding"]["color"]["field"] == "filter"
    assert {"n", "lost", "median", "median_ci_low", "median_ci_high", "setup_label"} <= _tooltip_fields(median)
    title, subtitle = _title(spec)
    received = int(latency["received"].sum())
    assert title == "Round-trip time per setup"
    assert f"n = {received:,} received probes of {len(latency):,} sent" in subtitle
    assert "2 setups, 2 repetitions" in subtitle
    # the axis label carries each setup's implementation (from the data) and n (computed in the spec)
    (label,) = [t["calculate"] for t in spec["transform"] if t.get("as") == "label"]
    assert "datum.setup_label" in label and "n=" in label
    labels = {row["setup_label"] for dataset in spec["datasets"].values() for row in dataset if "setup_label" in row}
    assert labels == {"single-bridge-none-c2 (kernel)", "single-bridge-iptables-c2 (kernel)"}


def test_latency_boxplot_embeds_only_received_probes_and_needed_columns():
    latency = tablegen.latency_table(setups=FOUR, loss_every=4)
    spec = _build("latency_boxplot", latency).to_dict()
    values = _values(spec)
    assert len(values) == int(latency["received"].sum())
    assert all(v["rtt_ms"] is not None for v in values)
    assert set(values[0]) == {*basic.LATENCY_COLUMNS, "sent"}  # the labels are looked up per setup


def test_latency_boxplot_facets_by_container_count():
    latency = tablegen.latency_table(setups=FOUR)
    spec = _build("latency_boxplot", latency).to_dict()
    # one row of panels per scenario x container count, titled above each row
    assert spec["facet"]["row"]["field"] == "panel"
    assert spec["facet"]["row"]["header"]["labelExpr"] == _common.PANEL_HEADER_EXPRESSION
    assert _common.panel_order(latency) == ["1000002|single-host, 2 containers", "1000008|single-host, 8 containers"]
    assert {"calculate": _common.PANEL_EXPRESSION, "as": "panel"} in spec["transform"]
    assert spec["resolve"]["scale"]["y"] == "independent"
    assert _title(spec)[0] == "Round-trip time per setup"


def test_latency_boxplot_when_every_probe_is_lost():
    latency = tablegen.latency_table(loss_every=1)
    with pytest.raises(ValueError, match="all 20 probes were lost"):
        basic.latency_boxplot(latency, tables.empty("summary"))


# ---------------------------------------------------------------------------------- throughput
def test_throughput_by_payload_encodings_titles_and_n():
    frame = tablegen.throughput_table(setups=FOUR, reps=3, flows=2)
    spec = _build("throughput_by_payload", frame).to_dict()
    box, points, median = _layers(spec)
    assert _mark(box) == "boxplot" and _mark(points) == "circle"
    for layer in (box, points):
        enc = layer["encoding"]
        assert (enc["y"]["field"], enc["y"]["title"]) == ("label", "setup (implementation)")
        assert (enc["color"]["field"], enc["color"]["title"]) == ("filter", "packet filter")
        assert (enc["x"]["field"], enc["x"]["title"]) == ("throughput_mbps", "throughput per pair (Mbit/s)")
    # a column per payload, a row of panels per container count; x and y per panel
    # the column names sort by size as text (64 B padded), which Vega-Lite's headers follow
    assert spec["facet"]["column"]["sort"] == "ascending" and "pad(datum.payload_bytes + '', 4, ' ', 'left')" in str(spec)
    assert spec["facet"]["row"]["field"] == "panel"
    assert spec["resolve"]["scale"] == {"x": "independent", "y": "independent"}
    assert {"n", "median", "median_ci_low", "throughput_mbps", "rep", "pair"} <= _tooltip_fields(points)
    assert _mark(median) == "tick" and {"n", "median", "median_ci_high"} <= _tooltip_fields(median)
    expected = len(stats.per_pair_throughput(frame))  # 4 setups × 3 payloads × 3 reps × 1 pair
    assert expected == 36
    assert len(_values(spec)) == expected
    assert f"n = {expected} per-pair values" in _title(spec)[1]
    payloads = sorted({v["payload_bytes"] for v in _values(spec)})
    assert payloads == [64, 653, 1370]


def test_throughput_by_payload_facets_by_protocol():
    frame = pd.concat(
        [tablegen.throughput_table(protocol="tcp"), tablegen.throughput_table(protocol="udp")], ignore_index=True
    )
    spec = _build("throughput_by_payload", frame).to_dict()
    assert spec["facet"]["column"]["field"] == "payload"
    assert "+ ', ' + datum.protocol" in str(spec)


# -------------------------------------------------------------------------- sizes and failures
@pytest.mark.parametrize("name", ONE_TABLE)
def test_one_setup_one_rep_builds(name, tmp_path):
    frame = _fixture(figures.FIGURES[name].table, setups=["single-bridge-none-c2"], reps=1)
    chart = _build(name, frame)
    as_dict = chart.to_dict()
    assert "1 setup, 1 repetition" in _title(as_dict)[1]
    written = figures.save_chart(chart, tmp_path / name)
    assert [p.name for p in written] == [f"{name}.html", f"{name}.svg"]


@pytest.mark.parametrize("name", ONE_TABLE)
def test_many_setups_build(name):
    spec = figures.FIGURES[name]
    setups = tablegen.many_setups(24)
    chart = _build(name, _fixture(spec.table, setups=setups, reps=2))
    values = _values(chart.to_dict())
    assert {v["setup"] for v in values} == set(setups)


@pytest.mark.parametrize("name", ONE_TABLE)
def test_empty_table_raises_a_helpful_error(name):
    spec = figures.FIGURES[name]
    with pytest.raises(ValueError, match=rf"^no rows for figure {name}; did the sweep measure workload"):
        spec.builder(tables.empty(spec.table), tables.empty("summary"))


def test_missing_columns_are_named():
    latency = tablegen.latency_table().drop(columns=["rtt_ms"])
    with pytest.raises(ValueError, match=r"lacks columns \['rtt_ms'\]"):
        basic.latency_boxplot(latency, tables.empty("summary"))


def test_large_table_needs_no_global_max_rows_setting():
    # 6 setups × 32 containers (16 pairs) × 3 reps × 20 probes = 5760 rows, over altair's 5000
    latency = tablegen.latency_table(setups=tablegen.many_setups(6, containers=32), reps=3, probes=20)
    assert len(latency) > 5000
    before = (alt.data_transformers.active, dict(alt.data_transformers.options))
    spec = _build("latency_boxplot", latency).to_dict()
    assert len(_values(spec)) == len(latency)
    assert (alt.data_transformers.active, dict(alt.data_transformers.options)) == before


# ------------------------------------------------------------------------------------- saving
def test_save_chart_writes_offline_html_and_svg(tmp_path):
    chart = _build("latency_boxplot", tablegen.latency_table(setups=FOUR, reps=2))
    out = tmp_path / "figs" / "latency_boxplot"
    written = figures.save_chart(chart, out)
    html, svg = out.with_suffix(".html"), out.with_suffix(".svg")
    assert written == [html, svg]
    svg_text = svg.read_text()
    assert "<svg" in svg_text and "round-trip time (ms)" in svg_text
    html_text = html.read_text()
    assert len(html_text) > 100_000  # the Vega libraries are inlined
    assert not re.search(r"<script[^>]*\bsrc=", html_text), "the HTML must not load scripts from the network"
    assert "vegaEmbed" in html_text
    assert sorted(p.name for p in (tmp_path / "figs").iterdir()) == ["latency_boxplot.html", "latency_boxplot.svg"]


def test_save_chart_accepts_a_chart_with_dataframe_data_over_max_rows(tmp_path):
    frame = pd.DataFrame({"x": range(6000), "y": range(6000)})
    chart = alt.Chart(frame).mark_point().encode(x="x:Q", y="y:Q")
    html, svg = figures.save_chart(chart, tmp_path / "big")
    assert "<svg" in svg.read_text() and html.stat().st_size > 0
    with pytest.raises(alt.MaxRowsError):  # the global setting is untouched
        chart.to_dict()


def test_saved_spec_matches_the_chart(tmp_path):
    chart = _build("throughput_by_payload", tablegen.throughput_table())
    html, _ = figures.save_chart(chart, tmp_path / "t")
    spec = chart.to_dict()
    assert json.dumps(spec["title"]["text"]) in html.read_text()
