# Adaptive repetitions (config `repetitions: {min, max, ci_halfwidth_pct}`): after the minimum,
# one checkpoint per round decides which setup x workload cells need more repetitions; the input
# functions below walk the rounds, so every repetition stays a target file.
import json
from pathlib import Path

from seconetbench import convergence
from seconetbench.tables import parsed_name

REP_POLICY = convergence.policy(CONFIG)
ADAPTIVE = convergence.adaptive(CONFIG)
CELLS = [f"{s.id}/{w.name}" for s in SWEEP.setups for w in SWEEP.workloads]


def parsed_files(reps_by_cell, kinds=TABLE_KINDS):
    """The parsed files of table *kinds* of every setup, holding the repetitions *reps_by_cell*
    of its cells (rule parse_setup)."""
    files = []
    for setup in SWEEP.setups:
        name = parsed_name([reps_by_cell[f"{setup.id}/{workload}"] for workload in WORKLOAD_NAMES])
        files += [f"{RESULTS}/parsed/{setup.id}/reps{name}.{kind}.parquet" for kind in kinds]
    return files


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
        # the workloads' own tables: what the stopping rule reads
        lambda wildcards: parsed_files(reps_before_round(int(wildcards.round)), WORKLOAD_KINDS),
    output:
        f"{RESULTS}/convergence/round{{round}}.json",
    params:
        measured=lambda wildcards: reps_before_round(int(wildcards.round)),
        policy=REP_POLICY,
        # repetitions.budget_h: the round prices each cell's repetition as `seconetbench plan` does
        config=CONFIG,
    log:
        f"{RESULTS}/logs/convergence/round{{round}}.log",
    script:
        "../scripts/convergence_round.py"
