"""Compare results directories: per cell and metric the ratio candidate ÷ baseline with a
bootstrap CI over the repetitions of both, regressions beyond a threshold, what differs in the
environment, and change points over a series of runs (CSIT's jumpavg).

Only the tables are read (``<dir>/tables/*.parquet``, or a directory holding them directly), so
tables shared without raw files compare. A cell is one setup identity (setup, scenario, solution,
filter, tunnel, implementation, containers) × workload; its metrics and their per-repetition
values are those of the summary table (convergence.REPETITION_METRICS) plus host CPU-seconds per
gigabit. docs/compare.md describes the command, docs/statistics.md ("Comparing runs") the method.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from seconetbench import tables
from seconetbench.errors import InvalidValueError
from seconetbench.stats import WORSE_WHEN

CELL_KEYS = [f.name for f in tables.SETUP_IDENTITY]  # setup … containers, workload
KEYS = [*CELL_KEYS, "metric"]
METRICS = sorted(WORSE_WHEN)

# Percentile bootstrap of median(candidate) ÷ median(baseline): resamples and the seed of every
# cell's generator (mixed with a hash of the cell, so a cell's CI does not depend on which other
# cells are compared). Fewer repetitions than MIN_REPETITIONS on either side give no CI: the
# coverage simulation in docs/statistics.md measured 89 % at 3 and 93 % at 4, ≥ 95 % from 5.
BOOTSTRAP_RESAMPLES = 4000
BOOTSTRAP_SEED = 16
MIN_REPETITIONS = 5
DEFAULT_THRESHOLD_PCT = 5.0
REGRESSION_EXIT = 3  # exit status of `compare` when a regression is found (1: an error, 2: usage)

# Verdicts of a compared cell, in the order the report lists them.
VERDICTS = ["regression", "improvement", "inconclusive", "unchanged", "no_ci"]
# Per-setup facts of the deployment table an environment diff compares (when the table has them).
SETUP_FACTS = ["implementation", "tunnel_implementation", "tunnel_cipher", "min_mtu_bytes", "tunnel_path_mtu_bytes",
               "accelerator"]
ROW_COLUMNS = ["candidate", *KEYS, "worse_when", "threshold_pct", "n_baseline", "n_candidate", "baseline_median",
               "candidate_median", "ratio", "ratio_ci_low", "ratio_ci_high", "verdict"]


# ------------------------------------------------------------------------------ reading runs
@dataclass
class Run:
    """The tables of one results directory, reduced to what a comparison needs."""

    name: str  # as the user named it
    values: pd.DataFrame  # KEYS, rep, value: one value per cell, metric and repetition
    environment: dict[str, list[str]] = field(default_factory=dict)  # meta.environment of its targets
    setup_facts: pd.DataFrame | None = None  # setup + SETUP_FACTS present, one row per setup
    measured_from: float | None = None  # epoch seconds of its first target, when recorded


def tables_dir(path: str | Path, key: str = "run") -> Path:
    """Where the tables of *path* are: ``<path>/tables`` or *path* itself; an error naming *key*
    (the argument or config key) when neither holds a Parquet table."""
    path = Path(path)
    for candidate in (path / "tables", path):
        if candidate.is_dir() and any(candidate.glob("*.parquet")):
            return candidate
    raise InvalidValueError(f"{key} {str(path)!r}: no tables there (neither {path / 'tables'}/*.parquet nor "
                            f"{path}/*.parquet); name a results directory (results_dir of its config) or its tables/")


def repetition_values(frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One value per cell, metric and repetition (columns KEYS, rep, value) from a run's tables
    by kind: the summary's per-repetition metrics, and CPU-seconds per gigabit where the
    throughput table has host_usage samples beside it."""
    from seconetbench import convergence, stats

    parts = []
    for kind in convergence.REPETITION_METRICS:
        frame = frames.get(kind)
        if frame is None or frame.empty:
            continue
        for select, metric, per_rep in convergence.summary_metrics(kind):
            chosen = select(frame)
            if not chosen.empty:
                parts.append(stats.repetition_values(chosen, metric, CELL_KEYS, per_rep).assign(metric=metric))
    throughput, usage = frames.get("throughput"), frames.get("host_usage")
    if throughput is not None and usage is not None and not throughput.empty and not usage.empty:
        from seconetbench.figures.costs import cpu_per_gigabit

        cost = cpu_per_gigabit(throughput, usage)
        if not cost.empty:
            identity = throughput[CELL_KEYS].drop_duplicates(["setup", "workload"])
            cost = cost[["setup", "workload", "rep", "cpu_s_per_gbit"]].merge(identity, on=["setup", "workload"])
            parts.append(cost.rename(columns={"cpu_s_per_gbit": "value"}).assign(metric="cpu_s_per_gbit"))
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in [*KEYS, "rep", "value"]})
    values = pd.concat([p[[*KEYS, "rep", "value"]] for p in parts], ignore_index=True)
    return values.astype({c: str for c in KEYS if c != "containers"}).astype({"containers": "int64", "rep": "int64",
                                                                             "value": "float64"})


def _with_identity(frame: pd.DataFrame, file: Path) -> pd.DataFrame:
    """*frame* with every cell key; tables written before the `implementation` column get
    "unknown" there, as docs/tables.md defines it for targets that did not record it."""
    if "implementation" not in frame.columns and "setup" in frame.columns:
        frame = frame.assign(implementation="unknown")
    absent = [c for c in CELL_KEYS if c not in frame.columns]
    if absent:
        raise InvalidValueError(f"{file}: lacks the identity columns {absent}; is it a table of seconetbench "
                                "(docs/tables.md)?")
    return frame


def load_run(path: str | Path, key: str = "run") -> Run:
    """A run from its tables (every ``*.parquet`` of :func:`tables_dir`); the environment comes
    from the aggregated tables' metadata (pipeline.aggregate), or from the parsed files' meta.json
    when an older results directory's tables lack it."""
    from seconetbench.meta import environment

    directory = tables_dir(path, key)
    frames: dict[str, pd.DataFrame] = {}
    found: dict[str, set[str]] = {}
    measured = []
    for file in sorted(directory.glob("*.parquet")):
        try:
            kind = tables.kind_of(file)
        except KeyError:
            continue  # a Parquet file that is no table of ours
        if kind == "summary":
            continue
        frames[kind] = _with_identity(tables.read(file), file)
        meta = tables.read_table_meta(file)
        for fact, values in meta.get("environment", {}).items():
            found.setdefault(fact, set()).update(values)
        if meta.get("measured_from") is not None:
            measured.append(meta["measured_from"])
    env = {fact: sorted(values) for fact, values in sorted(found.items())}
    parsed = directory.parent / "parsed"
    if not env and parsed.is_dir():  # tables aggregated before they carried the environment
        # a setup's deployment file carries every target's meta.json (a cell's, before parse_setup)
        metas = [m for file in sorted(parsed.rglob("reps*.deployment.parquet"))
                 for m in tables.read_table_meta(file).get("reps", {}).values()]
        env = environment(metas)
        measured += [m["started_at"] for m in metas if "started_at" in m]
    facts = None
    deployment = frames.get("deployment")
    if deployment is not None and not deployment.empty:
        present = [c for c in SETUP_FACTS if c in deployment.columns]
        facts = deployment[["setup", *present]].drop_duplicates("setup").reset_index(drop=True)
    return Run(name=str(path), values=repetition_values(frames), environment=env, setup_facts=facts,
               measured_from=min(measured) if measured else None)


# ------------------------------------------------------------------------------ one comparison
def thresholds_for(threshold_pct: float = DEFAULT_THRESHOLD_PCT, per_metric: dict[str, float] | None = None,
                   names: tuple[str, str] = ("--threshold-pct", "--threshold")) -> dict[str, float]:
    """Threshold in percent of every metric: *per_metric* where given, else *threshold_pct*.
    An error names the option or config key (*names*: the default's, the per-metric one's)."""
    per_metric = per_metric or {}
    unknown = sorted(set(per_metric) - set(METRICS))
    if unknown:
        raise InvalidValueError(f"{names[1]}: unknown metric(s) {unknown}; use one of {METRICS}")
    for name, value in {None: threshold_pct, **per_metric}.items():
        if not 0 < value < 100:
            where = names[0] if name is None else f"{names[1]} {name}"
            raise InvalidValueError(f"{where}: {value!r} is no percentage above 0 and below 100; use e.g. 5")
    return {metric: float(per_metric.get(metric, threshold_pct)) for metric in METRICS}


def _cell_seed(key: tuple) -> list[int]:
    return [BOOTSTRAP_SEED, zlib.crc32("|".join(map(str, key)).encode())]


def ratio_ci(baseline: np.ndarray, candidate: np.ndarray, seed: Any = BOOTSTRAP_SEED,
             resamples: int = BOOTSTRAP_RESAMPLES, ci_level: float = 0.95,
             min_repetitions: int = MIN_REPETITIONS) -> tuple[float, float, float]:
    """median(candidate) ÷ median(baseline) and its percentile-bootstrap CI: each resample draws
    the repetitions of both runs independently with replacement (the runs share no rounds, so
    nothing pairs them). (ratio, nan, nan) with fewer than *min_repetitions* on a side."""
    baseline, candidate = np.asarray(baseline, float), np.asarray(candidate, float)
    baseline, candidate = baseline[~np.isnan(baseline)], candidate[~np.isnan(candidate)]
    if baseline.size == 0 or candidate.size == 0 or np.median(baseline) == 0:
        return (math.nan, math.nan, math.nan)
    ratio = float(np.median(candidate) / np.median(baseline))
    if min(baseline.size, candidate.size) < min_repetitions:
        return (ratio, math.nan, math.nan)
    rng = np.random.default_rng(seed)
    base = np.median(baseline[rng.integers(0, baseline.size, (resamples, baseline.size))], axis=1)
    cand = np.median(candidate[rng.integers(0, candidate.size, (resamples, candidate.size))], axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = cand / base
    tail = (1 - ci_level) / 2 * 100
    low, high = np.nanpercentile(ratios, [tail, 100 - tail])
    return (ratio, float(low), float(high))


def verdict(low: float, high: float, worse_when: str, threshold_pct: float) -> str:
    """regression: the CI lies entirely beyond the threshold on the metric's bad side;
    improvement: entirely beyond it on the good side; unchanged: entirely within ±threshold;
    inconclusive: it crosses a threshold; no_ci: too few repetitions for a CI."""
    if math.isnan(low) or math.isnan(high):
        return "no_ci"
    t = threshold_pct / 100
    above, below = low > 1 + t, high < 1 - t
    if above or below:
        return "regression" if above == (worse_when == "higher") else "improvement"
    return "unchanged" if low >= 1 - t and high <= 1 + t else "inconclusive"


def compare_runs(baseline: Run, candidate: Run, thresholds: dict[str, float]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per cell and metric both runs measured: ROW_COLUMNS; and the cells of one run only
    (KEYS, ``only_in``: baseline or candidate)."""
    grouped = {name: {k: g["value"].to_numpy() for k, g in run.values.groupby(KEYS, sort=True)}
               for name, run in (("baseline", baseline), ("candidate", candidate))}
    rows = []
    for key in sorted(grouped["baseline"].keys() & grouped["candidate"].keys()):
        b, c = grouped["baseline"][key], grouped["candidate"][key]
        metric = key[-1]
        ratio, low, high = ratio_ci(b, c, seed=_cell_seed(key))
        rows.append({"candidate": candidate.name, **dict(zip(KEYS, key)), "worse_when": WORSE_WHEN[metric],
                     "threshold_pct": thresholds[metric], "n_baseline": int((~np.isnan(b)).sum()),
                     "n_candidate": int((~np.isnan(c)).sum()), "baseline_median": float(np.nanmedian(b)),
                     "candidate_median": float(np.nanmedian(c)), "ratio": ratio, "ratio_ci_low": low,
                     "ratio_ci_high": high, "verdict": verdict(low, high, WORSE_WHEN[metric], thresholds[metric])})
    alone = [{**dict(zip(KEYS, key)), "only_in": side}
             for side, other in (("baseline", "candidate"), ("candidate", "baseline"))
             for key in sorted(grouped[side].keys() - grouped[other].keys())]
    return (pd.DataFrame(rows, columns=ROW_COLUMNS), pd.DataFrame(alone, columns=[*KEYS, "only_in"]))


def environment_diff(baseline: Run, candidate: Run) -> list[dict[str, Any]]:
    """What differs between the runs: run-wide facts (kernel, tools, CPU, ...) whose values
    differ, then per-setup facts of the deployment table (implementation, cipher, MTU,
    accelerator) that differ for a setup both measured, grouped by (fact, values) with their
    setups. A fact only one run recorded is listed with ``None`` for the other."""
    diff = []
    for fact in sorted(baseline.environment.keys() | candidate.environment.keys()):
        before, after = baseline.environment.get(fact), candidate.environment.get(fact)
        if before != after:
            diff.append({"fact": fact, "baseline": before, "candidate": after, "setups": None})
    if baseline.setup_facts is not None and candidate.setup_facts is not None:
        joined = baseline.setup_facts.merge(candidate.setup_facts, on="setup", suffixes=("_b", "_c"))
        grouped: dict[tuple, list[str]] = {}
        for fact in SETUP_FACTS:
            if f"{fact}_b" not in joined or f"{fact}_c" not in joined:
                continue
            for setup, before, after in joined[["setup", f"{fact}_b", f"{fact}_c"]].itertuples(index=False):
                before, after = (None if pd.isna(v) else str(v) for v in (before, after))
                if before != after:
                    grouped.setdefault((fact, before, after), []).append(setup)
        diff += [{"fact": fact, "baseline": [before] if before else None, "candidate": [after] if after else None,
                  "setups": sorted(setups)} for (fact, before, after), setups in grouped.items()]
    return diff


def compare(baseline: str | Path, candidates: list[str | Path], thresholds: dict[str, float] | None = None
            ) -> dict[str, Any]:
    """The comparison of every candidate with the baseline, as one JSON-ready report
    (*thresholds*: :func:`thresholds_for`, default 5 % for every metric)."""
    thresholds = thresholds or thresholds_for()
    base = load_run(baseline, "baseline")
    if base.values.empty:
        raise InvalidValueError(f"baseline {str(baseline)!r}: its tables hold no latency, throughput or D-ITG rows")
    cells, alone, environments = [], [], []
    for index, path in enumerate(candidates):
        run = load_run(path, f"candidate {index + 1}")
        rows, only = compare_runs(base, run, thresholds)
        cells.append(rows)
        alone.append(only.assign(candidate=run.name))
        environments.append({"candidate": run.name, "differences": environment_diff(base, run)})
    table = pd.concat(cells, ignore_index=True) if cells else pd.DataFrame(columns=ROW_COLUMNS)
    counts = {v: int((table["verdict"] == v).sum()) for v in VERDICTS}
    return {
        "baseline": base.name, "candidates": [str(c) for c in candidates],
        "method": {"statistic": "median(candidate) / median(baseline) of the per-repetition values",
                   "ci": "95 % percentile bootstrap, both runs' repetitions resampled independently",
                   "resamples": BOOTSTRAP_RESAMPLES, "seed": BOOTSTRAP_SEED, "min_repetitions": MIN_REPETITIONS,
                   "thresholds_pct": thresholds, "worse_when": dict(WORSE_WHEN)},
        "environment": environments,
        "counts": counts,
        "regressions": counts["regression"],
        "cells": _records(table),
        "unmatched": _records(pd.concat(alone, ignore_index=True)) if alone else [],
    }


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    # NaN -> null, numpy scalars -> JSON numbers
    return json.loads(frame.to_json(orient="records", double_precision=10)) if not frame.empty else []


def cells_frame(report: dict[str, Any]) -> pd.DataFrame:
    """The compared cells of a report as a frame (ROW_COLUMNS), e.g. for the figure."""
    return pd.DataFrame(report["cells"], columns=ROW_COLUMNS)


# ------------------------------------------------------------------------------ text report
def _values(values: list[str] | None) -> str:
    return "(not recorded)" if not values else ", ".join(values)


def format_report(report: dict[str, Any], show_all: bool = False) -> str:
    """The compact text form: the environment diff first, then one line per regression and
    improvement (every cell, and the cells of one run only, with *show_all*), then the counts."""
    lines = [f"baseline: {report['baseline']}"]
    for env in report["environment"]:
        lines.append(f"candidate: {env['candidate']}")
        if not env["differences"]:
            lines.append("  environment: nothing recorded differs")
        for d in env["differences"]:
            where = f" [{', '.join(d['setups'][:4])}{' …' if len(d['setups']) > 4 else ''}]" if d["setups"] else ""
            lines.append(f"  {d['fact']}{where}: {_values(d['baseline'])} -> {_values(d['candidate'])}")
    cells = cells_frame(report)
    shown = cells if show_all else cells[cells["verdict"].isin(["regression", "improvement"])]
    if not shown.empty:
        order = {v: i for i, v in enumerate(VERDICTS)}
        shown = shown.assign(_o=shown["verdict"].map(order)).sort_values(["_o", "candidate", "metric", "setup",
                                                                           "workload"])
        lines += ["", (f"{'verdict':12} {'metric':16} {'setup (implementation)':44} {'workload':16} "
                       f"{'ratio':>6} {'95 % CI':>15} {'n':>6}  candidate")]
        for r in shown.itertuples(index=False):
            ci = "" if pd.isna(r.ratio_ci_low) else f"{r.ratio_ci_low:.3f}–{r.ratio_ci_high:.3f}"
            lines.append(f"{r.verdict:12} {r.metric:16} {f'{r.setup} ({r.implementation})':44} {r.workload:16} "
                         f"{r.ratio:6.3f} {ci:>15} {f'{r.n_baseline}/{r.n_candidate}':>6}  {r.candidate}")
    if show_all and report["unmatched"]:
        lines += ["", "in one run only:"]
        lines += [f"  {row['only_in']:9} {row['metric']:16} {row['setup']} ({row['implementation']}) {row['workload']}"
                  f"  [{row['candidate']}]" for row in report["unmatched"]]
    counts = ", ".join(f"{n} {v}" for v, n in report["counts"].items() if n)
    compared = {m: pct for m, pct in report["method"]["thresholds_pct"].items() if m in set(cells["metric"])}
    lines += ["", (f"{len(cells)} cell × metric comparisons: {counts or 'none'}; {len(report['unmatched'])} in one "
                   f"run only; thresholds {_threshold_text(compared) or '(no metric compared)'}")]
    if report["counts"].get("no_ci"):
        lines.append(f"no_ci: fewer than {MIN_REPETITIONS} repetitions on a side, no CI and never a regression")
    lines.append(f"REGRESSION in {report['regressions']} cells" if report["regressions"] else "no regression")
    return "\n".join(lines)


def _threshold_text(thresholds: dict[str, float]) -> str:
    return ", ".join(f"{metric} {pct:g} % ({'higher' if WORSE_WHEN[metric] == 'higher' else 'lower'} is worse)"
                     for metric, pct in thresholds.items())


# ------------------------------------------------------------------------------ change points
@dataclass(frozen=True)
class Group:
    """Consecutive runs jumpavg found to share one level: runs first..last (0-based, inclusive)."""

    first: int
    last: int
    size: int  # repetitions in the group
    avg: float
    stdev: float  # population standard deviation of the repetitions


def _group_bits(size: int, avg: float, stdev: float, max_value: float, previous_avg: float | None) -> float:
    """Information content (bits) of a group of *size* values with mean *avg* and population
    standard deviation *stdev*, everything in units of the resolution (CSIT jumpavg's model):
    the size (P(k) = 1/(k(k+1))); the mean, uniform on [0, max] for the first group, otherwise
    from a distribution that falls off with the distance to the previous group's mean; the
    standard deviation; and the values on the sphere of that radius (jumpavg 0.4.2)."""
    bits = math.log2(size * (size + 1))
    if previous_avg is None:
        bits += math.log2(max_value + 1)
    else:
        norm = previous_avg ** 2 - (previous_avg - 1) * max_value + max_value ** 2 / 2
        bits -= math.log2((abs(avg - previous_avg) + 1) / norm)
    if size < 2:
        return bits
    # P(stdev) falling like 1/((s+1)(s+2)), cut off at the maximum: a uniform law would not
    # penalise a wide pair of values, whose sphere is two points whatever the radius
    bits += math.log2((stdev + 1) * (stdev + 2)) + math.log2(1 - 1 / (max_value + 2))
    # the size-1 free coordinates lie on a (size-2)-sphere of radius stdev * sqrt(size)
    sphere = (math.log(2) + math.log(math.pi) * (size - 1) / 2 - math.lgamma((size - 1) / 2)
              + math.log(stdev + 1) * (size - 2) + math.log(size) * (size - 2) / 2)
    return bits + sphere / math.log(2)


def jumpavg(runs: list[Any], unit: float | None = None, significant_bits: float = 12.0) -> list[Group]:
    """Split a time series of runs into groups of one level each (CSIT's jumpavg: the partition
    of minimal description length, each group a normal population). A run is a number or the
    values of its repetitions, which stay together. *unit* is the values' resolution; by
    default the largest value is 2^(significant_bits+1) − 1 units (CSIT's default 12 bits).

    The best partition of the first j runs is the cheapest over i < j of the best partition of
    the first i runs plus one group of runs i..j−1, coded against that partition's last mean:
    O(runs²)."""
    samples = [np.atleast_1d(np.asarray(run, float)) for run in runs]
    samples = [s[~np.isnan(s)] for s in samples]
    if not samples or any(s.size == 0 for s in samples):
        raise InvalidValueError("jumpavg: every run needs at least one value")
    flat = np.concatenate(samples)
    max_value = float(flat.max())
    if max_value <= 0:
        raise InvalidValueError("jumpavg: the values must include a positive one (the coding needs a maximum)")
    unit = unit or max_value / (2 ** (significant_bits + 1) - 1)
    scaled = flat / unit
    bounds = np.concatenate([[0], np.cumsum([s.size for s in samples])])
    sums, squares = np.concatenate([[0.0], np.cumsum(scaled)]), np.concatenate([[0.0], np.cumsum(scaled ** 2)])

    def stats(i: int, j: int) -> tuple[int, float, float]:  # runs i..j-1
        lo, hi = bounds[i], bounds[j]
        size = int(hi - lo)
        avg = (sums[hi] - sums[lo]) / size
        variance = max(0.0, (squares[hi] - squares[lo]) / size - avg ** 2)
        return size, avg, math.sqrt(variance)

    count = len(samples)
    # best[j] = (bits, partition as [(i, j), ...], last avg) of the first j runs
    best: list[tuple[float, list[tuple[int, int]], float | None]] = [(0.0, [], None)]
    for j in range(1, count + 1):
        record = None
        for i in range(j):
            bits_before, partition, previous_avg = best[i]
            size, avg, stdev = stats(i, j)
            bits = bits_before + _group_bits(size, avg, stdev, max_value / unit, previous_avg)
            if record is None or bits < record[0]:
                record = (bits, [*partition, (i, j)], avg)
        best.append(record)
    groups = []
    for i, j in best[count][1]:
        size, avg, stdev = stats(i, j)
        groups.append(Group(first=i, last=j - 1, size=size, avg=float(avg * unit), stdev=float(stdev * unit)))
    return groups


def series_runs(directory: str | Path) -> list[Run]:
    """The results directories under *directory*, ordered by when their first target was
    measured when every one records it, else by name."""
    directory = Path(directory)
    if not directory.is_dir():
        raise InvalidValueError(f"series {str(directory)!r} is not a directory; name a directory of results directories")
    runs = []
    for child in sorted(p for p in directory.iterdir() if p.is_dir()):
        try:
            tables_dir(child)
        except InvalidValueError:
            continue
        runs.append(load_run(child, "series run"))
    if len(runs) < 2:
        raise InvalidValueError(f"series {str(directory)!r}: {len(runs)} results directories with tables; a series "
                                "needs at least 2 (one subdirectory per run, each with tables/)")
    if all(run.measured_from is not None for run in runs):
        runs.sort(key=lambda run: run.measured_from)
    return runs


def change_points(runs: list[Run], thresholds: dict[str, float]) -> dict[str, Any]:
    """Per cell and metric measured by at least two runs: jumpavg's groups over the runs in
    order, each group after the first a change point (ratio of its mean to the previous
    group's, ``worse`` or ``better`` by the metric's direction). ``regressed`` lists the cells
    whose newest run sits in a group worse than the one before by more than the threshold."""
    names = [run.name for run in runs]
    per_cell: dict[tuple, list[tuple[int, np.ndarray]]] = {}
    for index, run in enumerate(runs):
        for key, group in run.values.groupby(KEYS, sort=True):
            values = group["value"].dropna().to_numpy()
            if values.size:
                per_cell.setdefault(key, []).append((index, values))
    cells, regressed = [], []
    for key, measured in sorted(per_cell.items()):
        if len(measured) < 2 or max(v.max() for _, v in measured) <= 0:
            continue
        metric = key[-1]
        groups = jumpavg([values for _, values in measured])
        points = []
        for before, after in itertools.pairwise(groups):
            ratio = after.avg / before.avg if before.avg else math.nan
            worse = (ratio > 1) == (WORSE_WHEN[metric] == "higher")
            points.append({"run": names[measured[after.first][0]], "ratio": ratio,
                           "direction": "worse" if worse else "better",
                           "beyond_threshold": bool(abs(ratio - 1) * 100 > thresholds[metric])})
        cell = {**dict(zip(KEYS, key)), "runs": [names[i] for i, _ in measured],
                "groups": [{"first_run": names[measured[g.first][0]], "last_run": names[measured[g.last][0]],
                            "repetitions": g.size, "mean": g.avg, "stdev": g.stdev} for g in groups],
                "change_points": points}
        cells.append(cell)
        newest = measured[-1][0] == len(runs) - 1
        if points and newest and points[-1]["direction"] == "worse" and points[-1]["beyond_threshold"]:
            regressed.append({k: cell[k] for k in KEYS})
    return {"runs": names, "method": {"change_points": "jumpavg (FD.io CSIT), minimum description length",
                                      "significant_bits": 12, "thresholds_pct": thresholds},
            "cells": cells, "regressed": regressed}


def series(directory: str | Path, thresholds: dict[str, float] | None = None) -> dict[str, Any]:
    """Change points over the runs of *directory* (:func:`series_runs`, :func:`change_points`)."""
    return change_points(series_runs(directory), thresholds or thresholds_for())


def format_series(report: dict[str, Any]) -> str:
    lines = [f"series of {len(report['runs'])} runs: {', '.join(report['runs'])}"]
    moved = [c for c in report["cells"] if c["change_points"]]
    for cell in moved:
        for point in cell["change_points"]:
            lines.append(f"  {cell['metric']:16} {cell['setup']} ({cell['implementation']}) {cell['workload']}: "
                         f"{point['direction']} ×{point['ratio']:.3f} from {point['run']}"
                         + ("" if point["beyond_threshold"] else " (within the threshold)"))
    lines.append(f"{len(report['cells'])} cell × metric series, {len(moved)} with change points; "
                 + (f"REGRESSION still in effect at the newest run in {len(report['regressed'])}"
                    if report["regressed"] else "no regression in effect at the newest run"))
    return "\n".join(lines)


# ------------------------------------------------------------------------------ files
def write_outputs(report: dict[str, Any], out_dir: str | Path, series_report: dict[str, Any] | None = None) -> list[Path]:
    """compare.json, compare.txt, the ratio figure (ratio.html, ratio.svg) and summary.html in
    *out_dir*; series.json too with a *series_report*."""
    from seconetbench.figures import compare as compare_figures
    from seconetbench.fsutil import write_text_atomic

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = [out_dir / "compare.json", out_dir / "compare.txt"]
    write_text_atomic(written[0], json.dumps(report, indent=1))
    write_text_atomic(written[1], format_report(report, show_all=True) + "\n")
    written += compare_figures.write_report(report, out_dir)
    if series_report is not None:
        written.append(out_dir / "series.json")
        write_text_atomic(written[-1], json.dumps(series_report, indent=1))
    return written


def configured_inputs(settings: dict[str, Any], results_dir: str | Path, own_tables: list[str]) -> list[str]:
    """The table files the workflow's compare rule reads, for config key ``compare``: every
    Parquet file of each run (and of each run of ``series``), but *own_tables* (the files the
    sweep will write) for this sweep's own *results_dir*, so that they are built first. A run
    without tables raises InvalidValueError naming its key (``compare.candidates[1]``, …)."""
    own = {os.path.realpath(results_dir), os.path.realpath(Path(results_dir) / "tables")}
    runs = [("compare.baseline", settings["baseline"])]
    runs += [(f"compare.candidates[{i}]", path) for i, path in enumerate(settings["candidates"])]
    files = []
    for key, path in runs:
        if os.path.realpath(path) in own:
            files += own_tables
        else:
            files += [str(p) for p in tables_dir(path, key).glob("*.parquet")]
    if settings.get("series"):
        files += [str(p) for run in series_runs(settings["series"]) for p in tables_dir(run.name).glob("*.parquet")]
    return sorted(set(files))


def run_configured(settings: dict[str, Any], out_dir: str | Path) -> dict[str, Any]:
    """What the workflow's compare rule runs: config key ``compare`` (validated) → the report
    files in *out_dir* (:func:`write_outputs`). A regression does not fail the rule: the report
    is the product here; `seconetbench compare` is the gate."""
    thresholds = thresholds_for(settings.get("threshold_pct", DEFAULT_THRESHOLD_PCT), settings.get("thresholds"),
                                names=("compare.threshold_pct", "compare.thresholds"))
    report = compare(settings["baseline"], settings["candidates"], thresholds)
    series_report = series(settings["series"], thresholds) if settings.get("series") else None
    write_outputs(report, out_dir, series_report)
    return report
