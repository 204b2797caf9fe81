"""Repeat a setup x workload cell until its result converges.

The paper ran "until the result values converged". Here a *cell* (setup x workload) is measured
``repetitions.min`` times first. Then, in rounds, each cell whose 95 % CI of the median is still
wider than ``ci_halfwidth_pct`` gets more repetitions, up to ``repetitions.max``. A cell that
reaches max without converging is reported as not converged.

The unit is one value per repetition: the repetitions are the independent samples, while the
probes or intervals within one repetition are not. For latency that value is the repetition's
median RTT; for throughput it is its mean per-pair throughput; for D-ITG workloads its median
one-way delay over the reporting intervals (:data:`REPETITION_METRICS`; the summary table uses
the same values). The CI is the order-statistic CI of the median (:func:`stats.median_ci`), which
needs at least :data:`MIN_REPETITIONS` values for 95 % coverage: the config refuses a smaller
``repetitions.min`` and a cell never converges on fewer values, nor on a CI of width 0 (ties).

The workflow (a Snakemake checkpoint per round, workflow/rules/convergence.smk) keeps "every
repetition is a target file"; this module only decides.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from seconetbench.config import MIN_ADAPTIVE_REPETITIONS
from seconetbench.errors import UnknownNameError

if TYPE_CHECKING:
    import pandas as pd

# stats (numpy, pandas) is imported in the functions that compute: sweep.expand reads policy()
# when a config is validated or its setups listed (docs/decisions.md).

CELL = ["setup", "workload"]
# Fewest repetitions an adaptive cell may decide from: the order-statistic 95 % CI of the
# median exists from 6 values on ([min, max] covers with 96.9 %; 5 values reach only 93.75 %).
# The config refuses a smaller repetitions.min.
MIN_REPETITIONS = MIN_ADAPTIVE_REPETITIONS


def _probes(frame: pd.DataFrame) -> pd.DataFrame:
    # every probe: lost ones have rtt_ms null and count as missing samples
    return frame


def _pair_throughputs(frame: pd.DataFrame) -> pd.DataFrame:
    # one number per pair and repetition: the stream's mean rate over its whole duration
    from seconetbench import stats

    return stats.per_pair_throughput(frame)


def _delay_intervals(frame: pd.DataFrame) -> pd.DataFrame:
    # One-way delay of every interval that received packets: robust despite the ~1 s delay D-ITG
    # stamps on the last packet of each burst (docs/workloads.md); interval 0 is the whole flow.
    return frame[(frame["interval"] > 0) & frame["delay_ms"].notna()]


def _policy_latencies(direction: str):
    # policy_update: the latency of the changes of one direction on new flows (a timeout is a
    # missing sample), under a metric named for the direction: allow_latency_ms, deny_latency_ms
    def select(frame: pd.DataFrame) -> pd.DataFrame:
        rows = frame[(frame["direction"] == direction) & (frame["connection"] == "new")
                     & (frame["status"] != "not_enforced")]
        return rows.assign(**{f"{direction}_latency_ms": rows["latency_ms"]})
    return select


# Per table kind: its samples, the metric column (which names the unit) and how a repetition's
# samples make its one value. Used by the stopping rule and by the summary table alike.
REPETITION_METRICS = {
    "latency": (_probes, "rtt_ms", "median"),
    "throughput": (_pair_throughputs, "throughput_mbps", "mean"),
    "ditg": (_delay_intervals, "delay_ms", "median"),
    # a repetition's median first-packet RTT (lost first packets are missing samples)
    "first_packet": (_probes, "first_ms", "median"),
    # a repetition's median time until an allow shows on new flows (policy_update)
    "policy_update": (_policy_latencies("allow"), "allow_latency_ms", "median"),
}
# Further metrics the summary table reports for a kind, the same way, beside the stopping rule's.
CONTRAST_METRICS = {
    "first_packet": [(_probes, "warm_ms", "median")],  # the same flows warm, for contrast
    "policy_update": [(_policy_latencies("deny"), "deny_latency_ms", "median")],  # and until a deny does
}


def summary_metrics(kind: str) -> list[tuple]:
    """What the summary table reports for a table of *kind*: (samples, metric column,
    per-repetition aggregate) of the stopping rule's metric, then of any contrast metrics."""
    return [REPETITION_METRICS[kind], *CONTRAST_METRICS.get(kind, [])]


def policy(config: dict[str, Any]) -> dict[str, Any]:
    """The repetition policy as a mapping, whether the config gave a number or a mapping."""
    reps = config["repetitions"]
    if isinstance(reps, int):
        return {"min": reps, "max": reps, "ci_halfwidth_pct": None, "budget_h": None}
    return {"min": reps["min"], "max": reps["max"], "ci_halfwidth_pct": reps.get("ci_halfwidth_pct"),
            "budget_h": reps.get("budget_h")}


def adaptive(config: dict[str, Any]) -> bool:
    p = policy(config)
    return p["ci_halfwidth_pct"] is not None and p["max"] > p["min"]


def samples(frame: pd.DataFrame, kind: str) -> tuple[pd.DataFrame, str, str]:
    """The samples of a table of *kind*, the metric column and the per-repetition aggregate."""
    try:
        select, metric, per_rep = REPETITION_METRICS[kind]
    except KeyError:
        raise UnknownNameError("per-repetition metric for table kind", kind, REPETITION_METRICS) from None
    return select(frame), metric, per_rep


def repetition_values(frame: pd.DataFrame, kind: str, by: Sequence[str] = CELL) -> pd.DataFrame:
    """One value per cell (or group *by*) and repetition: columns *by*, rep, value."""
    from seconetbench import stats

    chosen, metric, per_rep = samples(frame, kind)
    return stats.repetition_values(chosen, metric, list(by), per_rep)


def decide(values: pd.DataFrame, cells: list[str], measured: dict[str, int], rules: dict[str, Any],
           spent_s: float = 0.0, cost_s: dict[str, float] | None = None) -> dict[str, Any]:
    """The next round: for every cell ('setup/workload'), how many repetitions it should have.

    *measured* is how many it has now. A cell converges when it has at least ``min`` (and
    :data:`MIN_REPETITIONS`) per-repetition values and the half-width of their order-statistic
    CI of the median is within the target but not 0: a CI of width 0 comes from ties (e.g.
    ping's microsecond resolution), not from precision. Otherwise the cell grows to the number
    the CI's 1/sqrt(n) shrinking predicts, at least +1 and at most max.

    With ``budget_h`` in *rules*, the growth is cut to what fits in the budget after *spent_s*
    seconds, at *cost_s* seconds per repetition of each cell (:func:`within_budget`).
    """
    import pandas as pd

    from seconetbench import stats

    target = rules["ci_halfwidth_pct"]
    needed = max(rules["min"], MIN_REPETITIONS)
    decisions = {}
    grouped = {} if values.empty else {
        f"{s}/{w}": g["value"].to_numpy() for (s, w), g in values.groupby(CELL, observed=True)}
    for cell in cells:
        have = measured[cell]
        sample = grouped.get(cell)
        halfwidth = math.nan
        if sample is not None and (~pd.isna(sample)).sum() >= needed:
            halfwidth = stats.summarize(sample)["ci_halfwidth_pct"]
        if not math.isnan(halfwidth) and 0 < halfwidth <= target:
            status, reps = "converged", have
        elif have >= rules["max"]:
            status, reps = "not_converged", have
        else:
            status = "more"
            unknown = math.isnan(halfwidth) or halfwidth == 0
            wanted = have + 1 if unknown else math.ceil(have * (halfwidth / target) ** 2)
            reps = min(rules["max"], max(have + 1, wanted))
        decisions[cell] = {"reps": reps, "measured": have, "ci_halfwidth_pct": halfwidth, "status": status}
    if rules.get("budget_h"):
        within_budget(decisions, rules["budget_h"] * 3600 - spent_s, cost_s or {})
    return {"cells": decisions, "done": all(d["status"] != "more" for d in decisions.values())}


def within_budget(decisions: dict[str, dict[str, Any]], remaining_s: float, cost_s: dict[str, float]) -> None:
    """Cut the cells' growth (in place) to what fits in *remaining_s*: the cells whose CI is widest
    (unknown first) get their repetitions first; a cell that gets none is not_converged with
    budget_spent. Costs are the plan's seconds per repetition of a cell (seconetbench.plan)."""
    def need(cell: str) -> float:
        halfwidth = decisions[cell]["ci_halfwidth_pct"]
        return math.inf if math.isnan(halfwidth) or halfwidth == 0 else halfwidth

    for cell in sorted((c for c, d in decisions.items() if d["status"] == "more"), key=lambda c: (-need(c), c)):
        decision, cost = decisions[cell], cost_s.get(cell, 0.0)
        wanted = decision["reps"] - decision["measured"]
        granted = wanted if cost <= 0 else max(0, min(wanted, math.floor(remaining_s / cost)))
        remaining_s -= granted * cost
        decision["reps"] = decision["measured"] + granted
        if granted == 0:
            decision.update(status="not_converged", budget_spent=True)
