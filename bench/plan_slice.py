#!/usr/bin/env python3
"""Does `seconetbench plan` tell the truth? Run a slice of a sweep and compare (issue 18).

Default: from the config (config/full.yaml) take every --every-th runnable setup (from --offset),
all its workloads at their configured durations, --reps repetitions; ask the plan for the slice's
estimate, run the slice with Snakemake (--cores 2, results under a temporary directory, run prefix
scnps) and print measured / estimated. The slice is built by naming its parsed setup files as
targets, so it runs deploys, targets and parse jobs but not the sweep's tables and figures: the
estimate it is compared with leaves out finish_s (tables, figures, findings) accordingly.

--calibrate: measure the overheads the plan uses and print them; with --write, store them in
src/seconetbench/data/overheads.yaml. Two runs of the whole workflow of the config, shortened
(about 15 min here): every workload (durations cut to 3 s, the flow counts kept up to 20) on one
single-host family at every container count and one multi-host family at the smallest and largest,
the deployment reused between targets; then every family at the smallest and largest container
count with one 2-ping target each, a deploy before every target (seconetbench.plan.fit_overheads).

Holds the host lock (runner.HostLock, waited for as bench/parity.py does) for the whole run, and points the runs' own per-target
locks at a private file, so that no other measurement or privileged test shares the machine.
Needs root. Usage:
  bench/plan_slice.py [--config config/full.yaml] [--every 60] [--offset 0] [--reps 1] [--keep DIR]
  bench/plan_slice.py --calibrate [--write] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from parity import host_lock  # bench/ is on sys.path when this script runs

from seconetbench import config, plan
from seconetbench.meta import META_FILE, read_meta
from seconetbench.sweep import Sweep, expand
from seconetbench.workloads import get_workload

REPO = Path(__file__).resolve().parents[1]
OVERHEADS = REPO / "src/seconetbench/data" / plan.OVERHEADS_FILE
SHORT_S = 3  # calibration durations: the overheads, not the traffic, are what is measured
CALIBRATION_FLOWS = 20  # enough flows per pair to fit ITGSend's cost of ending each one


def snakemake(workdir: Path, configs: list[Path], targets: list[str]) -> dict[str, Any]:
    """Run Snakemake on *configs* (into *workdir*) with the host lock held by this process; its
    wall clock and exit code."""
    env = {**os.environ, "SECONETBENCH_LOCK": str(workdir / "measure.lock")}
    started = time.time()
    run = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "2", "--snakefile", str(REPO / "Snakefile"),
                          "--directory", str(workdir), "--configfile", *map(str, configs), "--", *targets],
                         capture_output=True, text=True, env=env, check=False)
    ended = time.time()
    if run.returncode != 0:
        print(run.stderr[-4000:], file=sys.stderr)
        raise SystemExit(f"the run failed (rc {run.returncode}); its files: {workdir}")
    return {"started": started, "ended": ended}


def collected(results: Path, run: dict[str, Any]) -> dict[str, Any]:
    """The run's meta.json files, and when its last parse job wrote (its outputs' mtime)."""
    metas = [read_meta(p.parent) for p in results.glob(f"raw/*/*/rep*/{META_FILE}")]
    parsed = list(results.glob("parsed/*/reps*.parquet"))
    return {**run, "metas": metas, "parsed": max(p.stat().st_mtime for p in parsed),
            "parse_jobs": len({(p.parent, p.name.split(".")[0]) for p in parsed})}  # a job per setup and reps name


def overlay(workdir: Path, name: str, values: dict[str, Any]) -> Path:
    path = workdir / f"{name}.yaml"
    path.write_text(yaml.safe_dump(values, sort_keys=False))
    return path


def machine_note() -> dict[str, Any]:
    return {"machine": f"{platform.node()} {os.cpu_count()} CPUs, kernel {platform.release()}",
            "load_1min": round(os.getloadavg()[0], 2)}


# --------------------------------------------------------------------------------- calibration
def shortened(workloads: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The config's workloads with their durations cut to SHORT_S and at most CALIBRATION_FLOWS
    flows; every other parameter (what drives the overheads) kept."""
    short = {}
    for name, params in workloads.items():
        changed = {}
        if "duration_s" in params:
            changed["duration_s"] = min(params["duration_s"], SHORT_S)
        if "count" in params and "interval_s" in params:
            changed["count"] = max(2, min(params["count"], round(SHORT_S / params["interval_s"])))
        if "flows" in params and params["kind"] == "tcp100":
            changed["flows"] = min(params["flows"], CALIBRATION_FLOWS)
        if "length_scale" in params:
            changed["length_scale"] = min(params["length_scale"], 0.02)
        if "probes" in params:
            changed["probes"] = min(params["probes"], 5)
        short[name] = changed
    return short


def calibration_overlays(cfg: dict[str, Any], workdir: Path) -> tuple[Path, Path]:
    single, multi = cfg["sweep"].get("single"), cfg["sweep"].get("multi")
    common = {"repetitions": 1, "run_order": {"mode": "grouped", "seed": 1},
              "testbed": {"prefix": "scnpc"}}
    sweep_a: dict[str, Any] = {}
    if single:
        filters = [f for f in single["filters"] if f != "none"][:1] or single["filters"][:1]
        sweep_a["single"] = {"solutions": single["solutions"][:1], "filters": filters}
    if multi:
        containers = sorted(multi["containers"])
        sweep_a["multi"] = {"tunnels": multi["tunnels"][:1], "filters": multi["filters"][:1],
                            "containers": sorted({containers[0], containers[-1]})}
    workloads_run = overlay(workdir, "calibrate-workloads", {
        **common, "results_dir": str(workdir / "workloads"), "sweep": sweep_a,
        "workloads": shortened(cfg["workloads"])})
    sweep_b: dict[str, Any] = {"workloads": ["calibration_ping"]}
    for scenario in ("single", "multi"):
        if cfg["sweep"].get(scenario):
            containers = sorted(cfg["sweep"][scenario]["containers"])
            sweep_b[scenario] = {"containers": sorted({containers[0], containers[-1]})}
    deploys_run = overlay(workdir, "calibrate-deploys", {
        **common, "results_dir": str(workdir / "deploys"), "sweep": sweep_b,
        "workloads": {"calibration_ping": {"kind": "latency", "count": 2, "interval_s": 0.05}}})
    return workloads_run, deploys_run


CALIBRATION_RUNS = ("workloads", "deploys")
RUNS_FILE = "runs.json"  # the runs' wall clocks, beside their results: --refit reads them


def calibrate(config_path: Path, workdir: Path, write: bool, runs_to_make: tuple[str, ...] = CALIBRATION_RUNS) -> int:
    """Make the calibration runs *runs_to_make* in *workdir* (the others: those kept there by an
    earlier --calibrate --keep, with their clocks in runs.json), fit them and print the file."""
    cfg = config.load_files(config_path)
    kept = workdir / RUNS_FILE
    clocks = json.loads(kept.read_text()) if kept.exists() else {"note": {}}
    if runs_to_make:
        clocks["note"]["before"] = machine_note()
    for name, extra in zip(CALIBRATION_RUNS, calibration_overlays(cfg, workdir), strict=True):
        if name in runs_to_make:
            shutil.rmtree(workdir / name, ignore_errors=True)
            print(f"calibration run '{name}' ...", file=sys.stderr, flush=True)
            clocks[name] = snakemake(workdir, [config_path, extra], [])
            print(f"  {clocks[name]['ended'] - clocks[name]['started']:.0f} s", file=sys.stderr, flush=True)
    if runs_to_make:
        clocks["note"]["after"] = machine_note()
        kept.write_text(json.dumps(clocks, indent=1))
    runs = [collected(workdir / name, clocks[name]) for name in CALIBRATION_RUNS]
    fitted = plan.fit_overheads(*runs)
    before, after = clocks["note"]["before"], clocks["note"]["after"]
    measured = {"at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(max(c["ended"] for c in map(clocks.get, CALIBRATION_RUNS)))),
                "machine": before["machine"],
                "config": str(config_path.relative_to(REPO) if config_path.is_relative_to(REPO) else config_path),
                "load_1min": [before["load_1min"], after["load_1min"]],
                "targets": [len(r["metas"]) for r in runs]}
    document = {"regenerate": f".venv/bin/python {plan.CALIBRATE}", "measured": measured, "backend": cfg["testbed"]["backend"],
                **fitted}
    text = HEADER + yaml.safe_dump(document, sort_keys=False, width=120)
    if write:
        OVERHEADS.write_text(text)
        print(f"wrote {OVERHEADS}", file=sys.stderr)
    print(text)
    return 0


HEADER = """\
# Costs of a sweep beyond its workloads' nominal durations, measured on this machine by
# bench/plan_slice.py --calibrate (two short runs of the whole workflow); read by
# seconetbench.plan (`seconetbench plan`). Regenerate after a change that moves them (a faster
# deploy, D-ITG ending its flows sooner): .venv/bin/python bench/plan_slice.py --calibrate --write
# Units: seconds; a workload's coefficients are seconds per unit of its cost drivers
# (Workload.cost_drivers: pairs, flows, packets, probes, destinations), on top of base_s.
"""


# --------------------------------------------------------------------------------- the slice
def slice_of(cfg: dict[str, Any], every: int, offset: int, reps: int) -> Sweep:
    sweep = expand(cfg, check_machine=True)
    return Sweep(sweep.setups[offset::every], [], sweep.workloads, reps)


def validate_slice(config_path: Path, workdir: Path, every: int, offset: int, reps: int) -> int:
    results = workdir / "results"
    extra = overlay(workdir, "slice", {"repetitions": reps, "results_dir": str(results),
                                       "testbed": {"prefix": "scnps"}})
    cfg = config.load_files(config_path, extra)
    sweep = slice_of(cfg, every, offset, reps)
    estimate = plan.estimate(cfg, sweep, plan.load_overheads(), results)
    overheads = plan.load_overheads()
    # the slice builds parsed setups (one file of each names its job), not the sweep's tables,
    # figures and findings
    estimated = estimate["estimate_s"] - overheads["finish_s"]
    targets = [f"{results}/parsed/{s.id}/reps{reps}.deployment.parquet" for s in sweep.setups]
    before = machine_note()
    print(f"slice: {len(sweep.setups)} setups ({', '.join(s.id for s in sweep.setups)}), {estimate['targets']} targets, "
          f"{estimate['deploys']} deploys; estimated {estimated:.0f} s; load {before['load_1min']}", file=sys.stderr,
          flush=True)
    run = snakemake(workdir, [config_path, extra], targets)
    measured = run["ended"] - run["started"]
    verdict = plan.ratio_verdict(measured, estimated)
    metas = [read_meta(p.parent) for p in results.glob(f"raw/*/*/rep*/{META_FILE}")]
    per_workload = {}
    for meta in metas:  # measured wall of each workload against its planned seconds, for the record
        name = meta["workload"]["name"]
        per_workload.setdefault(name, [0.0, 0.0])
        per_workload[name][0] += meta["duration_s"]
        setup, spec = plan.setup_of(meta), next(w for w in sweep.workloads if w.name == name)
        per_workload[name][1] += plan.target_s(get_workload(spec), setup, overheads)[0] - overheads["between_targets_s"]
    after = machine_note()
    print(f"{'workload':<18}{'measured s':>12}{'planned s':>12}{'ratio':>8}")
    for name, (got, planned) in sorted(per_workload.items()):
        print(f"{name:<18}{got:>12.1f}{planned:>12.1f}{got / planned if planned else float('nan'):>8.2f}")
    print(f"{'slice wall time':<18}{verdict['measured_s']:>12.1f}{verdict['estimated_s']:>12.1f}{verdict['ratio']:>8.3f}"
          f"  {'within' if verdict['within'] else 'NOT within'} 25 %")
    print(json.dumps({"setups": [s.id for s in sweep.setups], "reps": reps, **verdict,
                      "load_1min": [before["load_1min"], after["load_1min"]],
                      "overheads_measured": overheads.get("measured")}))
    return 0 if verdict["within"] else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=REPO / "config/full.yaml")
    parser.add_argument("--every", type=int, default=60, help="every N-th runnable setup (default 60)")
    parser.add_argument("--offset", type=int, default=0, help="the first setup of the slice (default 0)")
    parser.add_argument("--reps", type=int, default=1, help="repetitions of every cell (default 1)")
    parser.add_argument("--calibrate", action="store_true", help="measure the overheads instead")
    parser.add_argument("--write", action="store_true", help="with --calibrate: store them in the package's data")
    parser.add_argument("--refit", type=Path, metavar="DIR", help="with --calibrate: fit the runs kept in DIR "
                        "(an earlier --calibrate --keep DIR) again instead of running them")
    parser.add_argument("--runs", default=",".join(CALIBRATION_RUNS),
                        help="with --calibrate --keep DIR: which runs to make again (default: workloads,deploys); "
                             "the others are read from DIR, e.g. --runs workloads after a change of a workload")
    parser.add_argument("--keep", type=Path, help="run in this directory and keep it (default: a temporary one)")
    args = parser.parse_args()
    config_path = args.config.resolve()
    if args.refit:
        return calibrate(config_path, args.refit.resolve(), args.write, runs_to_make=())
    workdir = (args.keep or Path(tempfile.mkdtemp(prefix="seconetbench-plan-"))).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        with host_lock(timeout_s=3600):  # the whole run: no other measurement shares the machine
            if args.calibrate:
                return calibrate(config_path, workdir, args.write, tuple(filter(None, args.runs.split(","))))
            return validate_slice(config_path, workdir, args.every, args.offset, args.reps)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
