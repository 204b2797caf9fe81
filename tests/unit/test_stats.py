"""Statistics: exact values on hand-made samples, the order-statistic CI of the median, NaN
handling, per-pair throughput and effects against a baseline (the coverage simulation and the
per-repetition summary: test_repetition_stats.py)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seconetbench import stats, tables
from tests.unit import tablegen

pytestmark = pytest.mark.unit

SETUP_LEVEL = ["setup", "scenario", "solution", "filter", "tunnel", "containers", "workload"]


# ------------------------------------------------------------------------------------ summarize
def test_summarize_exact_values_on_small_sample():
    s = stats.summarize([5, 1, 4, 2, 3])
    assert list(s) == stats.STAT_COLUMNS
    assert (s["n"], s["n_missing"]) == (5, 0)
    assert s["median"] == 3 and s["mean"] == 3 and s["min"] == 1 and s["max"] == 5
    assert s["std"] == pytest.approx(math.sqrt(2.5))  # sample std, ddof=1
    # linear interpolation between order statistics: p = 1 + (q/100) * 4
    assert s["p5"] == pytest.approx(1.2)
    assert s["p25"] == pytest.approx(2.0)
    assert s["p75"] == pytest.approx(4.0)
    assert s["p95"] == pytest.approx(4.8)
    assert s["p99"] == pytest.approx(4.96)


def test_summarize_even_sample_median_and_percentiles():
    s = stats.summarize(np.array([10.0, 20.0, 30.0, 40.0]))
    assert s["median"] == 25.0
    assert s["p25"] == pytest.approx(17.5)
    assert s["p75"] == pytest.approx(32.5)


def test_summarize_constant_sample_has_zero_width_ci():
    s = stats.summarize([2.0] * 10)
    assert s["median_ci_low"] == s["median_ci_high"] == 2.0
    assert s["ci_halfwidth_pct"] == 0.0
    assert s["std"] == 0.0


def test_summarize_ci_brackets_the_median_and_halfwidth_is_relative():
    values = np.random.default_rng(3).normal(100.0, 10.0, size=200)
    s = stats.summarize(values)
    assert s["min"] <= s["median_ci_low"] <= s["median"] <= s["median_ci_high"] <= s["max"]
    expected = (s["median_ci_high"] - s["median_ci_low"]) / 2 / s["median"] * 100
    assert s["ci_halfwidth_pct"] == pytest.approx(expected)
    assert 0 < s["ci_halfwidth_pct"] < 5


def test_summarize_drops_and_counts_missing_values():
    s = stats.summarize([1.0, None, 3.0, float("nan"), 2.0])
    assert (s["n"], s["n_missing"]) == (3, 2)
    assert s["median"] == 2.0 and s["mean"] == 2.0
    nullable = pd.Series([1.0, pd.NA, 3.0], dtype="Float64")
    s = stats.summarize(nullable)
    assert (s["n"], s["n_missing"], s["median"]) == (2, 1, 2.0)


def test_summarize_all_missing_gives_nan_statistics():
    s = stats.summarize([np.nan, np.nan])
    assert (s["n"], s["n_missing"]) == (0, 2)
    assert all(math.isnan(s[k]) for k in stats.STAT_COLUMNS[2:])


def test_summarize_has_no_ci_below_six_values():
    s = stats.summarize([1.0, 2.0, 3.0, 4.0, 5.0])
    assert math.isnan(s["median_ci_low"]) and math.isnan(s["ci_coverage"])
    s = stats.summarize([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    assert (s["median_ci_low"], s["median_ci_high"], s["ci_coverage"]) == (1.0, 6.0, 1 - 2 / 64)


def test_summarize_single_value_has_no_ci():
    s = stats.summarize([7.0, np.nan])
    assert (s["n"], s["median"], s["p99"]) == (1, 7.0, 7.0)
    assert math.isnan(s["std"])
    assert math.isnan(s["median_ci_low"]) and math.isnan(s["median_ci_high"])
    assert math.isnan(s["ci_halfwidth_pct"])


def test_summarize_zero_median_gives_nan_halfwidth():
    s = stats.summarize([-1.0, 0.0, 0.0, 0.0, 1.0])
    assert s["median"] == 0.0
    assert math.isnan(s["ci_halfwidth_pct"])


@pytest.mark.parametrize("empty", [[], np.array([]), pd.Series([], dtype=float)])
def test_summarize_empty_input_raises(empty):
    with pytest.raises(ValueError, match="no values: cannot summarize an empty sample"):
        stats.summarize(empty)


@pytest.mark.parametrize(
    ("values", "kwargs", "message"),
    [
        ([1.0, math.inf], {}, "infinite"),
        (["a", "b"], {}, "numeric"),
        ([1.0, 2.0], {"ci_level": 1.0}, "ci_level"),
    ],
)
def test_summarize_rejects_bad_input(values, kwargs, message):
    with pytest.raises(ValueError, match=message):
        stats.summarize(values, **kwargs)


def test_median_ci_takes_the_order_statistics_the_binomial_distribution_gives():
    # n = 10: P(B <= 1) = 11/1024, so [x(2), x(9)] covers with 1 - 22/1024 = 97.9 %
    low, high, coverage = stats.median_ci([10, 1, 9, 2, 8, 3, 7, 4, 6, 5])
    assert (low, high) == (2.0, 9.0) and coverage == pytest.approx(1 - 22 / 1024)
    assert stats.median_ci_ranks(6) == (1, 6, pytest.approx(1 - 2 / 64))
    # 5 values: even [min, max] covers only 93.75 %, so there is no 95 % CI
    assert stats.median_ci_ranks(5) is None and all(math.isnan(v) for v in stats.median_ci([1, 2, 3, 4, 5]))
    assert stats.median_ci_ranks(5, ci_level=0.9) == (1, 5, pytest.approx(0.9375))


def test_the_fewest_values_for_a_ci_agree_with_the_ranks():
    for level in (0.8, 0.9, 0.95, 0.975, 0.99):
        fewest = stats.min_values_for_ci(level)
        assert stats.median_ci_ranks(fewest, level) is not None
        assert stats.median_ci_ranks(fewest - 1, level) is None
    assert stats.min_values_for_ci(0.95) == 6


def test_median_ci_of_a_large_pooled_sample_is_narrow_and_brackets_the_median():
    values = np.random.default_rng(5).exponential(size=50_000)
    low, high, coverage = stats.median_ci(values)
    assert low < np.median(values) < high and high - low < 0.03
    assert 0.95 <= coverage < 0.96


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.one_of(st.none(), st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)),
        min_size=1,
        max_size=40,
    )
)
def test_summarize_orders_its_statistics(values):
    s = stats.summarize(values)
    present = [v for v in values if v is not None]
    assert s["n"] == len(present) and s["n_missing"] == len(values) - len(present)
    if not present:
        return
    chain = [s[k] for k in ("min", "p5", "p25", "median", "p75", "p95", "p99", "max")]
    assert all(a <= b + 1e-9 * (1 + abs(b)) for a, b in zip(chain, chain[1:], strict=False))
    assert s["min"] - 1e-9 <= s["mean"] <= s["max"] + 1e-9
    if len(present) >= stats.min_values_for_ci():
        assert s["min"] <= s["median_ci_low"] <= s["median"] <= s["median_ci_high"] <= s["max"]


# --------------------------------------------------------------------------------- summary_table
def test_summary_table_one_row_per_group_with_metric_column():
    latency = tablegen.latency_table(setups=list(tablegen.SETUPS), reps=2, probes=10, loss_every=5)
    table = stats.summary_table(latency, "rtt_ms", SETUP_LEVEL)
    assert list(table.columns) == [*SETUP_LEVEL, "metric", *stats.STAT_COLUMNS]
    assert len(table) == len(tablegen.SETUPS)
    assert (table["metric"] == "rtt_ms").all()
    assert table["containers"].dtype == latency["containers"].dtype
    assert table["n"].dtype == "int64" and table["n_missing"].dtype == "int64"
    row = table.set_index("setup").loc["single-bridge-none-c8"]
    # 8 containers → 4 pairs, 2 reps, 10 probes of which 2 lost (seq 5 and 10)
    assert (row["n"], row["n_missing"]) == (4 * 2 * 8, 4 * 2 * 2)
    expected = latency.loc[latency["setup"] == "single-bridge-none-c8", "rtt_ms"].median()
    assert row["median"] == pytest.approx(expected)


def test_summary_table_accepts_a_single_key():
    latency = tablegen.latency_table(setups=["single-bridge-none-c2", "single-bridge-iptables-c2"])
    table = stats.summary_table(latency, "rtt_ms", "setup")
    assert list(table["setup"]) == sorted(["single-bridge-none-c2", "single-bridge-iptables-c2"])


def test_summary_table_ci_of_a_group_does_not_depend_on_other_groups():
    latency = tablegen.latency_table(setups=list(tablegen.SETUPS), probes=15)
    alone = latency[latency["setup"] == "single-bridge-none-c2"]
    a = stats.summary_table(latency, "rtt_ms", "setup").set_index("setup")
    b = stats.summary_table(alone, "rtt_ms", "setup").set_index("setup")
    pd.testing.assert_series_equal(a.loc["single-bridge-none-c2"], b.loc["single-bridge-none-c2"])


def test_summary_table_errors():
    latency = tablegen.latency_table()
    with pytest.raises(ValueError, match=r"columns \['nope'\] not in the frame"):
        stats.summary_table(latency, "nope", "setup")
    with pytest.raises(ValueError, match="no rows"):
        stats.summary_table(tables.empty("latency"), "rtt_ms", "setup")


# --------------------------------------------------------------------------- per_pair_throughput
def test_per_pair_throughput_sums_flows_over_covered_seconds():
    frame = tablegen.throughput_table(payloads=(64, 1370), reps=2, flows=2, intervals=3, interval_s=1.0)
    pairs = stats.per_pair_throughput(frame)
    assert list(pairs.columns) == stats.PAIR_COLUMNS
    assert len(pairs) == 2 * 2  # payloads × reps, one pair
    rep1 = pairs[(pairs["rep"] == 1) & (pairs["payload_bytes"] == 64)].iloc[0]
    per_interval = 125_000_000 + 1_000_000
    assert rep1["flows"] == 2 and rep1["intervals"] == 6
    assert rep1["bytes"] == 2 * 3 * per_interval
    assert rep1["duration_s"] == pytest.approx(3.0)  # parallel flows overlap: counted once
    assert rep1["throughput_mbps"] == pytest.approx(2 * 3 * per_interval * 8 / 3.0 / 1e6)
    assert rep1["retransmits"] == 0
    assert pairs["rep"].dtype == frame["rep"].dtype
    assert pairs["payload_bytes"].dtype == frame["payload_bytes"].dtype


def _hand_intervals(spans, flows=None, nbytes=1_000_000, protocol="tcp"):
    base = tablegen.throughput_table(intervals=1, payloads=(64,))
    rows = []
    for i, (start, end) in enumerate(spans):
        row = base.iloc[0].to_dict()
        row.update(
            flow=(flows or [1] * len(spans))[i],
            interval_start_s=start,
            interval_end_s=end,
            bytes=nbytes,
            protocol=protocol,
            retransmits=None if protocol == "udp" else 1,
        )
        rows.append(row)
    return tables.conform(pd.DataFrame(rows), "throughput").to_pandas()


@pytest.mark.parametrize(
    ("spans", "flows", "duration"),
    [
        ([(0, 1), (1, 2)], [1, 1], 2.0),  # contiguous
        ([(0, 1), (2, 3)], [1, 1], 2.0),  # a gap is not covered
        ([(0, 1), (1, 2), (0.5, 1.5), (1.5, 2.5)], [1, 1, 2, 2], 2.5),  # overlapping flows
        ([(1, 2), (0, 3)], [1, 2], 3.0),  # one interval inside another
    ],
)
def test_per_pair_throughput_duration_is_union_of_intervals(spans, flows, duration):
    pairs = stats.per_pair_throughput(_hand_intervals(spans, flows))
    assert len(pairs) == 1
    assert pairs["duration_s"].iloc[0] == pytest.approx(duration)
    assert pairs["throughput_mbps"].iloc[0] == pytest.approx(len(spans) * 1_000_000 * 8 / duration / 1e6)
    assert pairs["retransmits"].iloc[0] == len(spans)


def test_per_pair_throughput_edge_cases():
    zero = stats.per_pair_throughput(_hand_intervals([(1.0, 1.0)]))
    assert math.isnan(zero["throughput_mbps"].iloc[0])
    udp = stats.per_pair_throughput(_hand_intervals([(0, 1)], protocol="udp"))
    assert math.isnan(udp["retransmits"].iloc[0])
    empty = stats.per_pair_throughput(tables.empty("throughput"))
    assert empty.empty and list(empty.columns) == stats.PAIR_COLUMNS
    with pytest.raises(ValueError, match="end before they start"):
        stats.per_pair_throughput(_hand_intervals([(2, 1)]))
    with pytest.raises(ValueError, match="is this a 'throughput' table"):
        stats.per_pair_throughput(tablegen.latency_table())
