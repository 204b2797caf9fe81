"""Multi-host figures like the paper's Figure 7: throughput and latency per tunnel by payload
size, each tunnel labelled with the implementation that ran (kernel, userspace, tc-bpf), and the
setup time per tunnel (seconds until the first packet passed).

The implementation and the setup time come from the ``deployment`` table (one row per target,
from meta.json); :func:`tunnel_facts` keeps the multi-host deploys of it.
"""

from __future__ import annotations

import altair as alt
import pandas as pd

from seconetbench.figures import FigureSpec, register
from seconetbench.figures._common import (
    CELL, CELL_TOP, UNCONVERGED_TEST, cell_point_layers, cell_tooltips, drawn_cells, implementation_label, inline, no_rows,
    plural, require, summary_cells, technology_color, unconverged_colour, unconverged_glyph, unconverged_note,
)
from seconetbench.figures.ditg import per_pair

FACT_COLUMNS = ["setup", "tunnel", "implementation", "cipher", "path_mtu", "overhead_bytes", "setup_s"]
DEPLOYMENT_COLUMNS = {"tunnel_implementation": "implementation", "tunnel_cipher": "cipher",
                      "tunnel_path_mtu_bytes": "path_mtu", "tunnel_overhead_bytes": "overhead_bytes",
                      "tunnel_setup_s": "setup_s"}


def tunnel_facts(deployment_frame: pd.DataFrame) -> pd.DataFrame:
    """One row per fresh multi-host deploy (a reused deployment repeats its deploy's facts)."""
    require(deployment_frame, ["scenario", "reused", "setup", "tunnel", *DEPLOYMENT_COLUMNS], "tunnel facts")
    fresh = deployment_frame[(deployment_frame["scenario"] == "multi") & ~deployment_frame["reused"]]
    # the label says what the deploy recorded (e.g. "userspace (wireguard-go v0.0.2023)"), which
    # starts with the short identity column `implementation` (kernel, userspace, tc-bpf)
    facts = fresh.drop(columns=["implementation"], errors="ignore").rename(columns=DEPLOYMENT_COLUMNS)
    # the vm backend's accelerator goes into the label (TCG: not for comparison)
    accelerator = ["accelerator"] if "accelerator" in facts.columns else []
    return facts[[*FACT_COLUMNS, *accelerator]].reset_index(drop=True)


def _labelled(frame: pd.DataFrame, facts: pd.DataFrame) -> pd.DataFrame:
    """*frame* with a column 'tunnel_label': 'wireguard (userspace (wireguard-go ...))', and the
    cipher suite in brackets where a sweep ran one tunnel with several suites. The implementation
    is the setup's (a sweep may measure a tunnel's kernel and userspace implementations side by
    side), else the tunnel's in other setups."""
    def joined(values: pd.Series) -> str:
        return " / ".join(sorted({str(v) for v in values if pd.notna(v)}))

    by_setup = facts.groupby("setup")["implementation"].agg(joined)
    by_tunnel = facts.groupby("tunnel")["implementation"].agg(joined)
    accelerator = facts.groupby("setup")["accelerator"].agg(joined) if "accelerator" in facts.columns else {}
    cipher = facts.groupby("setup")["cipher"].agg(joined)
    several = facts.groupby("tunnel")["cipher"].nunique()
    def label(tunnel: str, setup: str) -> str:
        suite = f" [{cipher.get(setup, '')}]" if several.get(tunnel, 0) > 1 else ""
        return implementation_label(f"{tunnel}{suite}", by_setup.get(setup) or by_tunnel.get(tunnel),
                                    accelerator.get(setup))

    frame = frame.copy()
    frame["tunnel_label"] = [label(t, s) for t, s in zip(frame["tunnel"], frame["setup"])]
    return frame


def _tunnel_cells(frame: pd.DataFrame, facts: pd.DataFrame, metric: str, summary_frame: pd.DataFrame,
                  figure: str, extra: tuple[str, ...] = ()) -> pd.DataFrame:
    """One row per multi-host setup x workload of *frame*: its tunnel label, filter, containers
    (and the *extra* columns) with the summary's n, median, 95 % CI and convergence of *metric*.
    One mark per cell, rather than per tunnel, keeps setups that share a tunnel but differ in
    filter or container count apart, and gives every mark its convergence."""
    identity = ["setup", "workload", "tunnel", "filter", "containers", *extra]
    cells = frame[identity].drop_duplicates()
    return _labelled(cells, facts).merge(summary_cells(summary_frame, metric, figure), on=CELL)


def _faceted(layers: alt.LayerChart, cells: pd.DataFrame, title: str, samples: str, marking: str,
             column: alt.Column | None = None) -> alt.TopLevelMixin:
    """*layers* with a row per container count when the sweep has several (and *column*), titled
    with n and the *marking* of unconverged cells."""
    facet = {"column": column} if column is not None else {}
    if cells["containers"].nunique() > 1:
        facet["row"] = alt.Row("containers:O", title="containers")
    subtitle = [f"n = {int(cells['probes'].sum()):,} {samples} in {plural(len(cells), 'setup x workload cell')}; "
                "error bar: 95 % CI of the median over the repetitions; n, median and CI per mark in the tooltip",
                unconverged_note(marking)]
    chart = layers.facet(**facet) if facet else layers
    return chart.properties(title=alt.TitleParams(title, anchor="start", subtitle=subtitle))


def multi_host_throughput(throughput_frame: pd.DataFrame, deployment_frame: pd.DataFrame,
                          summary_frame: pd.DataFrame) -> alt.TopLevelMixin:
    """Median per-pair throughput of each multi-host setup over the payload size (one line per
    tunnel and filter), with the 95 % CI of the median as an error bar."""
    figure = "multi_host_throughput"
    facts = tunnel_facts(deployment_frame)
    require(throughput_frame, ["scenario", "tunnel", "payload_bytes", "throughput_mbps"], figure)
    multi = throughput_frame[throughput_frame["scenario"] == "multi"]
    if multi.empty:
        raise no_rows(figure, "'throughput_<payload>' on multi-host setups")
    cells = _tunnel_cells(multi, facts, "throughput_mbps", summary_frame, figure, extra=("payload_bytes",))
    color = technology_color("tunnel_label", cells, "tunnel (implementation)", technology_field="tunnel")
    base = alt.Chart().encode(x=alt.X("payload_bytes:O", title="payload (bytes per write)",
                                      axis=alt.Axis(labelAngle=0)), color=color, detail="setup:N")
    y = alt.Y("median:Q", title="median throughput per pair (Mbit/s)")
    line = base.mark_line().encode(y=y)
    tooltip = [alt.Tooltip("setup:N", title="setup"), alt.Tooltip("workload:N", title="workload"),
               alt.Tooltip("filter:N", title="packet filter"),
               *cell_tooltips("throughput per pair (Mbit/s)", ",.1f")]
    width = max(240, 90 * cells["payload_bytes"].nunique())
    layers = alt.layer(line, *cell_point_layers(base, y, tooltip), data=inline(cells)).properties(width=width)
    # a column per filter: at most one line per tunnel (and implementation) in a panel
    return _faceted(layers, cells, "Throughput per tunnel by payload size", "per-pair values", "hollow point / ⚠",
                    column=alt.Column("filter:N", title="packet filter"))


def multi_host_latency(latency_frame: pd.DataFrame, deployment_frame: pd.DataFrame,
                       summary_frame: pd.DataFrame) -> alt.TopLevelMixin:
    """Median RTT of each multi-host setup per latency workload (the workload names the payload
    size): a bar per tunnel and filter, with the 95 % CI of the median as an error bar."""
    figure = "multi_host_latency"
    facts = tunnel_facts(deployment_frame)
    require(latency_frame, ["scenario", "tunnel", "workload", "rtt_ms"], figure)
    multi = latency_frame[(latency_frame["scenario"] == "multi") & latency_frame["rtt_ms"].notna()]
    if multi.empty:
        raise no_rows(figure, "'latency' on multi-host setups")
    cells = _tunnel_cells(multi, facts, "rtt_ms", summary_frame, figure)
    base = alt.Chart().encode(x=alt.X("tunnel_label:N", title="tunnel (implementation)",
                                      axis=alt.Axis(labelLimit=400)), xOffset=alt.XOffset("filter:N"))
    bars = base.mark_bar(strokeWidth=2).encode(
        y=alt.Y("median:Q", title="median round-trip time (ms)"),
        color=technology_color("filter", cells, "packet filter"),
        fillOpacity=alt.condition(UNCONVERGED_TEST, alt.value(0.25), alt.value(1.0)),
        stroke=unconverged_colour(default="transparent"),
        tooltip=[alt.Tooltip("setup:N", title="setup"), alt.Tooltip("workload:N", title="workload"),
                 alt.Tooltip("filter:N", title="packet filter"), *cell_tooltips("RTT (ms)")])
    interval = base.mark_rule(color="black").encode(y="median_ci_low:Q", y2="median_ci_high:Q")
    warning = unconverged_glyph(base.transform_calculate(cell_top=CELL_TOP)).encode(y="cell_top:Q")
    layers = alt.layer(bars, interval, warning, data=inline(cells))
    return _faceted(layers, cells, "Latency per tunnel", "echo replies", "pale bar outlined in red / ⚠",
                    column=alt.Column("workload:N", title="workload (payload)"))


def multi_host_setup_time(deployment_frame: pd.DataFrame) -> alt.TopLevelMixin:
    """Seconds from starting each tunnel until the first packet passed, one point per deploy."""
    facts = tunnel_facts(deployment_frame)
    if facts.empty:
        raise no_rows("multi_host_setup_time", "any workload on multi-host setups")
    data = _labelled(facts, facts)
    return alt.Chart(inline(data[["tunnel_label", "setup", "setup_s", "cipher", "path_mtu"]])).mark_tick(
        thickness=2, size=20).encode(
        y=alt.Y("tunnel_label:N", title="tunnel (implementation)", axis=alt.Axis(labelLimit=400)),
        x=alt.X("setup_s:Q", title="setup time: seconds until the first packet passes"),
        tooltip=["setup:N", "setup_s:Q", "cipher:N", "path_mtu:Q"],
    ).properties(title=alt.TitleParams("Setup time per tunnel", anchor="start",
                                       subtitle=f"n = {len(data):,} deploys"))


def multi_host_ditg_throughput(ditg_frame: pd.DataFrame, deployment_frame: pd.DataFrame,
                               summary_frame: pd.DataFrame) -> alt.TopLevelMixin:
    """The paper's Figs. 8 (bursty, tcp100) and 9 (quake3, video): D-ITG throughput per container
    pair (:func:`ditg.per_pair`) of each multi-host setup, one column per workload: every pair's
    value in each repetition as a faint point, and per setup the median over the repetitions (of
    each repetition's median pair) with its 95 % CI; x: tunnel (implementation), offset: filter."""
    figure = "multi_host_ditg_throughput"
    facts = tunnel_facts(deployment_frame)
    require(ditg_frame, ["scenario", "tunnel"], figure)
    multi = ditg_frame[ditg_frame["scenario"] == "multi"]
    if multi.empty:
        raise no_rows(figure, "'bursty', 'tcp100', 'quake3' or 'video' on multi-host setups")
    pairs = per_pair(multi)
    pairs = pairs[pairs["throughput_kbps"].notna()].merge(multi[["setup", "tunnel"]].drop_duplicates("setup"), on="setup")
    if pairs.empty:
        raise no_rows(figure, "a D-ITG workload whose pairs received packets on multi-host setups")
    # the CI belongs to what is drawn (pairs), the convergence to the cell (decided on its delay)
    statistics = drawn_cells(pairs, "throughput_kbps", CELL, summary_frame, figure)
    identity = pairs[["setup", "workload", "tunnel", "filter", "containers"]].drop_duplicates()
    cells = _labelled(identity, facts).merge(statistics, on=CELL)
    values = _labelled(pairs[["setup", "workload", "tunnel", "filter", "containers", "rep", "pair", "flows",
                              "throughput_kbps"]], facts).merge(cells[[*CELL, "convergence"]], on=CELL)
    # one dataset for both layers (a facet has one), told apart by `row`
    data = pd.concat([values.assign(row="pair"), cells.assign(row="cell")], ignore_index=True)
    x = alt.X("tunnel_label:N", title="tunnel (implementation)", axis=alt.Axis(labelLimit=300, labelAngle=-30))
    offset = alt.XOffset("filter:N", title="packet filter")
    color = technology_color("tunnel_label", cells, "tunnel (implementation)", technology_field="tunnel")
    y_title = "throughput per pair (kbit/s)"
    pair_points = alt.Chart().transform_filter("datum.row === 'pair'").mark_circle(size=14, opacity=0.35).encode(
        x=x, xOffset=offset, color=color, y=alt.Y("throughput_kbps:Q", title=y_title),
        tooltip=[alt.Tooltip("tunnel_label:N", title="tunnel (implementation)"), alt.Tooltip("setup:N", title="setup"),
                 alt.Tooltip("filter:N", title="packet filter"), alt.Tooltip("rep:Q", title="repetition"),
                 alt.Tooltip("pair:N", title="pair"), alt.Tooltip("flows:Q", title="flows"),
                 alt.Tooltip("throughput_kbps:Q", title=y_title, format=",.1f")])
    # the filter's shape tells the points of a tunnel apart (their offset alone has no legend)
    base = alt.Chart().transform_filter("datum.row === 'cell'").encode(
        x=x, xOffset=offset, color=color, shape=alt.Shape("filter:N", title="packet filter"))
    tooltip = [alt.Tooltip("setup:N", title="setup"), alt.Tooltip("workload:N", title="workload"),
               alt.Tooltip("filter:N", title="packet filter"),
               *cell_tooltips("throughput per pair (kbit/s)", ",.1f")]
    y = alt.Y("median:Q", title=y_title)
    width = max(240, 36 * cells["tunnel_label"].nunique() * max(1, cells["filter"].nunique()) // 2)
    layers = alt.layer(pair_points, *cell_point_layers(base, y, tooltip), data=inline(data)).properties(width=width)
    chart = _faceted(layers, cells, "D-ITG throughput per pair and tunnel", "per-pair values",
                     "hollow point / ⚠ (convergence decided on the cell's delay)",
                     column=alt.Column("workload:N", title="workload"))
    # the workloads' rates differ by orders of magnitude (quake3 vs video)
    return chart.resolve_scale(y="independent") if isinstance(chart, alt.FacetChart) else chart


register(FigureSpec(
    name="multi_host_throughput", table="throughput", extra_tables=("deployment", "summary"), scenarios=("multi",),
    builder=multi_host_throughput,
    caption="Median throughput per container pair of each multi-host setup by payload size, with the 95 % CI "
            "of the median; the legend names the tunnel's implementation that ran (kernel or userspace), and "
            "hollow points marked '⚠' did not converge."))
register(FigureSpec(
    name="multi_host_latency", table="latency", extra_tables=("deployment", "summary"), scenarios=("multi",),
    builder=multi_host_latency,
    caption="Median round-trip time between containers on different hosts for each tunnel or VPN and filter, "
            "with the 95 % CI of the median; pale bars outlined in red and marked '⚠' did not converge."))
register(FigureSpec(
    name="multi_host_setup_time", table="deployment", scenarios=("multi",),
    builder=multi_host_setup_time,
    caption="Setup time of each tunnel or VPN: seconds from starting it until the first packet passed, "
            "one mark per fresh deploy."))
register(FigureSpec(
    name="multi_host_ditg_throughput", table="ditg", extra_tables=("deployment", "summary"), scenarios=("multi",),
    builder=multi_host_ditg_throughput,
    caption="D-ITG throughput per container pair of each multi-host setup per tunnel or VPN and filter, one "
            "column per D-ITG workload (the paper's Figures 8 and 9): faint points are pairs in a repetition, the "
            "point and error bar the median over the repetitions and its 95 % CI, hollow and marked '⚠' where "
            "the repetitions did not converge."))
