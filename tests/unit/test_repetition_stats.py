"""Statistics over the unit of replication: the coverage of the order-statistic CI of the median
(simulated with fixed seeds), the per-repetition summary, and effects paired per round."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from seconetbench import config, pipeline, stats, sweep, tables
from tests.unit import tablegen

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
TRIALS = 2000
# three binomial standard errors of a 95 % coverage estimated from TRIALS samples
TOLERANCE = 3 * math.sqrt(0.05 * 0.95 / TRIALS)


def _exponential_microseconds(rng, size):
    # ping-like: a 50 µs floor plus an exponential tail of scale 2 µs, printed to 1 µs. Mostly the
    # values 50–53: heavy ties. P(X <= 50) = 1 - e^-0.25 = 0.22, P(X <= 51) = 1 - e^-0.75 = 0.53,
    # so the median is 51 µs.
    return 50 + np.round(rng.exponential(2.0, size))


# name: (draw(rng, shape), true median, continuous)
DISTRIBUTIONS = {
    "normal": (lambda rng, size: rng.normal(100.0, 10.0, size), 100.0, True),
    "exponential": (lambda rng, size: rng.exponential(1.0, size), math.log(2), True),
    "lognormal": (lambda rng, size: rng.lognormal(0.0, 1.5, size), 1.0, True),
    # an outlier in one repetition in ten (a noisy neighbour): 5x slower
    "outliers": (lambda rng, size: rng.normal(1.0, 0.02, size) * np.where(rng.random(size) < 0.1, 5.0, 1.0),
                 None, True),
    "normal_1us": (lambda rng, size: np.round(rng.normal(57.0, 3.0, size)), 57.0, False),
    "exponential_1us": (_exponential_microseconds, 51.0, False),
}


def _coverage(name: str, n: int, seed: int) -> tuple[float, float]:
    """Fraction of TRIALS samples of *n* values whose CI (stats.median_ci) holds the true median,
    and the coverage the CI reports."""
    draw, true_median, _ = DISTRIBUTIONS[name]
    if true_median is None:  # the outlier mixture: its median, from a large sample
        true_median = float(np.median(draw(np.random.default_rng(0), 2_000_000)))
    samples = draw(np.random.default_rng(seed), (TRIALS, n))
    covered, reported = 0, set()
    for sample in samples:
        low, high, coverage = stats.median_ci(sample)
        covered += low <= true_median <= high
        reported.add(coverage)
    (coverage,) = reported  # it depends on n only
    return covered / TRIALS, coverage


@pytest.mark.parametrize("name", sorted(DISTRIBUTIONS))
@pytest.mark.parametrize("n", [6, 9, 20])
def test_the_ci_of_the_median_covers_at_least_95_percent(name, n):
    seed = 1000 * n + sorted(DISTRIBUTIONS).index(name)
    simulated, reported = _coverage(name, n, seed)
    assert reported >= 0.95
    assert simulated >= 0.95 - TOLERANCE, (name, n, simulated)
    if DISTRIBUTIONS[name][2]:
        # continuous data: the reported coverage is exact, whatever the distribution
        assert simulated == pytest.approx(reported, abs=TOLERANCE), (name, n, simulated, reported)
    else:
        # ties make the closed interval cover more often, never less
        assert simulated >= reported - TOLERANCE, (name, n, simulated, reported)


def test_five_values_cannot_give_a_95_percent_ci_hence_the_floor_of_six():
    # the widest interval of 5 values, [min, max], covers the median in 1 - 2 / 32 = 93.75 %
    samples = np.random.default_rng(55).exponential(1.0, size=(TRIALS, 5))
    covered = ((samples.min(axis=1) <= math.log(2)) & (math.log(2) <= samples.max(axis=1))).mean()
    assert covered == pytest.approx(0.9375, abs=TOLERANCE)
    assert covered < 0.95
    assert stats.median_ci_ranks(5) is None and stats.min_values_for_ci() == 6


# ------------------------------------------------------------------------- per-repetition summary
SETUP_LEVEL = [f.name for f in tables.SETUP_IDENTITY]


def test_the_summary_ci_is_over_repetitions_and_probe_percentiles_are_descriptive():
    latency = tablegen.latency_table(setups=["single-bridge-none-c2"], reps=7, probes=10, loss_every=5)
    summary = pipeline.summary_of({"latency": latency}, {})
    tables.conform(summary, "summary")
    (row,) = summary.to_dict("records")
    per_rep = latency.groupby("rep")["rtt_ms"].median()  # lost probes left out
    assert (row["n"], row["n_missing"], row["repetitions"]) == (7, 0, 7)
    assert row["median"] == pytest.approx(per_rep.median())
    low, high, coverage = stats.median_ci(per_rep)
    assert (row["median_ci_low"], row["median_ci_high"], row["ci_coverage"]) == (low, high, coverage)
    assert (row["probes"], row["probes_missing"]) == (7 * 8, 7 * 2)
    assert row["probe_p50"] == pytest.approx(latency["rtt_ms"].median())
    assert row["probe_p99"] == pytest.approx(latency["rtt_ms"].quantile(0.99))


def test_a_summary_of_fewer_than_six_repetitions_has_no_ci():
    latency = tablegen.latency_table(setups=["single-bridge-none-c2"], reps=5, probes=10)
    (row,) = pipeline.summary_of({"latency": latency}, {}).to_dict("records")
    assert row["n"] == 5 and row["probes"] == 50
    assert math.isnan(row["median_ci_low"]) and math.isnan(row["ci_halfwidth_pct"])


def test_throughput_repetition_value_is_the_mean_pair_throughput():
    throughput = tablegen.throughput_table(setups=["single-bridge-none-c8"], payloads=(653,), reps=6, max_pairs=None)
    (row,) = pipeline.summary_of({"throughput": throughput}, {}).to_dict("records")
    pairs = stats.per_pair_throughput(throughput)
    assert (row["n"], row["probes"]) == (6, len(pairs))
    assert row["median"] == pytest.approx(pairs.groupby("rep")["throughput_mbps"].mean().median())


# ------------------------------------------------------------------------------- paired effects
def _rounds(seed: int, rounds: int, effect: float, drift_pct: float, noise_pct: float) -> pd.DataFrame:
    """Per-repetition values of a baseline and a filtered setup measured in the same rounds: each
    round shifts both by a shared drift (the machine's state), each value has its own noise."""
    rng = np.random.default_rng(seed)
    drift = 1 + rng.normal(0, drift_pct / 100, rounds)
    rows = []
    for setup, factor in (("single-bridge-none-c2", 1.0), ("single-bridge-iptables-c2", effect)):
        noise = 1 + rng.normal(0, noise_pct / 100, rounds)
        rows += [{"setup": setup, "workload": "throughput_653", "rep": r + 1,
                  "value": 1000 * factor * drift[r] * noise[r]} for r in range(rounds)]
    return pd.DataFrame(rows)


def test_pairing_removes_the_drift_shared_by_a_round():
    values = _rounds(seed=3, rounds=10, effect=0.97, drift_pct=10, noise_pct=0.5)
    setup = values[values["setup"].str.contains("iptables")].set_index("rep")["value"]
    baseline = values[values["setup"].str.contains("none")].set_index("rep")["value"]
    paired = stats.paired_ratios(setup, baseline)
    unpaired = stats.unpaired_ratio(setup, baseline)
    assert paired["n"] == 10 and paired["ci_low"] <= 0.97 <= paired["ci_high"]
    assert paired["conclusive"] and paired["ci_high"] < 1  # a 3 % cost, shown
    assert not unpaired["conclusive"]  # lost in the 10 % drift
    assert paired["ci_halfwidth_pct"] < unpaired["ci_halfwidth_pct"] / 5


def test_paired_ratios_pair_by_rep_and_sequences_by_position():
    by_rep = stats.paired_ratios({1: 2.0, 2: 4.0, 3: 6.0, 9: 100.0}, {1: 1.0, 2: 2.0, 3: 3.0, 4: 7.0})
    assert (by_rep["ratio"], by_rep["n"]) == (2.0, 3)  # rounds 4 and 9 have no partner
    assert not by_rep["conclusive"] and math.isnan(by_rep["ci_low"])  # 3 rounds: no CI
    in_order = stats.paired_ratios([2, 4, 6, 8, 10, 12], [1, 2, 3, 4, 5, 6])
    assert in_order["ratio"] == 2.0 and in_order["ci_low"] == in_order["ci_high"] == 2.0
    assert in_order["conclusive"]


def _summary_of_values(values: pd.DataFrame) -> pd.DataFrame:
    """A summary with the rows ratio_to_baseline needs, from per-repetition values."""
    frame = values.assign(metric="throughput_mbps")
    return stats.summary_table(frame, "value", ["setup", "workload", "metric"]).drop(columns="metric") \
        .assign(metric="throughput_mbps")


def test_ratio_to_baseline_is_paired_in_blocked_order_and_says_so():
    values = _rounds(seed=4, rounds=8, effect=0.95, drift_pct=8, noise_pct=0.5)
    summary = _summary_of_values(values)
    paired = stats.ratio_to_baseline(summary, values, paired=True).set_index("setup")
    row = paired.loc["single-bridge-iptables-c2"]
    assert (row["effect_of"], row["baseline_setup"], row["pairing"]) == ("filter", "single-bridge-none-c2", "paired")
    assert row["ratio_n"] == 8 and row["ratio_ci_high"] < 1 and row["effect_conclusive"]
    assert pd.isna(paired.loc["single-bridge-none-c2", "effect_of"])  # the baseline itself
    unpaired = stats.ratio_to_baseline(summary, values, paired=False).set_index("setup")
    row = unpaired.loc["single-bridge-iptables-c2"]
    assert row["pairing"] == "unpaired" and not row["effect_conclusive"]
    # only the blocked rounds pair: reps beyond *rounds* came from convergence rounds
    first = stats.ratio_to_baseline(summary, values, paired=True, rounds=6).set_index("setup")
    assert first.loc["single-bridge-iptables-c2", "ratio_n"] == 6


def test_an_effect_within_the_noise_is_inconclusive():
    values = _rounds(seed=5, rounds=8, effect=1.0, drift_pct=8, noise_pct=3)
    result = stats.ratio_to_baseline(_summary_of_values(values), values, paired=True).set_index("setup")
    row = result.loc["single-bridge-iptables-c2"]
    assert row["ratio_ci_low"] <= 1 <= row["ratio_ci_high"] and bool(row["effect_conclusive"]) is False


def test_a_baseline_outside_the_sweep_is_named_and_a_tunnel_is_compared_with_routing():
    values = _rounds(seed=6, rounds=6, effect=0.9, drift_pct=1, noise_pct=1)
    values["setup"] = values["setup"].map({"single-bridge-none-c2": "multi-routing-none-c4",
                                           "single-bridge-iptables-c2": "multi-wireguard-none-c4"})
    lonely = pd.DataFrame({"setup": "multi-vxlan-iptables-c4", "workload": "throughput_653", "rep": range(1, 7),
                           "value": 900.0})
    values = pd.concat([values, lonely], ignore_index=True)
    result = stats.ratio_to_baseline(_summary_of_values(values), values, paired=True).set_index("setup")
    tunnel = result.loc["multi-wireguard-none-c4"]
    assert (tunnel["effect_of"], tunnel["baseline_setup"], tunnel["pairing"]) == \
        ("tunnel", "multi-routing-none-c4", "paired")
    assert tunnel["ratio_to_baseline"] == pytest.approx(0.9, rel=0.05)
    missing = result.loc["multi-vxlan-iptables-c4"]
    assert (missing["baseline_setup"], missing["pairing"]) == ("multi-vxlan-none-c4", "no_baseline")
    assert math.isnan(missing["ratio_to_baseline"]) and bool(missing["effect_conclusive"]) is False


@pytest.mark.parametrize(("setup_id", "expected"), [
    ("single-bridge-iptables-c8", ("filter", "single-bridge-none-c8")),
    ("single-bridge-iptables-c8-r1000", ("filter", "single-bridge-none-c8")),
    ("single-bridge-none-c8", (None, None)),
    ("multi-wireguard-none-c2-xchacha20_poly1305", ("tunnel", "multi-routing-none-c2")),
    ("multi-wireguard-nftables-c2-h3-docker", ("filter", "multi-wireguard-none-c2-h3-docker")),
    ("multi-routing-none-c2", (None, None)),
])
def test_baseline_of_a_setup(setup_id, expected):
    assert stats.baseline_of(setup_id) == expected


def test_the_summary_pairs_only_in_blocked_order():
    latency = tablegen.latency_table(setups=["single-bridge-none-c2", "single-bridge-iptables-c2"], reps=6)
    blocked = pipeline.summary_of({"latency": latency}, {}, {"run_order": "blocked", "rounds": 6})
    shuffled = pipeline.summary_of({"latency": latency}, {}, {"run_order": "shuffled", "rounds": 6})
    pick = lambda frame: frame.set_index("setup").loc["single-bridge-iptables-c2"]  # noqa: E731
    assert pick(blocked)["pairing"] == "paired" and pick(shuffled)["pairing"] == "unpaired"
    assert pick(blocked)["ratio_n"] == 6
    # tablegen's filter adds 30 µs to a 50 µs RTT: far outside the noise either way
    assert pick(blocked)["effect_conclusive"] and pick(blocked)["ratio_to_baseline"] > 1.4


def test_full_yaml_blocked_rounds_hold_every_setup_and_its_baseline():
    """The design the pairing relies on: in blocked order, round r is exactly repetition r of every
    cell, and every filtered or tunnelled setup of full.yaml has its baseline in the sweep."""
    full = config.validate(yaml.safe_load((REPO / "config/full.yaml").read_text()))
    planned = sweep.expand(full)
    assert full["run_order"]["mode"] == "blocked" and planned.repetitions == 6
    ids = {s.id for s in planned.setups}
    for setup in ids:
        effect, baseline = stats.baseline_of(setup)
        assert effect is None or baseline in ids, (setup, baseline)
    order = planned.run_order("blocked", full["run_order"]["seed"])
    per_round = len(order) // planned.repetitions
    for index, target in enumerate(order):
        assert target.rep == index // per_round + 1
    priorities = planned.priorities("blocked", full["run_order"]["seed"])
    assert all(priorities[a.path] > priorities[b.path] for a, b in zip(order, order[1:]))
