"""Repeat a setup x workload cell until its result converges.

The paper ran "until the result values converged". Here a *cell* (setup x workload) is measured
``repetitions.min`` times first. Then, in rounds, each cell whose 95 % CI of the median is still
wider than ``ci_halfwidth_pct`` gets more repetitions, up to ``repetitions.max``. A cell that
reaches max without converging is reported as not converged.

The unit is one value per repetition: the repetitions are the independent samples, while the
probes or intervals within one repetition are not. For latency that value is the repetition's
median RTT; for throughput it is its mean per-pair throughput; for D-ITG workloads its median
one-way delay over the reporting intervals.

The workflow (a Snakemake checkpoint per round, workflow/rules/convergence.smk) keeps "every
repetition is a target file"; this module only decides.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from seconetbench import stats

CELL = ["setup", "workload"]


def policy(config: dict[str, Any]) -> dict[str, Any]:
    """The repetition policy as a mapping, whether the config gave a number or a mapping."""
    reps = config["repetitions"]
    if isinstance(reps, int):
        return {"min": reps, "max": reps, "ci_halfwidth_pct": None}
    return {"min": reps["min"], "max": reps["max"], "ci_halfwidth_pct": reps.get("ci_halfwidth_pct")}


def adaptive(config: dict[str, Any]) -> bool:
    p = policy(config)
    return p["ci_halfwidth_pct"] is not None and p["max"] > p["min"]


def repetition_values(frame: pd.DataFrame, kind: str) -> pd.DataFrame:
    """One value per cell and repetition: columns setup, workload, rep, value."""
    if kind == "latency":
        values = frame[frame["received"]].groupby([*CELL, "rep"], observed=True)["rtt_ms"].median()
    elif kind == "throughput":
        pairs = stats.per_pair_throughput(frame)
        values = pairs.groupby([*CELL, "rep"], observed=True)["throughput_mbps"].mean()
    elif kind == "ditg":
        # interval rows only (interval 0 is the whole-flow row): the median one-way delay
        values = frame[frame["interval"] > 0].groupby([*CELL, "rep"], observed=True)["delay_ms"].median()
    else:
        raise ValueError(f"no convergence metric for table kind '{kind}'")
    return values.rename("value").reset_index()


def decide(values: pd.DataFrame, cells: list[str], measured: dict[str, int], rules: dict[str, Any]) -> dict[str, Any]:
    """The next round: for every cell ('setup/workload'), how many repetitions it should have.

    *measured* is how many it has now. A cell converges when the CI half-width is within the
    target. Otherwise it grows to the number the CI's 1/sqrt(n) shrinking predicts, at least +1
    and at most max.
    """
    target = rules["ci_halfwidth_pct"]
    decisions = {}
    grouped = {} if values.empty else {
        f"{s}/{w}": g["value"].to_numpy() for (s, w), g in values.groupby(CELL, observed=True)}
    for cell in cells:
        have = measured[cell]
        sample = grouped.get(cell)
        halfwidth = math.nan
        if sample is not None and len(sample) >= 2:
            halfwidth = stats.summarize(sample, n_boot=1000)["ci_halfwidth_pct"]
        if not math.isnan(halfwidth) and halfwidth <= target:
            status, reps = "converged", have
        elif have >= rules["max"]:
            status, reps = "not_converged", have
        else:
            status = "more"
            wanted = have + 1 if math.isnan(halfwidth) else math.ceil(have * (halfwidth / target) ** 2)
            reps = min(rules["max"], max(have + 1, wanted))
        decisions[cell] = {"reps": reps, "measured": have, "ci_halfwidth_pct": halfwidth, "status": status}
    return {"cells": decisions, "done": all(d["status"] != "more" for d in decisions.values())}
