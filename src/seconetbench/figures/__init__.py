"""Altair chart builders over the benchmark tables, and one function that saves a chart.

Every builder is pure: it takes a table (a pandas DataFrame in the schema of ``tables.py``) and
returns an Altair chart; only :func:`save_chart` touches files. The data is embedded in the chart
as inline values (not as a DataFrame), so ``chart.to_dict()``/``to_json()`` never hit Altair's
``max_rows`` limit and do not depend on global data-transformer settings (see :func:`_inline`). Builders keep only the
columns they draw to keep the embedded spec small.

Every figure states n: in its subtitle (total) and per mark (axis label or tooltip). The registry
:data:`FIGURES` lists every figure with the table kind it reads; the workflow builds each figure
whose table exists. docs/figures.md describes each figure.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any
from dataclasses import dataclass
from pathlib import Path

import altair as alt
import vl_convert

from seconetbench.fsutil import atomic_path
from seconetbench.registry import Registry

# Vega-Lite version for the SVG export: the one Altair writes its specs for (e.g. "6.4").
# Falls back to vl-convert's newest if it does not bundle that version.
_VL_VERSION: str | None = ".".join(alt.SCHEMA_VERSION.lstrip("v").split(".")[:2])
if _VL_VERSION not in vl_convert.get_vegalite_versions():
    _VL_VERSION = None


# --------------------------------------------------------------------------------------------
# registry
@dataclass(frozen=True)
class FigureSpec:
    """A figure the workflow can build: *builder* turns the *table* kind's table (and the
    *extra_tables*, in that order, as further arguments) into a chart."""

    name: str  # file stem under results/figures/
    table: str  # table kind it reads (a tables.KINDS entry)
    builder: Callable[..., alt.TopLevelMixin]
    caption: str  # one sentence for the Snakemake report
    extra_tables: tuple[str, ...] = ()  # further table kinds the builder takes
    scenarios: tuple[str, ...] = ("single", "multi")  # built when the sweep has one of these
    # further condition on the sweep (a seconetbench.sweep.Sweep) and its validated config
    requires: Callable[[Any, dict], bool] | None = None

    @property
    def tables(self) -> tuple[str, ...]:
        return (self.table, *self.extra_tables)

    def applies(self, kinds: Iterable[str], sweep: Any, config: dict) -> bool:
        """Whether a sweep that measures table *kinds* can draw this figure (so the workflow
        never plans a figure that could only fail for lack of rows)."""
        scenarios = {setup.scenario for setup in sweep.setups}
        return (set(self.tables) <= set(kinds) and bool(set(self.scenarios) & scenarios)
                and (self.requires is None or bool(self.requires(sweep, config))))


# Every module of this package registers its figures when imported (one module per capability);
# the registry imports them on the first lookup (registry.py).
FIGURES: Registry[FigureSpec] = Registry("figure", package=__name__, name_of=lambda spec: spec.name)
register = FIGURES.register


# --------------------------------------------------------------------------------------------
# the one I/O function
def save_chart(chart: alt.TopLevelMixin, out_base: str | Path) -> list[Path]:
    """Write *chart* as ``<out_base>.html`` (self-contained, opens offline) and ``<out_base>.svg``.

    The HTML inlines the Vega, Vega-Lite and vega-embed libraries (from vl-convert, no network).
    The SVG is rendered by vl-convert. Each file is written to a temporary name and renamed, so a
    reader never sees half a figure. Returns the written paths.
    """
    out_base = Path(out_base)
    html_path, svg_path = out_base.with_suffix(".html"), out_base.with_suffix(".svg")
    with alt.data_transformers.disable_max_rows():
        spec_json = chart.to_json()
        with atomic_path(html_path) as tmp:
            chart.save(str(tmp), format="html", inline=True)
    svg = vl_convert.vegalite_to_svg(spec_json, vl_version=_VL_VERSION)
    with atomic_path(svg_path) as tmp:
        tmp.write_text(svg, encoding="utf-8")
    return [html_path, svg_path]

