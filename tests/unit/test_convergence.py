"""Convergence decisions: more repetitions only for the cells whose CI is still too wide."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from seconetbench import convergence

pytestmark = pytest.mark.unit

RULES = {"min": 3, "max": 10, "ci_halfwidth_pct": 5}


def values(cells: dict[str, list[float]]) -> pd.DataFrame:
    rows = [{"setup": cell.split("/")[0], "workload": cell.split("/")[1], "rep": i + 1, "value": v}
            for cell, vals in cells.items() for i, v in enumerate(vals)]
    return pd.DataFrame(rows)


def test_only_the_noisy_cell_gets_more_repetitions():
    rng = np.random.default_rng(1)
    data = {"steady/latency": list(100 + rng.normal(0, 0.1, 3)), "noisy/latency": list(100 + rng.normal(0, 40, 3))}
    decision = convergence.decide(values(data), list(data), {c: 3 for c in data}, RULES)
    assert decision["cells"]["steady/latency"]["status"] == "converged"
    assert decision["cells"]["steady/latency"]["reps"] == 3
    assert decision["cells"]["noisy/latency"]["status"] == "more"
    assert 4 <= decision["cells"]["noisy/latency"]["reps"] <= RULES["max"]
    assert not decision["done"]


def test_a_cell_at_max_is_flagged_not_converged():
    data = {"noisy/tp": [10, 90, 50, 20, 80, 30, 70, 40, 60, 55]}
    decision = convergence.decide(values(data), list(data), {"noisy/tp": 10}, RULES)
    assert decision["cells"]["noisy/tp"] == {**decision["cells"]["noisy/tp"], "status": "not_converged", "reps": 10}
    assert decision["done"]


def test_growth_follows_the_ci_and_never_passes_max():
    data = {"c/w": [100, 110, 90]}
    wide = convergence.decide(values(data), ["c/w"], {"c/w": 3}, {**RULES, "ci_halfwidth_pct": 0.001})
    assert wide["cells"]["c/w"]["reps"] == RULES["max"]


def test_a_cell_without_values_gets_one_more():
    decision = convergence.decide(values({}), ["lost/w"], {"lost/w": 3}, RULES)
    assert decision["cells"]["lost/w"]["status"] == "more" and decision["cells"]["lost/w"]["reps"] == 4


def test_policy_from_a_number_is_fixed():
    assert convergence.policy({"repetitions": 4}) == {"min": 4, "max": 4, "ci_halfwidth_pct": None}
    assert not convergence.adaptive({"repetitions": 4})
    assert convergence.adaptive({"repetitions": {"min": 2, "max": 5, "ci_halfwidth_pct": 3}})
