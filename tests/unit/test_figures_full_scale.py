"""Every figure stays readable at the size of config/full.yaml (117 setups x 11 workloads x 5
repetitions, from tablegen.full_sweep_tables): small multiples per scenario x container count,
at most MAX_CATEGORIES_PER_PANEL setups on one axis of one panel, and one colour per technology,
the same in every figure. Checked on the SVG vl-convert renders, not only on the spec."""

from __future__ import annotations

import itertools
import math
import re

import pandas as pd
import pytest
import vl_convert

from seconetbench import config, figures, sweep, technology
from seconetbench.figures import _common
from tests.unit import tablegen
from tests.unit.test_figures_convergence import _walk as walk

pytestmark = pytest.mark.unit

FULL = "config/full.yaml"
# figures that list setups on an axis: each must put them in panels per scenario x container count
SETUP_AXIS_FIGURES = {"latency_boxplot", "throughput_by_payload", "ditg_bitrate", "ditg_delay", "cpu_per_gbit",
                      "first_packet", "first_packet_flushed", "baseline_ratio", "deploy_time"}
# Vega's SVG describes each axis: "Y-axis titled '...' for a discrete scale with 24 values: ..."
DISCRETE_AXIS = re.compile(r'aria-label="([XY])-axis titled \'([^\']*)\' for a discrete scale with (\d+) values')
LEGEND_ENTRY = re.compile(r'role-legend-symbol"[^>]*>\s*<path[^>]*fill="(#[0-9a-fA-F]{6})"[^>]*/>\s*</g>\s*'
                          r'<g class="mark-text role-legend-label"[^>]*>\s*<text[^>]*>([^<]*)</text>')
# fields whose values are technologies (or their labels): coloured from the palette only
TECHNOLOGY_FIELDS = {"filter", "solution", "tunnel", "tunnel_label", "solution_label"}
MIN_COLOUR_DISTANCE = 20  # CIELAB ΔE (1976): about what tells two colours apart at a glance in a legend


@pytest.fixture(scope="module")
def full_tables() -> dict[str, pd.DataFrame]:
    return tablegen.full_sweep_tables(FULL, reps=5)


@pytest.fixture(scope="module")
def rendered(full_tables) -> dict[str, tuple[dict, str]]:
    """Every figure the workflow would build for config/full.yaml: its spec and its SVG."""
    cfg = config.validate(config.load_files(FULL))
    planned = sweep.expand(cfg)
    out = {}
    for name, spec in figures.FIGURES.items():
        if set(spec.tables) <= set(full_tables) and spec.applies(list(full_tables), planned, cfg):
            chart = spec.builder(*(full_tables[kind] for kind in spec.tables))
            out[name] = (chart.to_dict(), vl_convert.vegalite_to_svg(chart.to_json()))
    return out


def _lab(colour: str) -> tuple[float, float, float]:
    """sRGB hex -> CIELAB (D65)."""
    def linear(c: float) -> float:
        return ((c + 0.055) / 1.055) ** 2.4 if c > 0.04045 else c / 12.92

    r, g, b = (linear(int(colour[i:i + 2], 16) / 255) for i in (1, 3, 5))
    x = (0.4124 * r + 0.3576 * g + 0.1805 * b) / 0.95047
    y = 0.2126 * r + 0.7152 * g + 0.0722 * b
    z = (0.0193 * r + 0.1192 * g + 0.9505 * b) / 1.08883

    def f(v: float) -> float:
        return v ** (1 / 3) if v > 0.008856 else 7.787 * v + 16 / 116

    return 116 * f(y) - 16, 500 * (f(x) - f(y)), 200 * (f(y) - f(z))


def _technology(label: str) -> str:
    """'wireguard [suite] (userspace (wireguard-go))' -> 'wireguard'."""
    return label.split(" (")[0].split(" [")[0].strip()


def test_the_table_has_the_full_sweep(full_tables):
    latency = full_tables["latency"]
    assert latency["setup"].nunique() == 117
    assert set(latency.groupby("setup")["rep"].nunique()) == {5}
    assert set(full_tables["deployment"]["workload"]) == {"latency", "throughput_64", "throughput_653", "throughput_1370",
                                                         "bursty", "tcp100", "quake3", "video", "first_packet",
                                                         "isolation", "confidentiality", "spoofing"}
    assert set(full_tables["ditg"]["workload"]) == {"bursty", "tcp100", "quake3", "video"}
    # implementations as a machine without kernel modules resolves them (CI's)
    implementations = latency.drop_duplicates("setup").set_index("setup")["implementation"]
    assert implementations["multi-wireguard-none-c2"] == "userspace"
    assert implementations["single-bridge-none-c2"] == "kernel"


def test_every_figure_of_the_full_sweep_renders(rendered):
    assert SETUP_AXIS_FIGURES | {"multi_host_throughput", "multi_host_latency", "multi_host_ditg_throughput",
                                 "security_matrix", "rule_scaling"} <= set(rendered)
    for name, (_, svg) in rendered.items():
        assert svg.startswith("<svg") and "role-axis" in svg, name


@pytest.mark.parametrize("name", sorted(SETUP_AXIS_FIGURES))
def test_setups_are_in_panels_per_scenario_and_container_count(name, rendered):
    spec, svg = rendered[name]
    assert spec["facet"]["row"]["field"] == "panel"
    assert {"calculate": _common.PANEL_EXPRESSION, "as": "panel"} in spec["transform"]
    # the six panels of the full sweep, in order, titled in the SVG
    headers = [label for label in re.findall(r">((?:single|multi)-host, \d+ containers)</text>", svg)]
    expected = [f"{scenario}-host, {count} containers" for scenario in ("single", "multi") for count in (2, 8, 32)]
    assert list(dict.fromkeys(headers)) == expected or name == "baseline_ratio" and set(headers) <= set(expected)


def test_no_panel_lists_more_setups_than_a_reader_can_follow(rendered):
    most = {}
    for name, (_, svg) in rendered.items():
        counts = [int(count) for _, title, count in DISCRETE_AXIS.findall(svg)]
        most[name] = max(counts, default=0)
    assert max(most.values()) <= _common.MAX_CATEGORIES_PER_PANEL, most
    # a multi-host panel of the full sweep: 8 tunnels x 3 filters
    assert most["latency_boxplot"] == 24 and most["throughput_by_payload"] == 24, most


def test_the_palette_has_one_distinct_colour_for_every_technology_the_registries_know():
    palette = _common.technology_palette()
    known = {name for kind in technology.KINDS for name in technology.names(kind)}
    assert known <= set(palette)
    colours = [palette[name] for name in known]
    assert len(set(colours)) == len(colours)  # a name shared by two kinds (ebpf, ovs, ...) is one technology
    reserved = [_common.UNCONVERGED_COLOUR, _common.UNKNOWN_TECHNOLOGY_COLOUR]
    for first, second in itertools.combinations(colours + reserved, 2):
        distance = math.dist(_lab(first), _lab(second))
        assert distance >= MIN_COLOUR_DISTANCE, (first, second, distance)
    assert len(_common.TECHNOLOGY_COLOURS) >= len(known) - 1  # 'none' is grey


def test_every_technology_has_the_same_colour_in_every_figure(rendered):
    palette = _common.technology_palette()
    seen: dict[str, set[tuple[str, str]]] = {}
    for name, (spec, svg) in rendered.items():
        # the spec: every colour scale over technologies uses the palette
        for node in walk(spec):
            color = node.get("color") if isinstance(node.get("color"), dict) else None
            scale = (color or {}).get("scale")
            if (color or {}).get("field") in TECHNOLOGY_FIELDS:
                assert isinstance(scale, dict) and "domain" in scale and "range" in scale, (name, color)
                by_technology = {}
                for label, colour in zip(scale["domain"], scale["range"]):
                    assert colour == _common.technology_colour(_technology(label)), (name, label, colour)
                    by_technology.setdefault(colour, set()).add(_technology(label))
                assert all(len(names) == 1 for names in by_technology.values()), (name, by_technology)
        # the SVG: what a reader sees in the legends
        for colour, label in LEGEND_ENTRY.findall(svg):
            if _technology(label) in palette:
                seen.setdefault(_technology(label), set()).add((colour.lower(), name))
    assert {"iptables", "nftables", "none", "wireguard", "vxlan", "tinc"} <= set(seen), sorted(seen)
    for tech, uses in seen.items():
        assert {colour for colour, _ in uses} == {palette[tech]}, (tech, uses)
    # filters are coloured in several figures: the same colour in each
    assert len({figure for _, figure in seen["iptables"]}) >= 4


def test_an_emulated_accelerator_is_named_and_marked_not_for_comparison(full_tables):
    deployment = full_tables["deployment"].assign(accelerator="tcg")
    chart = figures.FIGURES["deploy_time"].builder(deployment)
    svg = vl_convert.vegalite_to_svg(chart.to_json())
    assert "single-bridge-none-c2 (kernel, tcg: not for comparison)" in svg
    assert _common.implementation_label("multi-wireguard-none-c2", "kernel", "kvm") == "multi-wireguard-none-c2 (kernel, kvm)"
    assert _common.implementation_label("x", "kernel", None) == "x (kernel)"
    facts = figures.multi_host.tunnel_facts(deployment)
    labels = set(figures.multi_host._labelled(facts, facts)["tunnel_label"])
    assert "wireguard (userspace (wireguard-go), tcg: not for comparison)" in labels


def test_ditg_throughput_is_per_pair(full_tables):
    from seconetbench.figures import ditg

    ditg_frame = full_tables["ditg"]
    pairs = ditg.per_pair(ditg_frame)
    # one value per setup x workload x repetition x pair
    assert len(pairs) == len(ditg_frame[["setup", "workload", "rep", "pair"]].drop_duplicates())
    one = pairs.iloc[0]
    rows = ditg_frame[(ditg_frame["setup"] == one["setup"]) & (ditg_frame["workload"] == one["workload"])
                      & (ditg_frame["rep"] == one["rep"]) & (ditg_frame["pair"] == one["pair"])]
    intervals = rows[rows["interval"] > 0]
    covered = (intervals["start_s"] + intervals["duration_s"]).max()
    assert one["throughput_kbps"] == pytest.approx(rows.loc[rows["interval"] == 0, "bytes"].sum() * 8 / 1e3 / covered)
    spec, _ = (figures.FIGURES["multi_host_ditg_throughput"].builder(
        ditg_frame, full_tables["deployment"], full_tables["summary"]).to_dict(), None)
    assert spec["facet"]["column"]["field"] == "workload" and spec["facet"]["row"]["field"] == "containers"
