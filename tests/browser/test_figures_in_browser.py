"""The HTML figures as a reader opens them: Debian's chromium, headless, loads each saved figure
of a sweep with single- and multi-host setups; no console error, and every chart drew."""

from __future__ import annotations

from pathlib import Path

import pytest

from seconetbench import figures
from tests.browser.chromium import open_page
from tests.unit import tablegen
from tests.unit.test_figures_convergence import MULTI, SINGLE, UNCONVERGED, _sweep_tables

TABLES = {"latency", "throughput", "ditg", "deployment", "host_usage", "security", "summary"}

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def saved_figures(tmp_path_factory) -> dict[str, Path]:
    frames = _sweep_tables([f"{setup}/{workload}" for setup, workload in set(UNCONVERGED.values())])
    frames["security"] = tablegen.security_table(SINGLE + MULTI)
    out = tmp_path_factory.mktemp("figures")
    saved = {}
    for name, spec in figures.FIGURES.items():
        if set(spec.tables) <= set(frames):
            try:
                chart = spec.builder(*(frames[kind] for kind in spec.tables))
            except ValueError as error:  # a figure whose workload this sweep did not measure
                saved[name] = str(error)
                continue
            saved[name], _ = figures.save_chart(chart, out / name)
    return saved


def test_the_sweep_saves_the_figures_the_browser_opens(saved_figures):
    assert {"latency_boxplot", "throughput_by_payload", "multi_host_ditg_throughput", "security_matrix"} <= set(saved_figures)


@pytest.mark.parametrize("name", sorted(n for n, s in figures.FIGURES.items() if set(s.tables) <= TABLES))
def test_every_html_figure_renders_without_console_errors(name, saved_figures):
    if not isinstance(saved_figures[name], Path):
        pytest.skip(saved_figures[name])
    view = open_page(saved_figures[name])
    assert view.errors == [] and not [line for line in view.console if "rror" in line], (view.errors, view.console)
    assert view.charts, f"{name}: no chart element in the page"
    assert all(chart["drawn"] > 0 and chart["width"] > 0 and chart["height"] > 0 for chart in view.charts), view.charts


def test_the_probe_sees_console_errors_and_charts_that_drew_nothing(tmp_path, saved_figures):
    broken = tmp_path / "broken.html"
    # a figure whose spec Vega cannot parse: vega-embed logs the error and draws nothing
    page = saved_figures["latency_boxplot"].read_text()
    assert page.count('"mark": {"type": "boxplot"') == 1
    broken.write_text(page.replace('"mark": {"type": "boxplot"', '"mark": {"type": "no-such-mark"')
                      + "<script>console.error('deliberate');</script>")
    view = open_page(broken, budget_ms=3000)
    assert "deliberate" in view.errors
    assert not any(chart["drawn"] > 0 for chart in view.charts)
