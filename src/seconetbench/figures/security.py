"""The security matrix: per setup, what the isolation, confidentiality and spoofing checks found,
next to the setup's median latency and throughput (what the protection costs)."""

from __future__ import annotations

import altair as alt
import pandas as pd

from seconetbench import stats
from seconetbench.figures import FigureSpec, register
from seconetbench.figures._common import inline, labelled, no_rows, panel_key, plural, require

CHECKS = ["isolation", "confidentiality", "spoofing"]
# The worst verdict of a cell decides its colour (first in this list wins).
SEVERITY = ["violation", "break", "visible", "expected", "inconclusive", "ok", "not_applicable"]
COLOURS = ["#d62728", "#ff7f0e", "#fdd0a2", "#c6dbef", "#9e9ac8", "#2ca02c", "#e0e0e0"]


def _cell(rows: pd.DataFrame) -> pd.Series:
    """The worst verdict of one setup x check and a short text saying how many probes had it."""
    counts = rows["verdict"].value_counts()
    worst = next(v for v in SEVERITY if v in counts)
    if worst == "not_applicable":
        text = "n/a"
    elif worst in ("ok",):
        text = f"ok ({len(rows)})"
    else:
        text = f"{counts[worst]}/{len(rows)} {worst}"
    return pd.Series({"verdict": worst, "text": text, "probes": len(rows),
                      "violations": int(counts.get("violation", 0)), "breaks": int(counts.get("break", 0))})


def security_cells(security_frame: pd.DataFrame) -> pd.DataFrame:
    """One row per setup x check: the worst verdict, its count as text, violations and breaks,
    and the setup's label with its implementation (``setup_label``)."""
    require(security_frame, ["setup", "implementation", "check", "verdict"], "security_matrix")
    cells = security_frame.groupby(["setup", "implementation", "check"], observed=True)[["verdict"]].apply(_cell)
    return labelled(cells.reset_index())


def setup_costs(latency_frame: pd.DataFrame, throughput_frame: pd.DataFrame) -> pd.DataFrame:
    """Per setup: median RTT over received probes, and median per-pair throughput at the largest
    payload measured (long form: setup, setup_label, measure, value, n)."""
    frames = []
    setup = ["setup", "implementation"]
    received = latency_frame[latency_frame["received"]] if "received" in latency_frame else latency_frame
    if not received.empty:
        rtt = received.groupby(setup, observed=True)["rtt_ms"].agg(["median", "size"]).reset_index()
        frames.append(rtt.assign(measure="median RTT (ms)"))
    pairs = stats.per_pair_throughput(throughput_frame)
    if not pairs.empty:
        largest = pairs[pairs["payload_bytes"] == pairs["payload_bytes"].max()]
        rate = largest.groupby(setup, observed=True)["throughput_mbps"].agg(["median", "size"]).reset_index()
        frames.append(rate.assign(measure=f"median throughput per pair (Mbit/s, {int(largest['payload_bytes'].iloc[0])} B)"))
    if not frames:
        return pd.DataFrame(columns=["setup", "setup_label", "value", "n", "measure"])
    costs = pd.concat(frames, ignore_index=True).rename(columns={"median": "value", "size": "n"})
    return labelled(costs).drop(columns="implementation")


def _matrix_row(cells: pd.DataFrame, costs: pd.DataFrame, title: str | None) -> alt.HConcatChart:
    """The matrix of *cells* and the cost bars of the same setups side by side."""
    setups = sorted(cells["setup_label"].unique())
    y = alt.Y("setup_label:N", title="setup (implementation)", sort=setups, scale=alt.Scale(domain=setups),
              axis=alt.Axis(labelLimit=400))
    base = alt.Chart(inline(cells)).encode(
        y=y, x=alt.X("check:N", title=None, sort=CHECKS, axis=alt.Axis(orient="top", labelAngle=0)))
    matrix = (base.mark_rect(stroke="white").encode(
        color=alt.Color("verdict:N", title="worst verdict", scale=alt.Scale(domain=SEVERITY, range=COLOURS)),
        tooltip=[alt.Tooltip("setup_label:N", title="setup (implementation)"), "check:N", "verdict:N", "text:N",
                 "probes:Q", "violations:Q", "breaks:Q"])
        + base.mark_text(fontSize=10).encode(text="text:N")).properties(width=330)
    panels = [matrix]
    for measure in sorted(costs["measure"].unique()):
        data = costs[(costs["measure"] == measure) & costs["setup_label"].isin(setups)]
        panels.append(alt.Chart(inline(data)).mark_bar().encode(
            y=alt.Y("setup_label:N", sort=setups, scale=alt.Scale(domain=setups), axis=None),
            x=alt.X("value:Q", title=measure, axis=alt.Axis(orient="top")),
            tooltip=[alt.Tooltip("setup_label:N", title="setup (implementation)"),
                     alt.Tooltip("value:Q", title=measure, format=".3g"), alt.Tooltip("n:Q", title="n")],
        ).properties(width=160))
    row = alt.hconcat(*panels, spacing=6)
    return row.properties(title=alt.TitleParams(title, anchor="start", fontSize=12)) if title else row


def security_matrix(security_frame: pd.DataFrame, latency_frame: pd.DataFrame,
                    throughput_frame: pd.DataFrame) -> alt.TopLevelMixin:
    cells = security_cells(security_frame)
    if cells.empty:
        raise no_rows("security_matrix", "isolation, confidentiality or spoofing")
    costs = setup_costs(latency_frame, throughput_frame)
    # one block per scenario x container count (a full sweep: 15 or 24 setups each), as the
    # other figures' panels
    panel_of = {setup: panel_key(scenario, containers) for setup, scenario, containers in
                security_frame[["setup", "scenario", "containers"]].drop_duplicates("setup").itertuples(index=False)}
    keys = sorted(set(panel_of.values()))
    cells = cells.assign(panel=cells["setup"].map(panel_of))
    rows = [_matrix_row(cells[cells["panel"] == key].drop(columns="panel"), costs,
                        key.split("|", 1)[1] if len(keys) > 1 else None) for key in keys]
    chart = rows[0] if len(rows) == 1 else alt.vconcat(*rows, spacing=18)
    return chart.properties(title=alt.TitleParams(
        "Security matrix and what it costs", anchor="start",
        subtitle=[f"n = {plural(len(security_frame), 'probe')} over {plural(cells['setup'].nunique(), 'setup')}; "
                  "cell = worst verdict of the check (violation > break > visible > expected > inconclusive > ok)",
                  "bars: median RTT over received pings and median per-pair throughput, n per bar in the tooltip"]))

register(FigureSpec(
    name="security_matrix",
    table="security",
    extra_tables=("latency", "throughput"),
    builder=security_matrix,
    caption="Per setup, the worst verdict of the isolation, confidentiality and spoofing checks beside its median latency and throughput.",
))
