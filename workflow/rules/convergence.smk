# Adaptive repetitions (config `repetitions: {min, max, ci_halfwidth_pct}`): after the minimum,
# one checkpoint per round decides which setup x workload cells need more repetitions; the input
# functions below walk the rounds, so every repetition stays a target file.
import json
from pathlib import Path

from seconetbench import convergence
from seconetbench import plan as seconet_plan

REP_POLICY = convergence.policy(CONFIG)
ADAPTIVE = convergence.adaptive(CONFIG)
CELLS = [f"{s.id}/{w.name}" for s in SWEEP.setups for w in SWEEP.workloads]
# repetitions.budget_h: seconds per repetition of each cell, as `seconetbench plan` estimates them
CELL_COST_S = seconet_plan.cell_costs(SWEEP) if REP_POLICY["budget_h"] else None


def parsed_files(reps_by_cell, kind=None):
    """Parsed cells (all their repetitions): the workloads' own tables (of *kind*), or the
    cells' *kind* tables when it is a kind of the target as a whole."""
    if kind in TARGET_KINDS:
        return [f"{RESULTS}/parsed/{cell}/reps{count}.{kind}.parquet" for cell, count in reps_by_cell.items()]
    return [
        f"{RESULTS}/parsed/{cell}/reps{count}.parquet"
        for cell, count in reps_by_cell.items()
        if kind is None or TABLE_OF_WORKLOAD[cell.split("/")[1]] == kind
    ]


def decision(round_):
    return json.loads(Path(checkpoints.convergence_round.get(round=round_).output[0]).read_text())


def reps_before_round(round_):
    reps = {cell: REP_POLICY["min"] for cell in CELLS}
    for earlier in range(round_):
        reps = {cell: d["reps"] for cell, d in decision(earlier)["cells"].items()}
    return reps


def final_round():
    round_ = 0
    while not decision(round_)["done"]:
        round_ += 1
    return round_


def final_reps():
    if not ADAPTIVE:
        return {cell: REP_POLICY["min"] for cell in CELLS}
    return {cell: d["reps"] for cell, d in decision(final_round())["cells"].items()}


def final_decision_file(wildcards):
    return [f"{RESULTS}/convergence/round{final_round()}.json"] if ADAPTIVE else []


checkpoint convergence_round:
    input:
        lambda wildcards: parsed_files(reps_before_round(int(wildcards.round))),
    output:
        f"{RESULTS}/convergence/round{{round}}.json",
    params:
        measured=lambda wildcards: reps_before_round(int(wildcards.round)),
        policy=REP_POLICY,
        cost_s=CELL_COST_S,
    log:
        f"{RESULTS}/logs/convergence/round{{round}}.log",
    script:
        "../scripts/convergence_round.py"
