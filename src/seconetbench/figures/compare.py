"""Figures of `seconetbench compare` (seconetbench.compare): the ratio candidate ÷ baseline of
every compared cell with its bootstrap CI, coloured by verdict, and an HTML summary around it.

Not a registered figure: it is drawn from a comparison report, not from one sweep's tables.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import altair as alt

from seconetbench.figures import save_chart
from seconetbench.figures._common import inline, labelled

# One colour per verdict, the same in the figure and the HTML tables.
VERDICT_COLOURS = {"regression": "#d62728", "improvement": "#2ca02c", "inconclusive": "#ff7f0e",
                   "unchanged": "#7f7f7f", "no_ci": "#bcbd22"}


def ratio_figure(report: dict[str, Any]) -> alt.TopLevelMixin:
    """Per compared cell a point at the ratio candidate ÷ baseline and a rule over its 95 %
    bootstrap CI, coloured by verdict; one panel per workload and metric (its own x scale and
    the metric's threshold band), one y row per setup (implementation); the shape tells
    candidates apart."""
    from seconetbench.compare import cells_frame

    cells = cells_frame(report)
    if cells.empty:
        raise ValueError("compare: no cell was measured by both the baseline and a candidate; nothing to draw")
    data = labelled(cells).assign(
        band_low=1 - cells["threshold_pct"] / 100, band_high=1 + cells["threshold_pct"] / 100,
        worse=cells["worse_when"].map({"higher": "higher is worse", "lower": "lower is worse"}))
    data["metric_label"] = data["metric"] + " (" + data["worse"] + ")"
    data["panel"] = data["workload"] + ": " + data["metric_label"]
    columns = ["candidate", "setup", "setup_label", "workload", "metric_label", "panel", "n_baseline", "n_candidate",
               "baseline_median", "candidate_median", "ratio", "ratio_ci_low", "ratio_ci_high", "verdict",
               "threshold_pct", "band_low", "band_high"]
    y = alt.Y("setup_label:N", title="setup (implementation)", axis=alt.Axis(labelLimit=400))
    colour = alt.Color("verdict:N", title="verdict", scale=alt.Scale(domain=list(VERDICT_COLOURS),
                                                                     range=list(VERDICT_COLOURS.values())))
    band = alt.Chart().mark_rect(opacity=0.12, color="gray").encode(x="min(band_low):Q", x2="max(band_high):Q")
    one = alt.Chart().mark_rule(strokeDash=[4, 4], color="gray").encode(x=alt.datum(1.0))
    interval = alt.Chart().mark_rule(strokeWidth=2).encode(x=alt.X("ratio_ci_low:Q"), x2="ratio_ci_high:Q", y=y,
                                                           color=colour)
    point = alt.Chart().mark_point(size=50, filled=True).encode(
        x=alt.X("ratio:Q", title="candidate ÷ baseline (median of the repetitions)", scale=alt.Scale(zero=False)),
        y=y, color=colour, shape=alt.Shape("candidate:N", title="candidate"),
        tooltip=[alt.Tooltip("setup_label:N", title="setup (implementation)"), "workload:N",
                 alt.Tooltip("metric_label:N", title="metric"), "candidate:N",
                 alt.Tooltip("baseline_median:Q", title="baseline median", format=",.4g"),
                 alt.Tooltip("candidate_median:Q", title="candidate median", format=",.4g"),
                 alt.Tooltip("ratio:Q", title="ratio", format=".3f"),
                 alt.Tooltip("ratio_ci_low:Q", title="95 % bootstrap CI, low", format=".3f"),
                 alt.Tooltip("ratio_ci_high:Q", title="95 % bootstrap CI, high", format=".3f"),
                 alt.Tooltip("n_baseline:Q", title="n (baseline repetitions)"),
                 alt.Tooltip("n_candidate:Q", title="n (candidate repetitions)"),
                 alt.Tooltip("threshold_pct:Q", title="threshold (%)"), "verdict:N"])
    chart = alt.layer(band, one, interval, point, data=inline(data[columns])).properties(width=220)
    # one panel per metric and workload that was compared (a grid would leave latency x
    # throughput panels empty), wrapped
    chart = chart.facet(facet=alt.Facet("panel:N", title=None, sort=sorted(data["panel"].unique())), columns=3)
    n = len(data)
    return chart.resolve_scale(x="independent", y="independent").properties(title=alt.TitleParams(
        f"{', '.join(report['candidates'])} against {report['baseline']}", anchor="start", subtitle=[
            (f"n = {n:,} cell × metric comparisons; point: ratio of the medians of the per-repetition values; "
             "rule: its 95 % bootstrap CI (both runs' repetitions resampled)"),
            "grey band: ± the metric's threshold; regression = CI entirely beyond it on the metric's bad side"]))


def _table(rows: list[list[Any]], header: list[str]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def summary_html(report: dict[str, Any]) -> str:
    """The summary's own part (environment diff, counts, regressions and improvements) as HTML."""
    from seconetbench.compare import cells_frame

    parts = [f"<h1>Comparison with {html.escape(report['baseline'])}</h1>"]
    for env in report["environment"]:
        parts.append(f"<h2>Environment: {html.escape(env['candidate'])}</h2>")
        rows = [[d["fact"], ", ".join(d["setups"] or []) or "all", ", ".join(d["baseline"] or ["(not recorded)"]),
                 ", ".join(d["candidate"] or ["(not recorded)"])] for d in env["differences"]]
        parts.append(_table(rows, ["fact", "setups", "baseline", "candidate"]) if rows
                     else "<p>Nothing recorded differs.</p>")
    counts = ", ".join(f'<span style="color:{VERDICT_COLOURS[v]}">{n} {v}</span>'
                       for v, n in report["counts"].items() if n)
    parts.append(f"<h2>Verdicts</h2><p>{counts or 'no compared cell'}; {len(report['unmatched'])} cells in one run "
                 "only.</p>")
    cells = cells_frame(report)
    flagged = cells[cells["verdict"].isin(["regression", "improvement"])].sort_values(["verdict", "metric", "setup"])
    if not flagged.empty:
        rows = [[r.verdict, r.candidate, f"{r.setup} ({r.implementation})", r.workload, r.metric, f"{r.ratio:.3f}",
                 f"{r.ratio_ci_low:.3f}–{r.ratio_ci_high:.3f}", f"{r.n_baseline}/{r.n_candidate}"]
                for r in flagged.itertuples(index=False)]
        parts.append(_table(rows, ["verdict", "candidate", "setup (implementation)", "workload", "metric", "ratio",
                                   "95 % CI", "n baseline/candidate"]))
    method = report["method"]
    parts.append(f"<p>{html.escape(method['statistic'])}; {html.escape(method['ci'])}, B = {method['resamples']}, "
                 f"seed {method['seed']}; no CI below {method['min_repetitions']} repetitions on a side "
                 "(docs/statistics.md, “Comparing runs”).</p>")
    style = ("<style>body{font-family:sans-serif} table{border-collapse:collapse} "
             "td,th{border:1px solid #ccc;padding:2px 6px;text-align:left}</style>")
    return style + "\n".join(parts)


def write_report(report: dict[str, Any], out_dir: str | Path) -> list[Path]:
    """ratio.html and ratio.svg (the figure), summary.html (the summary with the figure
    embedded, self-contained); without a compared cell, summary.html alone."""
    from seconetbench.fsutil import atomic_path

    out_dir = Path(out_dir)
    summary = out_dir / "summary.html"
    if not report["cells"]:
        with atomic_path(summary) as tmp:
            Path(tmp).write_text(f"<!DOCTYPE html><html><body>{summary_html(report)}</body></html>", encoding="utf-8")
        return [summary]
    chart = ratio_figure(report)
    written = save_chart(chart, out_dir / "ratio")
    page = written[0].read_text(encoding="utf-8")
    # the figure's own page (vega inlined, no network) with the summary above the chart
    page = page.replace("<body>", f"<body>\n{summary_html(report)}\n", 1)
    with atomic_path(summary) as tmp:
        Path(tmp).write_text(page, encoding="utf-8")
    return [*written, summary]

