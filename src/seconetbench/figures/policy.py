"""Policy enforcement latency (table policy_update, docs/workloads.md): how long a whitelist
change takes to show in the data plane, per filter and against the rule-set size, and what a
deny does to flows that are already established."""

from __future__ import annotations

import altair as alt
import pandas as pd

from seconetbench.figures import FigureSpec, register
from seconetbench.figures._common import (
    CELL,
    CELL_CONVERGENCE,
    CELL_STATISTICS,
    cell_tooltips,
    drawn_cells,
    flagged_axis,
    flagged_label,
    inline,
    labelled,
    median_tick,
    no_rows,
    plural,
    reps_text,
    require,
    technology_color,
    unconverged_note,
)

COLUMNS = ["setup", "implementation", "solution", "filter", "containers", "workload", "rep", "pair", "direction", "connection",
           "protocol", "change", "extra_rules", "latency_ms", "cut", "control_ms", "resolution_ms", "status"]
DIRECTIONS = ["allow", "deny"]
DIRECTION_TITLES = {"allow": "time to allow (first probe that passes)",
                    "deny": "time to deny (first probe blocked for good)"}


def measured(policy_frame: pd.DataFrame, figure: str) -> pd.DataFrame:
    """The rows of enforced changes (not_enforced setups have nothing to draw), labelled."""
    require(policy_frame, COLUMNS, figure)
    rows = policy_frame.loc[policy_frame["status"] != "not_enforced", COLUMNS]
    if rows.empty:
        raise no_rows(figure, "policy_update (on a setup with a filter)")
    return labelled(rows)


def policy_latency(policy_frame: pd.DataFrame, summary_frame: pd.DataFrame) -> alt.TopLevelMixin:
    """Time to allow and time to deny on new flows, one box per setup (log scale), a column per
    direction; the points are the changes (both protocols and probe directions), the tooltip of
    the median tick gives the box's n, median and 95 % CI over the repetitions."""
    figure = "policy_latency"
    rows = measured(policy_frame, figure)
    new = rows[rows["connection"] == "new"]
    shown = new[new["latency_ms"].notna()]
    if shown.empty:
        raise no_rows(figure, "policy_update with a change that took effect")
    cells = drawn_cells(shown, "latency_ms", [*CELL, "direction"], summary_frame, figure)
    data = shown[["setup", "setup_label", "filter", "workload", "rep", "pair", "direction", "protocol", "change",
                  "latency_ms", "control_ms", "resolution_ms"]].merge(
        cells[[*CELL, "direction", *CELL_STATISTICS, *CELL_CONVERGENCE]], on=[*CELL, "direction"])
    y = alt.Y("label:N", title="setup (implementation)", axis=flagged_axis(labelLimit=400))
    x = alt.X("latency_ms:Q", title="ms from issuing the change (log scale)", scale=alt.Scale(type="log"))
    color = technology_color("filter", data, "packet filter")
    box = alt.Chart().mark_boxplot(size=14, opacity=0.6, extent="min-max").encode(x=x, y=y, color=color)
    points = alt.Chart().mark_circle(size=18, opacity=0.7).encode(x=x, y=y, color=color, tooltip=[
        alt.Tooltip("setup_label:N", title="setup (implementation)"), alt.Tooltip("pair:N", title="probes (from-to)"),
        alt.Tooltip("protocol:N"), alt.Tooltip("change:Q"), alt.Tooltip("rep:Q", title="repetition"),
        alt.Tooltip("latency_ms:Q", title="latency (ms)", format=".3f"),
        alt.Tooltip("resolution_ms:Q", title="resolution (ms)", format=".3f"),
        alt.Tooltip("control_ms:Q", title="filter command (ms)", format=".3f")])
    per_cell = alt.Chart().transform_aggregate(
        count="count()", groupby=["setup_label", "label", *CELL_STATISTICS, *CELL_CONVERGENCE])
    median = median_tick(per_cell, 14, x=alt.X("median:Q"), y=y, tooltip=[
        alt.Tooltip("setup_label:N", title="setup (implementation)"), *cell_tooltips("latency (ms)")])
    layers = alt.layer(box, points, median, data=inline(data)).transform_calculate(
        label=flagged_label("datum.setup_label")).properties(width=320)
    timeouts = int(new["latency_ms"].isna().sum())
    return layers.facet(column=alt.Column("direction:N", sort=DIRECTIONS, title=None, header=alt.Header(
        labelExpr=f"{DIRECTION_TITLES}[datum.value]".replace("'", '"')))).properties(title=alt.TitleParams(
        "Policy enforcement latency, new flows", anchor="start", subtitle=[
            f"n = {plural(len(shown), 'change × probe direction × protocol')} over "
            f"{plural(shown['setup'].nunique(), 'setup')}, {reps_text(shown)}; {timeouts:,} without effect within "
            "the timeout are not drawn",
            "box: min, quartiles, max; a point per probe flow and change; median tick: n, median and its 95 % CI "
            "over the repetitions of the drawn values",
            unconverged_note("red median tick and a red ⚠ after the setup (convergence decided on the cell's "
                             "allow latency)")]))


def policy_rule_scaling(policy_frame: pd.DataFrame) -> alt.TopLevelMixin:
    """Median time to allow and to deny on new flows over the rule-set size, one line per filter
    and solution, with the quartiles as a band (log scale)."""
    figure = "policy_rule_scaling"
    rows = measured(policy_frame, figure)
    new = rows[(rows["connection"] == "new") & rows["latency_ms"].notna()]
    if new.empty:
        raise no_rows(figure, "policy_update with a change that took effect")
    group = ["setup", "solution_label", "filter", "containers", "extra_rules", "direction"]
    new = labelled(new, "solution")
    stats = new.groupby(group, observed=True)["latency_ms"].agg(
        median="median", q1=lambda v: v.quantile(0.25), q3=lambda v: v.quantile(0.75), n="size").reset_index()
    base = alt.Chart().encode(x=alt.X("extra_rules:O", title="extra rules before the whitelist"),
                              color=technology_color("filter", stats, "packet filter"), detail="solution_label:N")
    y = alt.Y("median:Q", title="median ms from issuing the change (log scale)", scale=alt.Scale(type="log"))
    tooltip = [alt.Tooltip("setup:N"), alt.Tooltip("extra_rules:Q", title="extra rules"), alt.Tooltip("n:Q"),
               alt.Tooltip("median:Q", format=".3f"), alt.Tooltip("q1:Q", title="25th percentile", format=".3f"),
               alt.Tooltip("q3:Q", title="75th percentile", format=".3f")]
    chart = alt.layer(base.mark_line(point=True).encode(y=y, strokeDash=alt.StrokeDash(
                          "solution_label:N", title="solution (implementation)", legend=alt.Legend(labelLimit=400)),
                          tooltip=tooltip),
                      base.mark_rule().encode(y="q1:Q", y2="q3:Q"), data=inline(stats)).properties(width=260)
    return chart.facet(column=alt.Column("direction:N", sort=DIRECTIONS, title=None)).properties(
        title=alt.TitleParams("Policy enforcement latency by rule-set size", anchor="start", subtitle=[
            f"n = {plural(len(new), 'change × probe direction × protocol')} (new flows) in "
            f"{plural(stats['setup'].nunique(), 'setup')}; bar: quartiles; config/scaling.yaml sweeps the rule count"]))


def established_cells(policy_frame: pd.DataFrame) -> pd.DataFrame:
    """Per setup x protocol x direction, the established flows' behaviour: deny, how many were
    cut and their median time to the cut; allow, the median time until the flow resumed."""
    rows = measured(policy_frame, "policy_established")
    established = rows[rows["connection"] == "established"]
    if established.empty:
        raise no_rows("policy_established", "policy_update with changes on established flows")
    out = []
    for (setup, label, filt, protocol, direction), group in established.groupby(
            ["setup", "setup_label", "filter", "protocol", "direction"], observed=True):
        shown = group["latency_ms"].dropna()
        median = float(shown.median()) if len(shown) else None
        if direction == "deny":
            cut = int(group["cut"].fillna(False).astype(bool).sum())
            share = cut / len(group)
            text = f"cut {cut}/{len(group)}" + (f", {median:.3g} ms" if median is not None else "")
        else:
            share = len(shown) / len(group)
            text = f"resumed {len(shown)}/{len(group)}" + (f", {median:.3g} ms" if median is not None else "")
        out.append({"setup": setup, "setup_label": label, "filter": filt, "column": f"{protocol} {direction}",
                    "share": share, "text": text, "n": len(group), "median_ms": median})
    return pd.DataFrame(out)


def policy_established(policy_frame: pd.DataFrame) -> alt.TopLevelMixin:
    """A table-like chart: per setup (row) and protocol x direction (column), whether a deny cut
    the established flows and when, and when an allow let them through again."""
    cells = established_cells(policy_frame)
    columns = ["udp deny", "tcp deny", "udp allow", "tcp allow"]
    base = alt.Chart(inline(cells)).encode(
        y=alt.Y("setup_label:N", title="setup (implementation)", axis=alt.Axis(labelLimit=400)),
        x=alt.X("column:N", title=None, sort=columns, axis=alt.Axis(orient="top", labelAngle=0)))
    rect = base.mark_rect(stroke="white").encode(
        color=alt.Color("share:Q", title="share cut (deny) / resumed (allow)", scale=alt.Scale(domain=[0, 1],
                                                                                                scheme="blues")),
        tooltip=[alt.Tooltip("setup_label:N", title="setup (implementation)"), alt.Tooltip("column:N", title="change"),
                 alt.Tooltip("text:N", title="what happened"), alt.Tooltip("n:Q", title="n (flows x changes)"),
                 alt.Tooltip("median_ms:Q", title="median ms from the change", format=".3f")])
    text = base.mark_text(fontSize=10).encode(text="text:N")
    return (rect + text).properties(width=440, title=alt.TitleParams(
        "Established flows under a whitelist change", anchor="start", subtitle=[
            f"n = {int(cells['n'].sum()):,} established flows x changes over {plural(cells['setup'].nunique(), 'setup')}; "
            "a TCP connection and a UDP stream per probe direction, running when the change came",
            "deny: how many the change cut, median ms to the cut; allow: how many resumed, median ms (TCP: when "
            "its resent data arrived)"]))


register(FigureSpec(
    name="policy_latency", table="policy_update", extra_tables=("summary",), builder=policy_latency,
    caption="Time from issuing a whitelist change to its first effect in the data plane, allow and deny, "
            "on new UDP and TCP flows, per setup (log scale), with n, median and its 95 % CI over the "
            "repetitions in the median's tooltip."))
register(FigureSpec(
    name="policy_rule_scaling", table="policy_update", builder=policy_rule_scaling, scenarios=("single",),
    requires=lambda sweep, config: len({s.extra_rules for s in sweep.setups}) > 1,
    caption="Median time to allow and to deny (new flows) over the number of non-matching rules installed "
            "before the whitelist, per filter and solution, with the quartiles."))
register(FigureSpec(
    name="policy_established", table="policy_update", builder=policy_established,
    caption="Per setup, what a whitelist change does to established flows (a TCP connection and a UDP stream): "
            "how many a deny cut and when, and when an allow let them through again."))
