"""Know the cost first: what a sweep will build and how long it will take, before it runs.

The counts come from the sweep's own expansion (:func:`sweep.expand` with the machine checked, as
the workflow expands it), so the plan counts the targets Snakemake would build: excluded setups
are not counted, and targets whose raw directory exists are not measured again. The time is

    invocation + deploys + targets (each workload's nominal time + its overhead + the gap to
    the next target) + parsing (each parse job's start-up + each target it parses)
    + convergence rounds + finish

where a workload's nominal time comes from its own parameters (:meth:`Workload.nominal_s`: a
duration, a count times an interval) and every other term is a cost measured on this machine,
read from ``data/overheads.yaml`` (written by ``bench/plan_slice.py --calibrate --write``; no
cost is a number in this code). With adaptive repetitions the estimate is a range: every cell at
``min`` (one convergence round) up to every cell at ``max`` (reached in one extra round), the
upper end capped by ``repetitions.budget_h`` where set. Testbed groups (ssh, vm) measure side by
side: the deploys and targets are divided among them. docs/performance.md, "Know the cost first", says how the model was checked.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from seconetbench.spec import SetupSpec, TargetId
from seconetbench.sweep import Sweep
from seconetbench.testbed.groups import group_count
from seconetbench.workloads import get_workload
from seconetbench.workloads.base import Workload

OVERHEADS_FILE = "overheads.yaml"
CALIBRATE = "bench/plan_slice.py --calibrate --write"


def load_overheads(path: str | Path | None = None) -> dict[str, Any]:
    """The measured overheads (data/overheads.yaml of the package, or *path*)."""
    import yaml

    text = Path(path).read_text() if path else (resources.files("seconetbench") / "data" / OVERHEADS_FILE).read_text()
    return yaml.safe_load(text)


def family(setup: SetupSpec) -> str:
    """What a deploy's cost depends on besides the number of containers: scenario, solution or
    tunnel, filter (e.g. ``multi-wireguard-nftables``)."""
    return "-".join(setup.id.split("-")[:3])


def cost_group(workload: Workload) -> str:
    return workload.cost_group or workload.kind


def linear(coefficients: dict[str, float], drivers: dict[str, float]) -> float:
    """base_s plus each driver times its measured cost per unit (a driver without one costs 0)."""
    return coefficients.get("base_s", 0.0) + sum(coefficients.get(name, 0.0) * value for name, value in drivers.items())


def deploy_s(setup: SetupSpec, overheads: dict[str, Any]) -> tuple[float, bool]:
    """Seconds to replace the previous deployment by *setup*'s (teardown, deploy, isolation
    check), and whether its own family was measured (else the scenario's average)."""
    deploy = overheads["deploy"]
    measured = deploy["families"].get(family(setup))
    fit = measured or deploy["scenarios"][setup.scenario]
    return fit["base_s"] + fit["per_container_s"] * setup.containers, measured is not None


def target_s(workload: Workload, setup: SetupSpec, overheads: dict[str, Any]) -> tuple[float, bool]:
    """Seconds of one target: the workload's nominal time, the overhead measured for its kind
    (or group) on this machine and the gap to the next target. Whether the overhead was measured."""
    coefficients = overheads["workloads"].get(cost_group(workload))
    extra = linear(coefficients, workload.cost_drivers(setup)) if coefficients else 0.0
    return workload.nominal_s(setup) + max(extra, 0.0) + overheads["between_targets_s"], coefficients is not None


def deployed_setups(order: list[TargetId], reuse: bool) -> list[str]:
    """The setup of each deploy a sweep measured in *order* makes: one per target without
    reuse, else one whenever the setup changes from one target to the next."""
    if not reuse:
        return [t.setup for t in order]
    return [t.setup for previous, t in zip([None, *order], order, strict=False)
            if previous is None or previous.setup != t.setup]


@dataclass
class Scenario:
    """One end of the estimate: how many repetitions each cell gets, in how many rounds."""

    reps: int
    rounds: int  # convergence rounds (checkpoint jobs); 0 without adaptive repetitions


def estimate(cfg: dict[str, Any], sweep: Sweep, overheads: dict[str, Any],
             results_dir: Path | None = None) -> dict[str, Any]:
    """The plan of *sweep* (expanded from the validated *cfg*) with *overheads*: counts and the
    estimated seconds, for ``min`` and ``max`` repetitions where they differ."""
    from seconetbench import convergence

    policy = convergence.policy(cfg)
    adaptive = convergence.adaptive(cfg)
    results = Path(results_dir if results_dir is not None else cfg["results_dir"])
    order_cfg = cfg["run_order"]
    reuse = cfg["testbed"]["reuse_deployment"]
    workloads = {w.name: get_workload(w) for w in sweep.workloads}
    setups = {s.id: s for s in sweep.setups}
    cells = len(sweep.setups) * len(sweep.workloads)

    unmeasured_families = sorted({family(s) for s in sweep.setups if not deploy_s(s, overheads)[1]})
    unmeasured_kinds = sorted({cost_group(w) for w in workloads.values()} - set(overheads["workloads"]))

    groups = group_count(cfg["testbed"])

    def measured(target: TargetId) -> bool:
        return (results / "raw" / target.path).is_dir()

    per_target = cell_costs(sweep, overheads)

    def seconds_of(targets: list[TargetId], deploys: list[str]) -> tuple[float, float]:
        measuring = sum(per_target[f"{t.setup}/{t.workload}"] for t in targets)
        return measuring, sum(deploy_s(setups[s], overheads)[0] for s in deploys)

    ends = {"min": Scenario(policy["min"], 1 if adaptive else 0)}
    if adaptive:
        ends["max"] = Scenario(policy["max"], 2)
    report: dict[str, Any] = {}
    for end, scenario in ends.items():
        # the workflow's own order: the planned one, then what convergence rounds add (a setup's
        # added targets back to back); targets already measured are skipped and cut no run
        order = [t for t in sweep.measurement_order(order_cfg["mode"], order_cfg["seed"],
                                                   {f"{s.id}/{w.name}": scenario.reps for s in sweep.setups
                                                    for w in sweep.workloads})
                 if not measured(t)]
        deploys = deployed_setups(order, reuse)
        measuring, deploying = seconds_of(order, deploys)
        # a setup is parsed once per repetition counts its cells reach, every target of it: after
        # min, and again after max
        again = scenario.reps > policy["min"]
        parse_jobs = len(sweep.setups) * (1 + again)
        parsed_targets = cells * (policy["min"] + (scenario.reps if again else 0))
        parsing = parse_jobs * overheads["parse_job_s"] + parsed_targets * overheads.get("parse_target_s", 0.0)
        row = {"repetitions": scenario.reps, "targets": len(order), "deploys": len(deploys),
               "parse_jobs": parse_jobs, "convergence_rounds": scenario.rounds,
               "measuring_s": round(measuring, 1), "deploying_s": round(deploying, 1), "parsing_s": round(parsing, 1)}
        sweeping = (deploying + measuring) / groups  # testbed groups measure side by side
        if end == "max" and policy["budget_h"]:
            # rounds add repetitions only while their planned cost fits in the budget, counted
            # from the first target: the min repetitions are measured whatever it says
            capped = min(sweeping, max(report["min"]["sweep_s"], policy["budget_h"] * 3600))
            row.update(uncapped_s=round(sweeping, 1), capped_by_budget=capped < sweeping)
            sweeping = capped
        row["sweep_s"] = round(sweeping, 1)
        # a convergence round is a job like a parse job
        rounds_s = scenario.rounds * overheads["parse_job_s"]
        total = overheads["invocation_s"] + sweeping + parsing + rounds_s + overheads["finish_s"]
        report[end] = {**row, "estimate_s": round(total, 1)}
    low = report["min"]
    plan = {
        "config": {"results_dir": str(results), "backend": cfg["testbed"]["backend"], "testbed_groups": groups,
                   "run_order": order_cfg["mode"], "reuse_deployment": reuse, "repetitions": policy},
        "setups": len(sweep.setups), "excluded_setups": len(sweep.excluded), "workloads": len(sweep.workloads),
        "cells": cells, "already_measured": sum(map(measured, sweep.targets())),
        "targets": low["targets"], "deploys": low["deploys"], "parse_jobs": low["parse_jobs"],
        "estimate_s": low["estimate_s"], "adaptive": adaptive, "ends": report,
        "per_workload_s": per_workload(sweep, workloads, overheads),
        "overheads": {"measured": overheads.get("measured"), "regenerate": overheads.get("regenerate", CALIBRATE),
                      "unmeasured_deploy_families": unmeasured_families, "unmeasured_workloads": unmeasured_kinds},
        "notes": notes(cfg, overheads, unmeasured_families, unmeasured_kinds),
    }
    if adaptive:
        plan["estimate_s_min"] = low["estimate_s"]
        plan["estimate_s_max"] = report["max"]["estimate_s"]
    return plan


def cell_costs(sweep: Sweep, overheads: dict[str, Any] | None = None) -> dict[str, float]:
    """Seconds one more repetition of each cell ('setup/workload') costs: its target, without a
    deploy (a setup's added targets run back to back). What repetitions.budget_h spends."""
    overheads = overheads or load_overheads()
    workloads = [(w.name, get_workload(w)) for w in sweep.workloads]
    return {f"{s.id}/{name}": round(target_s(w, s, overheads)[0], 3) for s in sweep.setups for name, w in workloads}


def budget_cell_costs(cfg: dict[str, Any]) -> dict[str, float] | None:
    """:func:`cell_costs` of the sweep *cfg* (a validated config) asks for, when its
    repetitions.budget_h is set (what the budget spends); None without a budget. The
    convergence round asks for it when it decides, not the workflow when it is planned (0.3 s
    for the 1,404 cells of config/full.yaml on every invocation, `snakemake -n` included)."""
    from seconetbench import convergence
    from seconetbench.sweep import expand

    return cell_costs(expand(cfg)) if convergence.policy(cfg)["budget_h"] else None


def per_workload(sweep: Sweep, workloads: dict[str, Workload], overheads: dict[str, Any]) -> dict[str, float]:
    """Seconds one repetition of each workload costs over all setups: where the time goes."""
    return {name: round(sum(target_s(w, s, overheads)[0] for s in sweep.setups), 1) for name, w in workloads.items()}


def notes(cfg: dict[str, Any], overheads: dict[str, Any], families: list[str], kinds: list[str]) -> list[str]:
    said = []
    backend = cfg["testbed"]["backend"]
    if backend != overheads.get("backend", "netns"):
        said.append(f"overheads were measured with the {overheads.get('backend', 'netns')} backend; "
                    f"{backend}'s deploys and targets cost differently (run {CALIBRATE} with this config)")
    if families:
        listed = ", ".join(families[:4]) + (f" and {len(families) - 4} more" if len(families) > 4 else "")
        said.append(f"no deploy measured for {listed}: the scenario's average used")
    if kinds:
        said.append(f"no overhead measured for {', '.join(kinds)}: its nominal time only")
    if cfg["testbed"]["noise"]["remeasure"]:
        said.append("testbed.noise.remeasure measures each noisy target twice: up to 2x on a busy machine")
    return said


def hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"


def format_plan(plan: dict[str, Any]) -> str:
    """The plan as text: counts, then the estimate (a range where adaptive)."""
    c = plan["config"]
    reps = c["repetitions"]
    lines = [(f"setups      {plan['setups']} runnable ({plan['excluded_setups']} excluded), "
              f"{plan['workloads']} workloads, {plan['cells']} cells"),
             (f"order       {c['run_order']}, reuse_deployment {str(c['reuse_deployment']).lower()}, "
              f"backend {c['backend']}, testbed groups {c['testbed_groups']}, results {c['results_dir']}")]
    if plan["already_measured"]:
        lines.append(f"measured    {plan['already_measured']} targets already in results (not counted)")
    header = f"{'':12}{'reps':>6}{'targets':>9}{'deploys':>9}{'parse jobs':>12}{'measuring':>11}{'deploying':>11}{'estimate':>10}"
    lines.append(header)
    for end, row in plan["ends"].items():
        label = {"min": "min" if plan["adaptive"] else "sweep", "max": "max"}[end]
        lines.append(f"{label:12}{row['repetitions']:>6}{row['targets']:>9}{row['deploys']:>9}{row['parse_jobs']:>12}"
                     f"{hours(row['measuring_s']):>11}{hours(row['deploying_s']):>11}{hours(row['estimate_s']):>10}")
    if plan["adaptive"]:
        high = plan["ends"]["max"]
        upper = (f"the budget of {reps['budget_h']:g} h spent; every cell at max {reps['max']} would take "
                 f"{hours(high['estimate_s'] - high['sweep_s'] + high['uncapped_s'])}"
                 if high.get("capped_by_budget") else f"every cell at max {reps['max']}")
        lines.append(f"estimate    {hours(plan['estimate_s_min'])} (every cell at min {reps['min']}) to "
                     f"{hours(plan['estimate_s_max'])} ({upper}); CI target ±{reps['ci_halfwidth_pct']} %")
    else:
        lines.append(f"estimate    {hours(plan['estimate_s'])}")
    slowest = sorted(plan["per_workload_s"].items(), key=lambda item: -item[1])
    lines.append("one repetition of each workload over all setups: "
                 + ", ".join(f"{name} {hours(s)}" for name, s in slowest))
    measured = plan["overheads"]["measured"] or {}
    lines.append(f"overheads   measured {measured.get('at', '?')} on {measured.get('machine', '?')}; "
                 f"regenerate: {plan['overheads']['regenerate']}")
    lines += [f"note        {note}" for note in plan["notes"]]
    return "\n".join(lines)


def plan_config(cfg: dict[str, Any], overheads: dict[str, Any] | None = None) -> dict[str, Any]:
    """The plan of the validated *cfg*, expanded as the workflow expands it (this machine's
    exclusions; setups with raw results kept)."""
    from seconetbench.sweep import expand

    return estimate(cfg, expand(cfg, check_machine=True, keep_measured=True), overheads or load_overheads())


# ---------------------------------------------------------------------------------- calibration
def fit_linear(rows: list[tuple[dict[str, float], float]]) -> dict[str, float]:
    """base_s and a non-negative cost per unit of each driver, least squares over *rows*
    (drivers, seconds). A driver that does not vary in the rows cannot be told from base_s and
    gets no cost of its own; a negative cost is dropped and the rest fitted again."""
    import numpy as np

    if not rows:
        return {}
    names = sorted({name for drivers, _ in rows for name in drivers})
    names = [n for n in names if len({drivers.get(n, 0.0) for drivers, _ in rows}) > 1]
    y = np.array([seconds for _, seconds in rows], dtype=float)
    while True:
        x = np.array([[1.0] + [drivers.get(n, 0.0) for n in names] for drivers, _ in rows])
        solution, *_ = np.linalg.lstsq(x, y, rcond=None)
        negative = [n for n, value in zip(names, solution[1:], strict=True) if value < 0]
        if not negative:
            break
        names = [n for n in names if n not in negative]
    fitted = {"base_s": max(float(solution[0]), 0.0)}
    fitted.update({n: float(v) for n, v in zip(names, solution[1:], strict=True)})
    return {k: round(v, 6) for k, v in fitted.items()}


def residuals(metas: list[dict[str, Any]]) -> dict[str, list[tuple[dict[str, float], float]]]:
    """Per cost group: (drivers, seconds beyond the nominal time) of every measured target, from
    the targets' meta.json (its workload and setup as measured, its duration_s)."""
    from seconetbench.spec import WorkloadSpec

    groups: dict[str, list[tuple[dict[str, float], float]]] = {}
    for meta in metas:
        recorded = meta["workload"]  # WorkloadSpec.to_dict(): name, kind and the parameters
        spec = WorkloadSpec(name=recorded["name"], kind=recorded["kind"],
                            params={k: v for k, v in recorded.items() if k not in ("name", "kind")})
        workload = get_workload(spec)
        setup = setup_of(meta)
        extra = meta["duration_s"] - workload.nominal_s(setup)
        groups.setdefault(cost_group(workload), []).append((workload.cost_drivers(setup), extra))
    return groups


def setup_of(meta: dict[str, Any]) -> SetupSpec:
    return SetupSpec.from_dict(meta["setup"])


def gaps(metas: list[dict[str, Any]]) -> list[tuple[dict[str, Any], float, bool]]:
    """Per target after the first (in the order measured): its meta, the seconds since the
    previous target ended, and whether its deployment was new."""
    ordered = sorted(metas, key=lambda m: m["started_at"])
    return [(b, b["started_at"] - a["finished_at"], not b["deployment"]["reused"])
            for a, b in itertools.pairwise(ordered)]


def fit_overheads(workload_run: dict[str, Any], deploy_run: dict[str, Any]) -> dict[str, Any]:
    """The overheads file's numbers from two calibration runs of the whole workflow. Each run is
    ``{"metas": [meta.json, ...], "started": t, "parsed": t, "ended": t, "parse_jobs": n}``
    (wall clock: the Snakemake invocation's start and end, and when its last parse job wrote):
    *workload_run* measures every workload on a few setups (the deployment reused between a
    setup's targets), *deploy_run* one short target on many setups (a deploy before each)."""
    import statistics

    runs = (workload_run, deploy_run)
    between = statistics.median(gap for _, gap, new in gaps(workload_run["metas"]) if not new)
    by_family: dict[str, list[tuple[dict[str, float], float]]] = {}
    by_scenario: dict[str, list[tuple[dict[str, float], float]]] = {}
    for run in runs:
        for meta, gap, new in gaps(run["metas"]):
            if new:  # the previous setup torn down, this one deployed and its isolation proven
                setup = setup_of(meta)
                row = ({"per_container_s": setup.containers}, gap - between)
                by_family.setdefault(family(setup), []).append(row)
                by_scenario.setdefault(setup.scenario, []).append(row)

    def deploy_fit(rows: list[tuple[dict[str, float], float]], scenario: str | None = None) -> dict[str, float]:
        if scenario and len({drivers["per_container_s"] for drivers, _ in rows}) < 2:
            # one container count (e.g. the run's first deploy had no gap): the scenario's slope
            slope = scenarios[scenario]["per_container_s"]
            base = statistics.mean(seconds - slope * drivers["per_container_s"] for drivers, seconds in rows)
            return {"base_s": round(max(base, 0.0), 6), "per_container_s": slope}
        fitted = fit_linear(rows)
        return {"base_s": fitted["base_s"], "per_container_s": fitted.get("per_container_s", 0.0)}

    scenarios = {k: deploy_fit(v) for k, v in sorted(by_scenario.items())}
    deploy = {"scenarios": scenarios,
              "families": {k: deploy_fit(v, k.split("-")[0]) for k, v in sorted(by_family.items())}}
    overheads = {"between_targets_s": round(between, 4), "deploy": deploy,
                 "workloads": {group: fit_linear(rows) for group, rows in sorted(residuals(workload_run["metas"]).items())}}

    def first_deploy(run: dict[str, Any]) -> float:
        return deploy_s(setup_of(min(run["metas"], key=lambda m: m["started_at"])), overheads)[0]

    # Snakemake runs the parse jobs after the last target (a target holds every core) and the
    # tables, figures and findings after the last parse job
    last_target = {id(run): max(m["finished_at"] for m in run["metas"]) for run in runs}
    overheads.update(fit_parsing([(run["parse_jobs"], len(run["metas"]), run["parsed"] - last_target[id(run)])
                                  for run in runs]))
    overheads["finish_s"] = round(statistics.mean(run["ended"] - run["parsed"] for run in runs), 3)
    starts = [min(m["started_at"] for m in run["metas"]) - run["started"] - first_deploy(run) for run in runs]
    overheads["invocation_s"] = round(max(statistics.mean(starts), 0.0), 3)
    return overheads


def fit_parsing(rows: list[tuple[int, int, float]]) -> dict[str, float]:
    """parse_job_s (a job's start-up) and parse_target_s (each target it parses) from *rows* of
    (parse jobs, targets parsed, seconds of parsing), seconds = jobs x parse_job_s + targets x
    parse_target_s, least squares; a term that comes out negative is dropped and the other
    fitted alone (a job per setup parses a setup's every target: both terms count)."""
    import numpy as np

    x = np.array([[jobs, targets] for jobs, targets, _ in rows], dtype=float)
    y = np.array([max(seconds, 0.0) for _, _, seconds in rows], dtype=float)
    (per_job, per_target), *_ = np.linalg.lstsq(x, y, rcond=None)
    if per_job < 0 or per_target < 0:
        alone = 0 if per_target < 0 else 1  # the term that stays
        share = float(y.sum() / x[:, alone].sum())
        per_job, per_target = (share, 0.0) if alone == 0 else (0.0, share)
    return {"parse_job_s": round(float(per_job), 4), "parse_target_s": round(float(per_target), 4)}


def ratio_verdict(measured_s: float, estimated_s: float, tolerance: float = 0.25) -> dict[str, Any]:
    """measured / estimated and whether it is within *tolerance* of 1."""
    ratio = measured_s / estimated_s if estimated_s else math.inf
    return {"measured_s": round(measured_s, 1), "estimated_s": round(estimated_s, 1), "ratio": round(ratio, 3),
            "within": abs(ratio - 1) <= tolerance}
