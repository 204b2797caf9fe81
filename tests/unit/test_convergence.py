"""Convergence decisions: more repetitions only for the cells whose CI is still too wide."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from seconetbench import convergence, stats

pytestmark = pytest.mark.unit

RULES = {"min": 6, "max": 12, "ci_halfwidth_pct": 5}


def values(cells: dict[str, list[float]]) -> pd.DataFrame:
    rows = [{"setup": cell.split("/")[0], "workload": cell.split("/")[1], "rep": i + 1, "value": v}
            for cell, vals in cells.items() for i, v in enumerate(vals)]
    return pd.DataFrame(rows)


def decide_one(sample: list[float], rules: dict = RULES) -> dict:
    cell = "c/w"
    return convergence.decide(values({cell: sample}), [cell], {cell: len(sample)}, rules)["cells"][cell]


def test_a_steady_cell_converges_at_the_minimum():
    sample = list(100 + np.random.default_rng(1).normal(0, 0.5, 6))
    decision = decide_one(sample)
    assert decision["status"] == "converged" and decision["reps"] == 6
    # the half-width is that of the order-statistic CI: at n = 6 [min, max]
    assert decision["ci_halfwidth_pct"] == pytest.approx((max(sample) - min(sample)) / 2 / np.median(sample) * 100)


def test_only_the_noisy_cell_gets_more_repetitions():
    rng = np.random.default_rng(1)
    data = {"steady/latency": list(100 + rng.normal(0, 0.1, 6)), "noisy/latency": list(100 + rng.normal(0, 40, 6))}
    decision = convergence.decide(values(data), list(data), {c: 6 for c in data}, RULES)
    assert decision["cells"]["steady/latency"]["status"] == "converged"
    assert decision["cells"]["noisy/latency"]["status"] == "more"
    assert 7 <= decision["cells"]["noisy/latency"]["reps"] <= RULES["max"]
    assert not decision["done"]


def test_a_noisy_cell_at_max_is_flagged_not_converged():
    sample = [10, 90, 50, 20, 80, 30, 70, 40, 60, 55, 45, 65]
    decision = decide_one(sample)
    assert (decision["status"], decision["reps"]) == ("not_converged", 12)


def test_ties_give_a_ci_of_width_zero_which_is_not_convergence():
    # ping prints microseconds: six repetitions with the same median RTT
    decision = decide_one([0.057] * 6)
    assert decision["ci_halfwidth_pct"] == 0
    assert (decision["status"], decision["reps"]) == ("more", 7)
    assert decide_one([0.057] * 12)["status"] == "not_converged"


def test_one_outlier_does_not_stop_a_cell_from_converging():
    # the order-statistic CI at n = 10 is [x(2), x(9)]: one repetition 10x slower is outside it
    sample = [1.00, 1.01, 0.99, 1.02, 0.98, 1.00, 1.01, 0.99, 1.00, 10.0]
    decision = decide_one(sample)
    assert decision["status"] == "converged" and decision["ci_halfwidth_pct"] < 5


def test_fewer_values_than_the_minimum_never_converge():
    # five identical-looking repetitions: no 95 % CI exists from five values
    five = decide_one([100.0, 100.1, 99.9, 100.05, 99.95], {**RULES, "min": 6})
    assert five["status"] == "more" and math.isnan(five["ci_halfwidth_pct"])
    # a repetition without a value (every probe lost) does not count towards min
    lost = decide_one([100.0, 100.1, 99.9, 100.05, 99.95, math.nan])
    assert lost["status"] == "more" and lost["reps"] == 7


def test_growth_follows_the_ci_and_never_passes_max():
    wide = decide_one([100, 110, 90, 105, 95, 100], {**RULES, "ci_halfwidth_pct": 0.001})
    assert wide["reps"] == RULES["max"]


def test_a_cell_without_values_gets_one_more():
    decision = convergence.decide(values({}), ["lost/w"], {"lost/w": 6}, RULES)
    assert decision["cells"]["lost/w"]["status"] == "more" and decision["cells"]["lost/w"]["reps"] == 7


def test_the_floor_is_the_fewest_values_with_a_95_percent_ci():
    assert convergence.MIN_REPETITIONS == stats.min_values_for_ci(0.95) == 6


def test_policy_from_a_number_is_fixed():
    assert convergence.policy({"repetitions": 4}) == {"min": 4, "max": 4, "ci_halfwidth_pct": None, "budget_h": None}
    assert not convergence.adaptive({"repetitions": 4})
    assert convergence.adaptive({"repetitions": {"min": 6, "max": 9, "ci_halfwidth_pct": 3}})


def test_a_budget_gives_the_widest_cis_their_repetitions_first_and_stops_the_rest():
    rng = np.random.default_rng(2)
    data = {"wide/w": list(100 + rng.normal(0, 60, 6)), "narrower/w": list(100 + rng.normal(0, 15, 6)),
            "unknown/w": []}
    measured = {c: 6 for c in data}
    rules = {**RULES, "budget_h": 1.0}
    cost = {c: 100.0 for c in data}
    free = convergence.decide(values(data), list(data), measured, RULES)["cells"]
    assert all(free[c]["status"] == "more" for c in data)
    # 1 h budget, 3500 s spent: 100 s left, one repetition of one cell; a cell without values
    # has the widest (unknown) CI, so it gets it
    decision = convergence.decide(values(data), list(data), measured, rules, spent_s=3500, cost_s=cost)
    assert decision["cells"]["unknown/w"] == {**free["unknown/w"], "reps": 7}
    for cell in ("wide/w", "narrower/w"):
        assert decision["cells"][cell]["reps"] == 6
        assert decision["cells"][cell]["status"] == "not_converged" and decision["cells"][cell]["budget_spent"]
    assert not decision["done"]  # unknown/w measures its repetition, then the next round decides
    spent = convergence.decide(values(data), list(data), measured, rules, spent_s=3600, cost_s=cost)
    assert spent["done"] and all(d["budget_spent"] for d in spent["cells"].values())
    # enough budget: the same decision as without one
    assert convergence.decide(values(data), list(data), measured, rules, spent_s=0, cost_s=cost)["cells"] == free


def test_the_checkpoint_counts_the_budget_from_the_first_target_of_the_results(tmp_path):
    import json
    import time

    from seconetbench import pipeline

    raw = tmp_path / "raw" / "s" / "w" / "rep1"
    raw.mkdir(parents=True)
    (raw / "meta.json").write_text(json.dumps({"started_at": time.time() - 2 * 3600}))
    rules = {**RULES, "budget_h": 1.0}
    decision = pipeline.convergence_round([], {"s/w": 6}, rules, tmp_path / "round0.json", {"s/w": 10.0}, tmp_path)
    assert decision["done"] and decision["cells"]["s/w"]["budget_spent"]  # two hours spent of one
    roomy = pipeline.convergence_round([], {"s/w": 6}, {**rules, "budget_h": 3.0}, tmp_path / "round0.json",
                                       {"s/w": 10.0}, tmp_path)
    assert roomy["cells"]["s/w"]["status"] == "more" and roomy["cells"]["s/w"]["reps"] == 7
    assert json.loads((tmp_path / "round0.json").read_text())["cells"]["s/w"]["reps"] == 7  # what the workflow reads
