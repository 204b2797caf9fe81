"""Statistics over the benchmark tables: percentiles, order-statistic CIs of the median, per-pair
throughput, and ratios to a baseline (paired per round where the run order allows).

Pure functions (no I/O, no global random state). docs/statistics.md explains every statistic.

Units: a statistic has the unit of the metric it summarises. ``summary_table`` therefore names its
statistic columns without a unit (``median``, ``p95``, ...) and records the metric, whose name
carries the unit, in its ``metric`` column (``metric="rtt_ms"`` → ``median`` is in ms). The
exceptions are dimensionless: ``n``/``n_missing`` (counts), ``ci_halfwidth_pct`` (percent of the
median), ``ci_coverage`` (a fraction) and the ratios.

A CI is only as good as the independence of what it is over: the summary's CIs are over one value
per repetition (:func:`repetition_summary`), never over pooled probes (docs/statistics.md).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
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
    "ci_coverage",
]

_PERCENTILES = {"p5": 5.0, "p25": 25.0, "p75": 75.0, "p95": 95.0, "p99": 99.0}

# Which way each metric gets worse: "higher" (round-trip, first-packet and one-way delay,
# CPU-seconds per gigabit) or "lower" (throughput). The one list: `compare` decides regressions
# with it, findings the sign of an effect; every summary metric has an entry (tests/unit/test_compare.py).
WORSE_WHEN = {"rtt_ms": "higher", "first_ms": "higher", "warm_ms": "higher", "delay_ms": "higher",
              "cpu_s_per_gbit": "higher", "throughput_mbps": "lower",
              "allow_latency_ms": "higher", "deny_latency_ms": "higher"}

def _as_float_array(values: Any) -> np.ndarray:
    if isinstance(values, np.ndarray) and values.dtype.kind in "biuf":
        return values.astype(float, copy=False).ravel()
    series = values if isinstance(values, pd.Series) else pd.Series(np.asarray(values, dtype=object).ravel())
    try:
        numeric = pd.to_numeric(series, errors="raise")
    except (TypeError, ValueError) as exc:
        raise ValueError(f"summarize() needs numeric values: {exc}") from None
    return numeric.to_numpy(dtype=float, na_value=np.nan)


def median_ci_ranks(n: int, ci_level: float = 0.95) -> tuple[int, int, float] | None:
    """The distribution-free (order-statistic) CI of the median of *n* values: the 1-based ranks
    ``(k, n + 1 - k)`` of the narrowest symmetric interval ``[x(k), x(n+1-k)]`` whose exact
    coverage is at least *ci_level*, and that coverage; None when even ``[min, max]`` falls short.

    The number of values below the true median is Binomial(n, 1/2) whatever the distribution, so
    ``[x(k), x(n+1-k)]`` covers it with probability ``1 - 2 * P(B <= k - 1)`` for continuous data,
    and with at least that for data with ties (the interval is closed). At 95 % the fewest values
    are 6 (``[min, max]`` covers with 1 - 2/64 = 96.9 %; with 5 values only 93.75 %).
    """
    _check_ci_level(ci_level)
    if n < 1:
        return None
    # log of the Binomial(n, 1/2) probabilities, from log factorials (exact enough, and no
    # giant integers for pooled samples of 10^5 values)
    log_factorial = np.concatenate([[0.0], np.cumsum(np.log(np.arange(1, n + 1, dtype=float)))])
    k = np.arange(n + 1)
    pmf = np.exp(log_factorial[n] - log_factorial[k] - log_factorial[n - k] - n * math.log(2.0))
    cdf = np.cumsum(pmf)
    tail = (1.0 - ci_level) / 2.0
    # k - 1 may be at most the last j with P(B <= j) <= tail (a little slack for rounding)
    fitting = int(np.searchsorted(cdf[: (n + 1) // 2], tail * (1 + 1e-9), side="right"))
    if fitting == 0:
        return None
    low_rank = fitting
    return low_rank, n + 1 - low_rank, float(1.0 - 2.0 * cdf[low_rank - 1])


def min_values_for_ci(ci_level: float = 0.95) -> int:
    """The fewest values whose order-statistic CI of the median reaches *ci_level* (6 at 95 %):
    ``[min, max]`` covers with 1 - 2 * 0.5^n."""
    _check_ci_level(ci_level)
    return max(1, math.ceil(math.log2(2.0 / (1.0 - ci_level)) - 1e-9))


def median_ci(values: Any, *, ci_level: float = 0.95) -> tuple[float, float, float]:
    """Order-statistic (binomial) confidence interval of the median of *values*: ``(low, high,
    coverage)``, where *coverage* is the interval's exact coverage for continuous data (at least
    *ci_level*; with ties it covers at least as often). NaN values are dropped first. Returns
    ``(nan, nan, nan)`` when there are fewer values than :func:`min_values_for_ci` needs.
    Valid at any n without resampling and without assuming a distribution (docs/statistics.md).
    """
    data = np.sort(_as_float_array(values))
    data = data[~np.isnan(data)]
    ranks = median_ci_ranks(data.size, ci_level)
    if ranks is None:
        return (math.nan, math.nan, math.nan)
    low_rank, high_rank, coverage = ranks
    return (float(data[low_rank - 1]), float(data[high_rank - 1]), coverage)


def _check_ci_level(ci_level: float) -> None:
    if not 0.0 < ci_level < 1.0:
        raise ValueError(f"ci_level must be strictly between 0 and 1, got {ci_level!r}")


def summarize(values: Any, *, ci_level: float = 0.95) -> dict[str, Any]:
    """Descriptive statistics of one sample, with the order-statistic CI of the median.

    *values* is any 1-d array-like of numbers (list, numpy array, pandas Series, nullable dtypes).
    NaN/None/NA values are dropped and counted in ``n_missing`` (e.g. lost ping probes). Returns a
    dict with the keys of :data:`STAT_COLUMNS`, all in the unit of *values* except ``n``,
    ``n_missing`` (counts) and ``ci_halfwidth_pct`` (percent):

    - ``median``, ``mean``, ``std`` (sample standard deviation, ddof=1), ``min``, ``max``;
    - ``p5`` … ``p99``: percentiles with linear interpolation (numpy's default, Hyndman & Fan 7);
    - ``median_ci_low``/``median_ci_high``: order-statistic CI of the median at *ci_level*
      (:func:`median_ci`), NaN with fewer values than :func:`min_values_for_ci` (6 at 95 %);
    - ``ci_halfwidth_pct``: half the CI width relative to ``|median|``, in percent (NaN if the
      median is 0 or the CI is undefined);
    - ``ci_coverage``: the CI's exact coverage (a fraction, at least *ci_level*).

    The CI is only as meaningful as the independence of the values: summarize one value per
    repetition (:func:`repetition_summary`) for a CI of a setup's median, not pooled probes.
    With n == 1 the std is NaN; with n == 0 (all values missing) every statistic is NaN.

    Raises ValueError when *values* holds no element at all, or an infinite value.
    """
    _check_ci_level(ci_level)
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
    low, high, coverage = median_ci(data, ci_level=ci_level)
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
            "ci_coverage": coverage,
        }
    )
    return {key: out[key] for key in STAT_COLUMNS}


def summary_table(
    frame: pd.DataFrame,
    value_column: str,
    by: str | Sequence[str],
    *,
    ci_level: float = 0.95,
) -> pd.DataFrame:
    """One row per group of *by*: the group keys, ``metric`` (= *value_column*), then STAT_COLUMNS.

    The statistic columns are in the unit of the metric (``metric="rtt_ms"`` → milliseconds).
    A group's statistics depend only on its own values. Missing values count in ``n_missing``.
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
        stats = summarize(group[value_column], ci_level=ci_level)
        rows.append({**dict(zip(keys, group_key, strict=True)), "metric": value_column, **stats})
    result = pd.DataFrame(rows, columns=[*keys, "metric", *STAT_COLUMNS])
    for key in keys:  # keep the key dtypes of the input (e.g. int32 containers)
        result[key] = result[key].astype(frame[key].dtype)
    return result.astype({"n": "int64", "n_missing": "int64"})


# Group keys of per_pair_throughput: one row per setup, workload, repetition and pair (the
# testbed group is the repetition's; the effects take it from the tables themselves).
PAIR_KEYS = [c for c in IDENTITY_NAMES if c not in ("flow", "group")]
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


# ------------------------------------------------------------------ one value per repetition
# The columns repetition_summary() adds after the group keys and `metric`: statistics of the
# per-repetition values (the unit of replication), then descriptive percentiles of the pooled
# samples (probes, per-pair values or intervals), which are never a CI.
REPETITION_COLUMNS = ["n", "n_missing", "repetitions", "median", "mean", "std", "min", "max",
                      "median_ci_low", "median_ci_high", "ci_halfwidth_pct", "ci_coverage"]
PROBE_COLUMNS = ["probes", "probes_missing", "probe_p5", "probe_p25", "probe_p50", "probe_p75",
                 "probe_p95", "probe_p99"]


def repetition_values(samples: pd.DataFrame, value_column: str, by: str | Sequence[str],
                      per_rep: str = "median") -> pd.DataFrame:
    """One value per group of *by* and repetition: the *per_rep* aggregate (``median`` or
    ``mean``) of *value_column* over the repetition's samples, NaN samples left out (NaN when
    the repetition has none). Columns: *by*, ``rep``, ``value``."""
    keys = [by] if isinstance(by, str) else list(by)
    absent = [c for c in [*keys, "rep", value_column] if c not in samples.columns]
    if absent:
        raise ValueError(f"repetition_values: columns {absent} not in the frame; it has {list(samples.columns)}")
    if per_rep not in ("median", "mean"):
        raise ValueError(f"repetition_values: per_rep must be 'median' or 'mean', got {per_rep!r}")
    grouped = samples.groupby([*keys, "rep"], sort=True, dropna=False, observed=True)[value_column]
    return grouped.agg(per_rep).rename("value").reset_index()


def repetition_summary(samples: pd.DataFrame, value_column: str, by: str | Sequence[str], *,
                       per_rep: str = "median", ci_level: float = 0.95) -> pd.DataFrame:
    """Per group of *by*: statistics over one value per repetition (:func:`repetition_values`),
    whose CI of the median is over the repetitions (``n`` = repetitions with a value), plus the
    pooled samples' count and descriptive percentiles ``probe_p5`` … ``probe_p99``.

    Columns: *by*, ``metric`` (= *value_column*), :data:`REPETITION_COLUMNS`,
    :data:`PROBE_COLUMNS` (docs/statistics.md)."""
    keys = [by] if isinstance(by, str) else list(by)
    if samples.empty:
        raise ValueError(f"repetition_summary: the frame has no rows to summarize '{value_column}'")
    per_rep_values = repetition_values(samples, value_column, keys, per_rep)
    over_reps = summary_table(per_rep_values, "value", keys, ci_level=ci_level)
    over_reps = over_reps.assign(repetitions=over_reps["n"] + over_reps["n_missing"])
    pooled = summary_table(samples, value_column, keys, ci_level=ci_level)
    pooled = pooled.rename(columns={"n": "probes", "n_missing": "probes_missing", "median": "probe_p50",
                                    **{p: f"probe_{p}" for p in _PERCENTILES}})
    result = over_reps[[*keys, *REPETITION_COLUMNS]].merge(pooled[[*keys, *PROBE_COLUMNS]], on=keys)
    result.insert(len(keys), "metric", value_column)
    return result


# --------------------------------------------------------------------------- effects, paired
# Columns ratio_to_baseline() adds (docs/statistics.md, "Effects against a baseline").
EFFECT_COLUMNS = ["effect_of", "baseline_setup", "pairing", "ratio_to_baseline", "ratio_ci_low",
                  "ratio_ci_high", "ratio_n", "effect_conclusive"]


def _by_rep(values: Any) -> pd.Series:
    """Per-repetition values as a Series indexed by rep (a Series or dict keeps its keys; a plain
    sequence is numbered 1, 2, ... so that two sequences pair by position)."""
    if isinstance(values, pd.Series):
        series = values
    elif isinstance(values, dict):
        series = pd.Series(values, dtype=float)
    else:
        array = _as_float_array(values)
        series = pd.Series(array, index=range(1, array.size + 1))
    return pd.to_numeric(series, errors="raise").astype(float)


def paired_ratios(setup_values: Any, baseline_values: Any, *, ci_level: float = 0.95) -> dict[str, Any]:
    """The effect of a filter or tunnel measured in rounds: per round the ratio setup ÷ baseline
    of their per-repetition values, then the median of those ratios and its order-statistic CI
    over the rounds.

    *setup_values* and *baseline_values* are a repetition's values (e.g. its median RTT), as
    Series or dicts keyed by rep (the round in ``blocked`` run order; reps present in only one
    are left out) or as two sequences in round order. Rounds with a NaN or zero baseline are
    left out. Returns ``ratio``, ``ci_low``, ``ci_high``, ``ci_coverage``, ``ci_halfwidth_pct``
    (of the ratio), ``n`` (rounds used) and ``conclusive`` (the CI excludes 1; False when there
    are too few rounds for a CI)."""
    setup, baseline = _by_rep(setup_values), _by_rep(baseline_values)
    common = setup.index.intersection(baseline.index)
    numerator, denominator = setup.loc[common].to_numpy(), baseline.loc[common].to_numpy()
    usable = ~np.isnan(numerator) & ~np.isnan(denominator) & (denominator != 0)
    ratios = numerator[usable] / denominator[usable]
    return _ratio_result(ratios, ci_level)


def _ratio_result(ratios: np.ndarray, ci_level: float) -> dict[str, Any]:
    if ratios.size == 0:
        return {"ratio": math.nan, "ci_low": math.nan, "ci_high": math.nan, "ci_coverage": math.nan,
                "ci_halfwidth_pct": math.nan, "n": 0, "conclusive": False}
    s = summarize(ratios, ci_level=ci_level)
    return {"ratio": s["median"], "ci_low": s["median_ci_low"], "ci_high": s["median_ci_high"],
            "ci_coverage": s["ci_coverage"], "ci_halfwidth_pct": s["ci_halfwidth_pct"], "n": s["n"],
            "conclusive": bool(s["median_ci_low"] > 1 or s["median_ci_high"] < 1)}


def unpaired_ratio(setup_values: Any, baseline_values: Any, *, ci_level: float = 0.95) -> dict[str, Any]:
    """The effect when setup and baseline were not measured in shared rounds: the ratio of the two
    medians, with the interval [setup low ÷ baseline high, setup high ÷ baseline low] from each
    median's order-statistic CI at 1 − (1 − *ci_level*)/2, so both hold at once with at least
    *ci_level* (Bonferroni; for positive values). Same keys as :func:`paired_ratios`; ``n`` is
    the smaller sample, ``ci_coverage`` a lower bound: 1 minus both intervals' miss probabilities.
    Needs 7 values per side (the fewest for a 97.5 % CI)."""
    setup, baseline = _by_rep(setup_values).dropna(), _by_rep(baseline_values).dropna()
    each = 1.0 - (1.0 - ci_level) / 2.0
    s_low, s_high, s_cov = median_ci(setup, ci_level=each)
    b_low, b_high, b_cov = median_ci(baseline, ci_level=each)
    n = int(min(setup.size, baseline.size))
    base_median = float(np.median(baseline)) if baseline.size else math.nan
    ratio = float(np.median(setup)) / base_median if setup.size and base_median else math.nan
    low = s_low / b_high if b_high > 0 else math.nan
    high = s_high / b_low if b_low > 0 else math.nan
    if math.isnan(low) or math.isnan(high):
        low = high = coverage = math.nan
    else:
        coverage = 1.0 - (1.0 - s_cov) - (1.0 - b_cov)
    halfwidth = (high - low) / 2.0 / abs(ratio) * 100.0 if ratio and not math.isnan(low) else math.nan
    return {"ratio": ratio, "ci_low": low, "ci_high": high, "ci_coverage": coverage,
            "ci_halfwidth_pct": halfwidth, "n": n, "conclusive": bool(low > 1 or high < 1)}


def baseline_of(setup_id: str) -> tuple[str | None, str | None]:
    """What a setup's effect is measured against: ``("filter", id)`` of the same setup without
    the filter (filter none, no extra rules) when it has one; otherwise, for a multi-host setup
    with a tunnel, ``("tunnel", id)`` of the same hosts without the tunnel (tunnel ``routing``,
    no cipher); ``(None, None)`` for a baseline itself or an id that is not a setup id."""
    from seconetbench.spec import SETUP_ID

    match = SETUP_ID.match(setup_id)
    if not match:
        return (None, None)
    if match["filter"] != "none" or match["rules"]:
        effect, changes = "filter", {"filter": "none", "rules": None}
    elif match["scenario"] == "multi" and match["middle"] != "routing":
        effect, changes = "tunnel", {"middle": "routing", "cipher": None}
    else:
        return (None, None)
    pieces, position = [], 0
    for group, replacement in sorted(changes.items(), key=lambda item: match.start(item[0])):
        if match.start(group) < 0:
            continue
        # a dropped optional part also drops its "-r"/"-x" marker in front of it
        start = match.start(group) - (2 if replacement is None else 0)
        pieces += [setup_id[position:start], replacement or ""]
        position = match.end(group)
    return effect, "".join(pieces) + setup_id[position:]


def ratio_to_baseline(summary: pd.DataFrame, values: pd.DataFrame | None = None, *, paired: bool = False,
                      rounds: int | None = None, ci_level: float = 0.95) -> pd.DataFrame:
    """Add :data:`EFFECT_COLUMNS` to a summary (one row per setup × workload × metric, with
    ``median``): each row's effect against its baseline (:func:`baseline_of`) of the same
    workload and metric.

    With *paired* (the run order was ``blocked``: every round measured each setup and its
    baseline) and *values* (one per setup, workload and rep: columns ``setup``, ``workload``,
    ``rep``, ``value``, and ``group`` when several testbed groups measured: then a round pairs
    only where setup and baseline ran on the same group), the ratio is :func:`paired_ratios`
    over the rounds both have, rep ≤
    *rounds* when given (reps beyond it came from convergence rounds, outside the blocks):
    ``pairing`` = ``paired``. Otherwise ``unpaired``: :func:`unpaired_ratio` of the rows'
    repetitions (or, without *values*, the ratio of the medians with no CI). A row whose
    baseline is not in the summary gets ``pairing`` = ``no_baseline``; a baseline row itself gets
    nulls. ``effect_conclusive`` is false where the ratio's CI contains 1 or is missing: the
    effect is not shown to exceed the noise."""
    needed = ["setup", "workload", "metric", "median"]
    absent = [c for c in needed if c not in summary.columns]
    if absent:
        raise ValueError(f"ratio_to_baseline: the summary lacks columns {absent}")
    by_rep: dict[tuple[str, str], pd.Series] = {}
    if values is not None:
        chosen = values if rounds is None else values[values["rep"] <= rounds]
        # a round is a block only on one testbed group: keyed by (rep, group), a rep pairs with
        # the baseline's only where both were measured on the same group
        blocks = ["rep", "group"] if "group" in chosen.columns else ["rep"]
        by_rep = {(str(s), str(w)): g.set_index(blocks)["value"]
                  for (s, w), g in chosen.groupby(["setup", "workload"], observed=True)}
    medians = {(str(r.setup), str(r.workload), str(r.metric)): r.median
               for r in summary[needed].itertuples(index=False)}
    rows = []
    for setup, workload, metric in summary[["setup", "workload", "metric"]].astype(str).itertuples(index=False):
        effect_of, baseline = baseline_of(setup)
        row = dict.fromkeys(EFFECT_COLUMNS)
        row.update(effect_of=effect_of, baseline_setup=baseline)
        if baseline is None:
            rows.append(row)
            continue
        if (baseline, workload, metric) not in medians:
            rows.append({**row, "pairing": "no_baseline", "effect_conclusive": False})
            continue
        mine, theirs = by_rep.get((setup, workload)), by_rep.get((baseline, workload))
        if values is not None and mine is not None and theirs is not None:
            pairs = mine.index.intersection(theirs.index)
            pairing = "paired" if paired and len(pairs) else "unpaired"
            effect = (paired_ratios if pairing == "paired" else unpaired_ratio)(mine, theirs, ci_level=ci_level)
        else:
            pairing, base_median = "unpaired", medians[(baseline, workload, metric)]
            effect = {"ratio": medians[(setup, workload, metric)] / base_median if base_median else math.nan,
                      "ci_low": math.nan, "ci_high": math.nan, "n": 0, "conclusive": False}
        rows.append({**row, "pairing": pairing, "ratio_to_baseline": effect["ratio"],
                     "ratio_ci_low": effect["ci_low"], "ratio_ci_high": effect["ci_high"],
                     "ratio_n": effect["n"], "effect_conclusive": effect["conclusive"]})
    effects = pd.DataFrame(rows, columns=EFFECT_COLUMNS, index=summary.index)
    effects = effects.astype({"ratio_to_baseline": "float64", "ratio_ci_low": "float64", "ratio_ci_high": "float64",
                              "ratio_n": "Int64", "effect_conclusive": "boolean"})
    return pd.concat([summary.drop(columns=EFFECT_COLUMNS, errors="ignore"), effects], axis=1)
