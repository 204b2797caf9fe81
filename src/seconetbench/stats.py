"""Statistics over the benchmark tables: percentiles, bootstrap CIs, per-pair throughput, ratios.

Pure functions (no I/O, no global random state). docs/statistics.md explains every statistic.

Units: a statistic has the unit of the metric it summarises. ``summary_table`` therefore names its
statistic columns without a unit (``median``, ``p95``, ...) and records the metric, whose name
carries the unit, in its ``metric`` column (``metric="rtt_ms"`` → ``median`` is in ms). The two
exceptions are dimensionless: ``n``/``n_missing`` (counts) and ``ci_halfwidth_pct`` (percent of the
median).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from seconetbench.tables import IDENTITY_NAMES

# Order of the keys returned by summarize() and of the statistic columns of summary_table().
STAT_COLUMNS = [
    "n",
    "n_missing",
    "median",
    "mean",
    "std",
    "min",
    "p5",
    "p25",
    "p75",
    "p95",
    "p99",
    "max",
    "median_ci_low",
    "median_ci_high",
    "ci_halfwidth_pct",
]

_PERCENTILES = {"p5": 5.0, "p25": 25.0, "p75": 75.0, "p95": 95.0, "p99": 99.0}

# Upper bound on the number of resampled values held in memory at once by the bootstrap
# (8 bytes each for the values plus 8 for the indices: ~64 MB).
_BOOT_CHUNK_ELEMENTS = 4_000_000


def _as_float_array(values: Any) -> np.ndarray:
    if isinstance(values, np.ndarray) and values.dtype.kind in "biuf":
        return values.astype(float, copy=False).ravel()
    series = values if isinstance(values, pd.Series) else pd.Series(np.asarray(values, dtype=object).ravel())
    try:
        numeric = pd.to_numeric(series, errors="raise")
    except (TypeError, ValueError) as exc:
        raise ValueError(f"summarize() needs numeric values: {exc}") from None
    return numeric.to_numpy(dtype=float, na_value=np.nan)


def bootstrap_median_ci(
    values: np.ndarray, *, ci_level: float = 0.95, n_boot: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """Percentile-bootstrap confidence interval of the median of *values* (finite, no NaN).

    Draws *n_boot* resamples of size n with replacement (index matrix of shape (chunk, n), in
    chunks that bound the memory), takes each resample's median, and returns the
    ``(1-ci_level)/2`` and ``(1+ci_level)/2`` percentiles of those medians. Deterministic for a
    given *seed* and *values*. Returns ``(nan, nan)`` when fewer than two values are given.
    """
    _check_ci_args(ci_level, n_boot)
    values = np.asarray(values, dtype=float)
    n = values.size
    if n < 2:
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    chunk = max(1, min(n_boot, _BOOT_CHUNK_ELEMENTS // n))
    medians = np.empty(n_boot, dtype=float)
    for start in range(0, n_boot, chunk):
        stop = min(start + chunk, n_boot)
        idx = rng.integers(0, n, size=(stop - start, n))
        medians[start:stop] = np.median(values[idx], axis=1)
    alpha = 1.0 - ci_level
    low, high = np.percentile(medians, [100.0 * alpha / 2, 100.0 * (1 - alpha / 2)])
    return (float(low), float(high))


def _check_ci_args(ci_level: float, n_boot: int) -> None:
    if not 0.0 < ci_level < 1.0:
        raise ValueError(f"ci_level must be strictly between 0 and 1, got {ci_level!r}")
    if int(n_boot) != n_boot or n_boot < 1:
        raise ValueError(f"n_boot must be a positive integer, got {n_boot!r}")


def summarize(values: Any, *, ci_level: float = 0.95, n_boot: int = 2000, seed: int = 0) -> dict[str, Any]:
    """Descriptive statistics of one sample, with a bootstrap CI of the median.

    *values* is any 1-d array-like of numbers (list, numpy array, pandas Series, nullable dtypes).
    NaN/None/NA values are dropped and counted in ``n_missing`` (e.g. lost ping probes). Returns a
    dict with the keys of :data:`STAT_COLUMNS`, all in the unit of *values* except ``n``,
    ``n_missing`` (counts) and ``ci_halfwidth_pct`` (percent):

    - ``median``, ``mean``, ``std`` (sample standard deviation, ddof=1), ``min``, ``max``;
    - ``p5`` … ``p99``: percentiles with linear interpolation (numpy's default, Hyndman & Fan 7);
    - ``median_ci_low``/``median_ci_high``: percentile-bootstrap CI of the median at *ci_level*;
    - ``ci_halfwidth_pct``: half the CI width relative to ``|median|``, in percent (NaN if the
      median is 0 or the CI is undefined).

    With n == 1 the std and the CI are NaN; with n == 0 (all values missing) every statistic is NaN.

    Raises ValueError when *values* holds no element at all, or an infinite value.
    """
    _check_ci_args(ci_level, n_boot)
    arr = _as_float_array(values)
    if arr.size == 0:
        raise ValueError("summarize() got no values: cannot summarize an empty sample")
    missing = np.isnan(arr)
    data = arr[~missing]
    if np.isinf(data).any():
        raise ValueError("summarize() got infinite values; a measurement must be finite or missing (NaN)")
    n = int(data.size)
    out: dict[str, Any] = {"n": n, "n_missing": int(missing.sum())}
    if n == 0:
        out.update({key: math.nan for key in STAT_COLUMNS[2:]})
        return out
    median = float(np.median(data))
    pct = np.percentile(data, list(_PERCENTILES.values()))
    low, high = bootstrap_median_ci(data, ci_level=ci_level, n_boot=n_boot, seed=seed)
    if median == 0 or math.isnan(low):
        halfwidth_pct = math.nan
    else:
        halfwidth_pct = (high - low) / 2.0 / abs(median) * 100.0
    out.update(
        {
            "median": median,
            "mean": float(np.mean(data)),
            "std": float(np.std(data, ddof=1)) if n >= 2 else math.nan,
            "min": float(np.min(data)),
            **{key: float(v) for key, v in zip(_PERCENTILES, pct, strict=True)},
            "max": float(np.max(data)),
            "median_ci_low": low,
            "median_ci_high": high,
            "ci_halfwidth_pct": halfwidth_pct,
        }
    )
    return {key: out[key] for key in STAT_COLUMNS}


def summary_table(
    frame: pd.DataFrame,
    value_column: str,
    by: str | Sequence[str],
    *,
    ci_level: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per group of *by*: the group keys, ``metric`` (= *value_column*), then STAT_COLUMNS.

    The statistic columns are in the unit of the metric (``metric="rtt_ms"`` → milliseconds).
    Every group is bootstrapped with the same *seed*, so a group's CI depends only on its own
    values, not on which other groups are in the frame. Missing values count in ``n_missing``.
    """
    keys = [by] if isinstance(by, str) else list(by)
    needed = [*keys, value_column]
    absent = [c for c in needed if c not in frame.columns]
    if absent:
        raise ValueError(f"summary_table: columns {absent} not in the frame; it has {list(frame.columns)}")
    if frame.empty:
        raise ValueError(f"summary_table: the frame has no rows to summarize '{value_column}'")
    rows = []
    for group_key, group in frame.groupby(keys, sort=True, dropna=False, observed=True):
        group_key = group_key if isinstance(group_key, tuple) else (group_key,)
        stats = summarize(group[value_column], ci_level=ci_level, n_boot=n_boot, seed=seed)
        rows.append({**dict(zip(keys, group_key, strict=True)), "metric": value_column, **stats})
    result = pd.DataFrame(rows, columns=[*keys, "metric", *STAT_COLUMNS])
    for key in keys:  # keep the key dtypes of the input (e.g. int32 containers)
        result[key] = result[key].astype(frame[key].dtype)
    return result.astype({"n": "int64", "n_missing": "int64"})


# Group keys of per_pair_throughput: one row per setup, workload, repetition and pair.
PAIR_KEYS = [c for c in IDENTITY_NAMES if c != "flow"]
_PAIR_EXTRA_KEYS = ["generator", "protocol", "payload_bytes"]  # constant within a workload
PAIR_COLUMNS = [*PAIR_KEYS, *_PAIR_EXTRA_KEYS, "flows", "intervals", "bytes", "duration_s", "throughput_mbps", "retransmits"]


def per_pair_throughput(throughput_frame: pd.DataFrame) -> pd.DataFrame:
    """One throughput number per pair and repetition, from a ``throughput`` table.

    Groups by setup identity, workload, rep and pair (plus ``generator``, ``protocol`` and
    ``payload_bytes``, which a workload fixes) and returns :data:`PAIR_COLUMNS`:

    - ``flows``: distinct flows of the pair; ``intervals``: reporting intervals summed over;
    - ``bytes``: bytes of all flows of the pair;
    - ``duration_s``: seconds covered by the pair's intervals, i.e. the length of the union of
      ``[interval_start_s, interval_end_s]`` over all its flows (parallel flows share one clock
      that starts with their stream, so their overlapping intervals count once);
    - ``throughput_mbps = bytes * 8 / duration_s / 1e6`` (NaN if ``duration_s`` is 0) — the
      table's per-interval ``throughput_mbps`` is not used;
    - ``retransmits``: sum over the pair's intervals (NaN if the generator reported none).
    """
    needed = [*PAIR_KEYS, *_PAIR_EXTRA_KEYS, "flow", "interval_start_s", "interval_end_s", "bytes"]
    absent = [c for c in needed if c not in throughput_frame.columns]
    if absent:
        raise ValueError(f"per_pair_throughput: columns {absent} missing; is this a 'throughput' table?")
    keys = [*PAIR_KEYS, *_PAIR_EXTRA_KEYS]
    frame = throughput_frame
    if "retransmits" not in frame.columns:
        frame = frame.assign(retransmits=np.nan)
    if frame.empty:
        return pd.DataFrame({c: pd.Series(dtype=frame[c].dtype if c in frame.columns else "float64") for c in PAIR_COLUMNS})
    start = frame["interval_start_s"].to_numpy(dtype=float)
    end = frame["interval_end_s"].to_numpy(dtype=float)
    if (end < start).any():
        bad = int((end < start).sum())
        raise ValueError(f"per_pair_throughput: {bad} intervals end before they start")

    group_id = frame.groupby(keys, sort=False, dropna=False, observed=True).ngroup().to_numpy()
    order = np.lexsort((start, group_id))  # by group, then by interval start
    gid, start, end = group_id[order], start[order], end[order]
    # Union length of sorted intervals: each adds what lies beyond the furthest end seen so far.
    prev_end = pd.Series(end).groupby(gid).cummax().groupby(gid).shift(1).to_numpy()
    covered_from = np.where(np.isnan(prev_end), start, np.maximum(start, prev_end))
    covered = np.clip(end - covered_from, 0.0, None)
    duration = np.bincount(gid, weights=covered, minlength=group_id.max() + 1)

    grouped = frame.assign(_gid=group_id).groupby("_gid", sort=True)
    first = grouped[keys].first()
    result = first.assign(
        flows=grouped["flow"].nunique().astype("int64"),
        intervals=grouped.size().astype("int64"),
        bytes=grouped["bytes"].sum().astype("int64"),
        duration_s=duration[first.index.to_numpy()],
        retransmits=pd.to_numeric(grouped["retransmits"].sum(min_count=1), errors="coerce").astype("float64"),
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        mbps = result["bytes"].to_numpy(dtype=float) * 8.0 / result["duration_s"].to_numpy() / 1e6
    result["throughput_mbps"] = np.where(result["duration_s"].to_numpy() > 0, mbps, np.nan)
    result = result[PAIR_COLUMNS].sort_values(keys, kind="stable").reset_index(drop=True)
    for key in keys:
        result[key] = result[key].astype(frame[key].dtype)
    return result


def ratio_to_baseline(
    summary: pd.DataFrame,
    baseline_filter: str = "none",
    *,
    value: str = "median",
    keys: Iterable[str] | None = None,
) -> pd.DataFrame:
    """Add ``ratio_to_baseline`` (dimensionless) and ``baseline_setup`` to a summary table.

    For each row, the ratio of its *value* (default the median) to the *value* of the baseline row:
    the row with ``filter == baseline_filter`` that matches on *keys*. By default *keys* are all
    non-statistic columns except ``filter`` and ``setup`` — i.e. the same scenario, solution,
    tunnel, containers, workload and metric (and rep/pair if the summary is that fine). The
    baseline row's own ratio is 1. The ratio is NaN where there is no baseline, or the baseline
    value is 0 or NaN. Raises ValueError if a key matches several baseline rows.
    """
    for column in ("filter", value):
        if column not in summary.columns:
            raise ValueError(f"ratio_to_baseline: the summary has no '{column}' column")
    if keys is None:
        keys = [c for c in summary.columns if c not in STAT_COLUMNS and c not in ("filter", "setup", "ratio_to_baseline", "baseline_setup")]
    keys = list(keys)
    absent = [k for k in keys if k not in summary.columns]
    if absent:
        raise ValueError(f"ratio_to_baseline: key columns {absent} not in the summary")
    base_cols = [*keys, value] + (["setup"] if "setup" in summary.columns else [])
    base = summary.loc[summary["filter"] == baseline_filter, base_cols]
    duplicated = base.duplicated(subset=keys, keep=False) if keys else pd.Series(len(base) > 1, index=base.index)
    if duplicated.any():
        raise ValueError(
            f"ratio_to_baseline: several '{baseline_filter}' baseline rows share the keys {keys}; "
            "summarize at setup level or pass keys"
        )
    base = base.rename(columns={value: "_baseline_value", "setup": "baseline_setup"})
    result = summary.drop(columns=["ratio_to_baseline", "baseline_setup"], errors="ignore")
    if keys:
        result = result.merge(base, on=keys, how="left", validate="many_to_one")
    else:
        result = result.assign(**{c: (base[c].iloc[0] if len(base) else np.nan) for c in base.columns})
    numerator = result[value].to_numpy(dtype=float)
    denominator = result["_baseline_value"].to_numpy(dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(denominator != 0, numerator / denominator, np.nan)
    result["ratio_to_baseline"] = ratio
    if "baseline_setup" not in result.columns:
        result["baseline_setup"] = pd.NA
    return result.drop(columns="_baseline_value")
