"""Helpers shared by the figure modules."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

import altair as alt
import pandas as pd

from seconetbench import stats
from seconetbench.errors import InvalidValueError


def inline(frame: pd.DataFrame) -> dict:
    """Embed *frame* as inline JSON values (NaN → null, numpy scalars → JSON numbers).

    A plain ``{"values": [...]}`` dict rather than ``alt.Data``: Altair neither applies its
    ``max_rows`` limit to it nor validates every row against the schema (which takes seconds at
    some 10k rows); ``to_dict()`` moves it to the top-level ``datasets``.
    """
    return {"values": json.loads(frame.to_json(orient="records", double_precision=10))}


def require(frame: pd.DataFrame, columns: list[str], figure: str) -> None:
    absent = [c for c in columns if c not in frame.columns]
    if absent:
        raise InvalidValueError(f"figure {figure}: the table lacks columns {absent}; it has {list(frame.columns)}")


def no_rows(figure: str, workload: str) -> ValueError:
    return ValueError(f"no rows for figure {figure}; did the sweep measure workload {workload}?")


def reps_text(frame: pd.DataFrame) -> str:
    reps = frame.groupby("setup", observed=True)["rep"].nunique()
    low, high = int(reps.min()), int(reps.max())
    return f"{low} repetition{'s' if high > 1 else ''}" if low == high else f"{low}–{high} repetitions"


def plural(count: int, word: str) -> str:
    return f"{count:,} {word}{'' if count == 1 else 's'}"


# --------------------------------------------------------------------------------------------
# per-cell statistics and convergence (a cell = one setup x workload, what repetitions repeat)
CELL = ["setup", "workload"]
# the summary table's columns a figure shows per cell (docs/tables.md, "summary"): the median
# and its 95 % CI over n repetitions, and how many samples the repetitions pooled
CELL_STATISTICS = ["n", "probes", "median", "median_ci_low", "median_ci_high"]
CELL_CONVERGENCE = ["repetitions", "convergence"]
NOT_CONVERGED = "not_converged"
# Vega expression: the datum's cell stopped at repetitions.max before its CI reached the target
UNCONVERGED_TEST = f"datum.convergence === '{NOT_CONVERGED}'"
UNCONVERGED_COLOUR = "#d62728"
# after the setup in an axis label, or above a mark; the subtitle says what it means. Only the
# glyph: Vega places a faceted axis's title over labels longer than about 200 px
UNCONVERGED_GLYPH = "⚠"


def summary_cells(summary_frame: pd.DataFrame, metric: str, figure: str) -> pd.DataFrame:
    """The *metric* rows of the summary table, for a figure that draws that very metric: per
    setup x workload its n, median, 95 % CI of the median, repetitions and convergence."""
    require(summary_frame, [*CELL, "metric", *CELL_STATISTICS, *CELL_CONVERGENCE], figure)
    rows = summary_frame.loc[summary_frame["metric"] == metric, [*CELL, *CELL_STATISTICS, *CELL_CONVERGENCE]]
    return rows.reset_index(drop=True)


def drawn_cells(values: pd.DataFrame, value_column: str, by: list[str], summary_frame: pd.DataFrame,
                figure: str) -> pd.DataFrame:
    """Per group *by* (a setup x workload cell, or finer): the median and 95 % CI of the drawn
    *value_column* over the repetitions (each repetition's median of *values*, which need a
    ``rep`` column: :func:`stats.repetition_summary`, as the summary table computes them; n =
    repetitions, probes = values drawn), with the cell's repetitions and convergence from the
    summary. For figures that draw another quantity than the summary's metric (per-flow D-ITG
    values, CPU per gigabit, first probes): the CI belongs to what is drawn, while convergence
    was decided per cell on the summary's metric."""
    require(summary_frame, [*CELL, *CELL_CONVERGENCE], figure)
    statistics = stats.repetition_summary(values, value_column, by)[[*by, *CELL_STATISTICS]]
    convergence = summary_frame[[*CELL, *CELL_CONVERGENCE]].drop_duplicates(CELL)
    return statistics.merge(convergence, on=CELL, how="left")


def cell_key_expression(columns: list[str]) -> str:
    """Vega expression joining *columns* of a datum like :func:`cell_keys` joins them in pandas."""
    return " + '|' + ".join(f"datum[{column!r}]" for column in columns)


def cell_keys(frame: pd.DataFrame, columns: list[str]) -> pd.Series:
    keys = frame[columns[0]].astype(str)
    for column in columns[1:]:
        keys = keys + "|" + frame[column].astype(str)
    return keys


def look_up_cells(chart: alt.TopLevelMixin, cells: pd.DataFrame, by: list[str]) -> alt.TopLevelMixin:
    """*chart* (a layer of raw rows) with each row's cell statistics and convergence looked up
    from *cells* (one row per group *by*). A lookup rather than a column per raw row keeps the
    embedded data small; it sits on the layer, not inside it, because Vega-Lite fails on a lookup
    inside a faceted layer ("Undefined data set name ... lookup")."""
    fields = [c for c in cells.columns if c not in by]
    keyed = cells[fields].assign(cell_key=cell_keys(cells, by))
    return chart.transform_calculate(cell_key=cell_key_expression(by)).transform_lookup(
        lookup="cell_key", from_=alt.LookupData(data=inline(keyed), key="cell_key", fields=fields))


def cell_tooltips(value_title: str, number_format: str = ",.3f") -> list[alt.Tooltip]:
    """Tooltips of a per-cell mark: n (the repetitions the CI is over), the samples they pooled,
    median, its 95 % CI, repetitions and convergence."""
    return [
        alt.Tooltip("n:Q", title="n (repetitions with a value)", format=","),
        alt.Tooltip("probes:Q", title="samples pooled over the repetitions", format=","),
        alt.Tooltip("median:Q", title=f"median {value_title}", format=number_format),
        alt.Tooltip("median_ci_low:Q", title="95 % CI of the median over the repetitions, low (none below 6)",
                    format=number_format),
        alt.Tooltip("median_ci_high:Q", title="95 % CI of the median over the repetitions, high",
                    format=number_format),
        alt.Tooltip("repetitions:Q", title="repetitions"),
        alt.Tooltip("convergence:N", title="convergence"),
    ]


def unconverged_note(marking: str = f"red median tick and a red {UNCONVERGED_GLYPH} after the setup") -> str:
    """The subtitle line that explains a figure's *marking* of unconverged cells."""
    return (f"{marking}: the cell's repetitions reached repetitions.max before the 95 % CI of its "
            "median was narrow enough (not converged)")


def median_tick(per_cell: alt.Chart, size: int, **encoding: Any) -> alt.Chart:
    """The tick on a box's median (*per_cell* has one row per box), black, or red where the
    box's cell did not converge; *encoding* places it and gives its tooltip."""
    return per_cell.mark_tick(thickness=2, size=size).encode(color=unconverged_colour(), **encoding)


def unconverged_colour(default: str = "black") -> dict:
    """Colour of a per-cell mark: red when its cell did not converge, *default* otherwise."""
    return alt.condition(UNCONVERGED_TEST, alt.value(UNCONVERGED_COLOUR), alt.value(default))


# what a label says for targets that did not record their implementation (docs/tables.md)
UNKNOWN_IMPLEMENTATION = "implementation unknown"


# the accelerator whose numbers are functional only (QEMU's emulated CPU): labels say so
EMULATED_ACCELERATOR = "tcg"
NOT_FOR_COMPARISON = "not for comparison"


def implementation_label(name: str, implementation: Any, accelerator: Any = None) -> str:
    """How every figure names a setup or technology it compares: *name* and what ran it, e.g.
    "single-ovs-none-c2 (userspace)", "wireguard (userspace (wireguard-go 0.0.2023))". The
    implementation is the identity column `implementation` (or a deploy's own words for it); a
    setup id names it only when it was pinned, so the label says it for all, and says
    "(implementation unknown)" where a target did not record it. A VM's *accelerator* follows
    ("wireguard (kernel, kvm)"), and under TCG the label says the numbers are not for comparison:
    an emulated CPU measures function, not speed."""
    known = isinstance(implementation, str) and implementation not in ("", "unknown")
    words = implementation if known else UNKNOWN_IMPLEMENTATION
    if isinstance(accelerator, str) and accelerator:
        words += f", {accelerator}"
        if accelerator.lower() == EMULATED_ACCELERATOR:
            words += f": {NOT_FOR_COMPARISON}"
    return f"{name} ({words})"


def labelled(frame: pd.DataFrame, name: str = "setup") -> pd.DataFrame:
    """*frame* with a column ``<name>_label``: :func:`implementation_label` of each row's *name*
    (setup, solution, ...), ``implementation`` and, where the table has one, ``accelerator``."""
    accelerators = frame["accelerator"] if "accelerator" in frame.columns else [None] * len(frame)
    labels = [implementation_label(value, implementation, accelerator)
              for value, implementation, accelerator in zip(frame[name], frame["implementation"], accelerators)]
    return frame.assign(**{f"{name}_label": pd.Series(labels, index=frame.index, dtype=object)})


def look_up_setup_labels(chart: alt.TopLevelMixin, frame: pd.DataFrame, figure: str) -> alt.TopLevelMixin:
    """*chart* (a layer of raw rows with a ``setup`` column) with each row's ``setup_label``
    (:func:`labelled`) looked up from the setups of *frame*. One label per setup rather than a
    column per raw row keeps the embedded data small (some 50 bytes per latency probe). A setup
    has one implementation: the cell fingerprint refuses repetitions that differ in it."""
    require(frame, ["setup", "implementation"], figure)
    columns = ["setup", "implementation", *(["accelerator"] if "accelerator" in frame.columns else [])]
    labels = labelled(frame[columns].drop_duplicates("setup"))[["setup", "setup_label"]]
    return chart.transform_lookup(lookup="setup", from_=alt.LookupData(data=inline(labels), key="setup",
                                                                        fields=["setup_label"]))


def flagged_label(text_expression: str) -> str:
    """Vega expression: *text_expression* followed by " ⚠" when the datum's cell did not converge.
    For axis labels: unlike a text mark beside the box, a label never runs into the legend or off
    the plot."""
    return f"{text_expression} + ({UNCONVERGED_TEST} ? ' {UNCONVERGED_GLYPH}' : '')"


def flagged_axis(**axis: Any) -> alt.Axis:
    """An axis that draws the labels :func:`flagged_label` flagged in red. (Not bold: Vega sizes
    the axis by the labels' normal width, and a bold label would run into the axis title.)"""
    flagged = f"indexof(datum.label, '{UNCONVERGED_GLYPH}') >= 0"
    return alt.Axis(labelColor=alt.condition(flagged, alt.value(UNCONVERGED_COLOUR), alt.value("black")), **axis)


# Vega expression: the top of a per-cell mark, the CI's upper end, or the median where the cell
# has no CI (fewer than 6 repetitions)
CELL_TOP = "isValid(datum.median_ci_high) ? datum.median_ci_high : datum.median"


def unconverged_glyph(chart: alt.Chart) -> alt.Chart:
    """A red "⚠" just above every per-cell mark of *chart* whose cell did not converge (the
    caller encodes y at the top of the mark)."""
    # colour as an encoding: it must override a colour encoding the glyph inherits from *chart*
    glyph = chart.transform_filter(UNCONVERGED_TEST).mark_text(
        text=UNCONVERGED_GLYPH, fontWeight="bold", baseline="bottom", dy=-4)
    return glyph.encode(color=alt.value(UNCONVERGED_COLOUR))


def cell_point_layers(base: alt.Chart, y: alt.Y, tooltip: list) -> list[alt.Chart]:
    """Layers that draw one point per cell at its median on *base* (which encodes x and colour):
    the 95 % CI as an error bar, a filled point where the cell converged, a hollow one and a
    "⚠" where it did not."""
    interval = base.mark_rule().encode(y=alt.Y("median_ci_low:Q"), y2="median_ci_high:Q")
    # two point layers rather than a conditional fill, which would draw a second colour legend
    converged = base.transform_filter(f"!({UNCONVERGED_TEST})").mark_point(size=60, filled=True, opacity=1)
    unconverged = base.transform_filter(UNCONVERGED_TEST).mark_point(size=60, filled=False, strokeWidth=2)
    points = [layer.encode(y=y, tooltip=tooltip) for layer in (converged, unconverged)]
    warning = unconverged_glyph(base.transform_calculate(cell_top=CELL_TOP)).encode(y=alt.Y("cell_top:Q"))
    return [interval, *points, warning]


# --------------------------------------------------------------------------------------------
# one colour per technology, the same in every figure
# Distinct colours, each at least 23 CIELAB ΔE from every other (Tableau's first eight, then a
# greedy farthest-point pick, reordered so that the tunnels and VPNs of the default backend get
# different hues; tests/unit/test_figures_full_scale.py checks the distance): enough
# for every technology the registries know, with room for more. None is grey or red, which
# mean "no technology" and "not converged".
TECHNOLOGY_COLOURS = (
    "#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#76b7b2", "#edc948", "#9c755f", "#ff9da7",
    "#2b2bd9", "#d92bbc", "#2bd92b", "#8c1c2f", "#666614", "#8324b2", "#221466", "#576cd9",
    "#14664b", "#8c1c67", "#add957", "#d9bc82", "#2bd99f", "#663d4b", "#d92b65", "#d982d9",
    "#d98257", "#663014", "#57d96c", "#b28324", "#295c66", "#293366", "#d95798", "#836bb2",
)  # fmt: skip
NO_TECHNOLOGY = "none"  # filter none, and the tunnel of a single-host setup
NO_TECHNOLOGY_COLOUR = "#9e9e9e"
# a name no registry knows (a table from another version of the package)
UNKNOWN_TECHNOLOGY_COLOUR = "#4d4d4d"


@lru_cache(maxsize=1)
def technology_palette() -> dict[str, str]:
    """Every technology name the registries know (solutions, filters, tunnels and VPNs) -> its
    colour. A name shared by two kinds is one technology (ebpf, ovs, routing, cni) and has one
    colour. The technologies of the default backend come first, so the ones measured together
    on it get Tableau's familiar first colours; the colours follow the registries' name order,
    so a new technology can move the colours of those after it, never make two alike."""
    from seconetbench import technology
    from seconetbench.spec import DEFAULT_BACKEND

    names: list[str] = []
    for backend in (DEFAULT_BACKEND, None):
        for kind in technology.KINDS:
            names += [n for n in technology.names(kind, backend) if n != NO_TECHNOLOGY and n not in names]
    if len(names) > len(TECHNOLOGY_COLOURS):
        raise InvalidValueError(f"{len(names)} technologies and {len(TECHNOLOGY_COLOURS)} colours in "
                                "figures._common.TECHNOLOGY_COLOURS: add distinct colours there")
    return {NO_TECHNOLOGY: NO_TECHNOLOGY_COLOUR, **dict(zip(names, TECHNOLOGY_COLOURS))}


def technology_colour(name: str) -> str:
    return technology_palette().get(name, UNKNOWN_TECHNOLOGY_COLOUR)


def technology_scale(names: Iterable[Any], technology_of: Mapping[Any, str] | None = None) -> alt.Scale:
    """A colour scale over *names* (technologies, or labels whose technology *technology_of*
    gives, e.g. "wireguard (userspace)" -> "wireguard") in the technologies' own colours. Every
    figure that colours by a technology uses it, so a technology looks alike in all of them."""
    domain = sorted({n for n in names if isinstance(n, str)})
    technology_of = technology_of or {}
    return alt.Scale(domain=domain, range=[technology_colour(technology_of.get(n, n)) for n in domain])


def technology_color(field: str, frame: pd.DataFrame, title: str, technology_field: str | None = None,
                     **options: Any) -> alt.Color:
    """Colour channel for *field* of *frame* in the technologies' colours (*technology_field*
    names each row's technology where *field* is a label)."""
    if technology_field is None:
        scale = technology_scale(frame[field])
    else:
        pairs = frame[[field, technology_field]].drop_duplicates(field)
        scale = technology_scale(pairs[field], dict(zip(pairs[field], pairs[technology_field])))
    legend = options.pop("legend", alt.Legend(labelLimit=400))
    return alt.Color(f"{field}:N", title=title, scale=scale, legend=legend, **options)


# --------------------------------------------------------------------------------------------
# small multiples: one panel per scenario x container count
SCENARIO_TITLES = {"single": "single-host", "multi": "multi-host"}
# Vega expression of :func:`panel_key`, computed in the chart so raw rows carry no panel column
PANEL_EXPRESSION = ("(datum.scenario === 'single' ? '1' : datum.scenario === 'multi' ? '2' : '3' + datum.scenario) "
                    "+ pad(datum.containers + '', 6, '0', 'left') + '|' + (datum.scenario === 'multi' ? 'multi-host' "
                    ": datum.scenario === 'single' ? 'single-host' : datum.scenario) + ', ' + datum.containers "
                    "+ ' containers'")
# a panel header shows the key after its sort prefix
PANEL_HEADER_EXPRESSION = "slice(datum.label, indexof(datum.label, '|') + 1)"
# the most categories (setups, or setups x probes) one axis of one panel may list; a full sweep
# puts at most 24 setups in a panel (8 tunnels x 3 filters)
MAX_CATEGORIES_PER_PANEL = 32


def panel_label(scenario: str, containers: int) -> str:
    return f"{SCENARIO_TITLES.get(scenario, scenario)}, {int(containers)} containers"


def panel_key(scenario: str, containers: int) -> str:
    """What :data:`PANEL_EXPRESSION` computes: a prefix that sorts single-host panels first, then
    by container count, '|', and :func:`panel_label`. Panels sort by this text rather than by a
    sort list: with a column facet too, Vega-Lite orders a facet's headers by their text whatever
    the sort list, while it orders the panels by the list (seen with Vega-Lite 6.4)."""
    prefix = {"single": "1", "multi": "2"}.get(scenario, f"3{scenario}")
    return f"{prefix}{int(containers):06d}|{panel_label(scenario, containers)}"


def panel_order(frame: pd.DataFrame) -> list[str]:
    """The panel keys of *frame* (needs scenario and containers), in the order drawn."""
    require(frame, ["scenario", "containers"], "panels")
    combos = frame[["scenario", "containers"]].drop_duplicates()
    return sorted(panel_key(scenario, containers) for scenario, containers in combos.itertuples(index=False))


def small_multiples(chart: alt.TopLevelMixin, frame: pd.DataFrame, column: alt.Column | None = None,
                    independent: tuple[str, ...] = ("y",)) -> alt.TopLevelMixin:
    """*chart* faceted into one row of panels per scenario x container count of *frame* (in
    :func:`panel_order`, titled above each row) and *column*, with the *independent* scales per
    panel, so a panel lists only its own setups; *chart* itself when there is one panel and no
    column. The chart's data needs ``scenario`` and ``containers``."""
    order = panel_order(frame)
    facet: dict[str, Any] = {}
    if len(order) > 1:
        facet["row"] = alt.Row("panel:N", sort="ascending", title=None, header=alt.Header(
            labelExpr=PANEL_HEADER_EXPRESSION, labelAngle=0, labelOrient="top", labelAnchor="start", labelFontSize=12,
            labelFontWeight="bold"))
    if column is not None:
        facet["column"] = column
    if not facet:
        return chart
    faceted = chart.facet(**facet).transform_calculate(panel=PANEL_EXPRESSION)
    return faceted.resolve_scale(**{channel: "independent" for channel in independent}) if independent else faceted
