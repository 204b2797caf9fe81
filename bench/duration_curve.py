#!/usr/bin/env python3
"""How the CI of each workload's metric shrinks with its duration, measured here (issue 18).

For every timed workload of config/full.yaml, its parameters as full.yaml sets them except one
knob (latency: count; throughput, bursty, quake3, tcp100: duration_s; video: length_scale;
first_packet: probes), set to a few LEVELS. Each level is a workload of its own (e.g.
``throughput_653_d5``) in a generated config per setup. The bench measures ROUNDS repetitions,
blocked as `run_order: blocked` measures a sweep: in each round, every setup (in a seeded random
order) is deployed afresh and measures all its targets (in a seeded random order) on that
deployment, holding the host lock for that block of targets (others measure between blocks;
--lock-per run holds it from the first target to the last). Each target goes through the runner
(runner.measure: deploy or reuse, noise record, meta.json), into a results directory under /tmp.
Workload groups separated by ';' in --workloads are measured one after the other, each all its
rounds, so that a run stopped early leaves whole curves.

Analysis, from the raw targets alone (so it also runs on a partial or earlier run, --analyse):
each target's one value per repetition is the metric the stopping rule and the summary use
(pipeline.target_rows, convergence.repetition_values); per setup x workload x level, the half-width
of the 95 % order-statistic CI of the median over the repetitions (stats.summarize), in percent
of the median, and the mean time one target took (meta.json duration_s: the workload's run). The
curve goes to a CSV (--out) and an SVG beside it, one row per setup x workload x level; then the
level the choice rule takes per workload (choose; docs/workloads.md, "Durations").

Needs root. The run behind docs/workloads.md (about 20 min of lock time here):
  bench/duration_curve.py --levels 0,1 --more throughput_653=2 --lock-per run \
    --workloads "throughput_653,latency;throughput_64,throughput_1370;quake3,bursty;video,first_packet"
  bench/duration_curve.py --levels 0,1 --lock-per run --workloads tcp100 --seed 2
  bench/duration_curve.py --analyse --out docs/data/duration_curve.csv
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import csv
import math
import os
import random
import sys
import time
from pathlib import Path

import yaml

from seconetbench import backends, config, convergence, pipeline, runner, stats
from seconetbench.meta import META_FILE

REPO = Path(__file__).resolve().parents[1]
FULL = REPO / "config/full.yaml"
# a baseline and a filtered setup with more pairs; one run prefix (deployment) per setup
SETUPS = {"single-bridge-none-c2": ("none", 2, "scndcn"), "single-bridge-iptables-c8": ("iptables", 8, "scndci")}
# workload of full.yaml -> (its knob, the levels tried). Nominal seconds of a level: see nominal_s.
LEVELS = {
    "latency": ("count", [10, 25, 50, 100]),        # x interval_s 0.2: 2, 5, 10, 20 s
    "throughput_64": ("duration_s", [2, 5, 10]),
    "throughput_653": ("duration_s", [2, 5, 10]),
    "throughput_1370": ("duration_s", [2, 5, 10]),
    "bursty": ("duration_s", [4, 10, 20]),          # 1 s on, 1 s off: 2, 5, 10 bursts
    "quake3": ("duration_s", [2, 5, 10]),
    "tcp100": ("duration_s", [2, 5, 10]),
    "video": ("length_scale", [0.01, 0.02, 0.05]),  # longest video of pair 1: 3.6, 7.2, 18 s
    "first_packet": ("probes", [5, 10, 20]),        # per pair
}
TAGS = {"count": "n", "duration_s": "d", "length_scale": "s", "probes": "p"}


def variant(workload: str, value: float) -> str:
    knob, _ = LEVELS[workload]
    return f"{workload}_{TAGS[knob]}{str(value).replace('.', 'p')}"


def nominal_s(params: dict, knob: str, value: float) -> float:
    """What the knob's level means in seconds of traffic per pair (video: the longest video of
    the first pair; first_packet: the probes' count, it has no duration)."""
    if knob == "count":
        return value * params["interval_s"]
    if knob == "duration_s":
        return value
    if knob == "length_scale":
        import random as _random

        from seconetbench.workloads.ditg import draw_videos
        longest = max(length for length, _ in draw_videos(_random.Random(f"{params['seed']}-0"), params["videos"]))
        return max(1.0, longest * value)
    return float("nan")


def configurations(workloads: list[str], setups: list[str], levels: list[int], results: Path,
                   more: dict[str, list[int]] | None = None) -> dict[str, dict]:
    """One validated config per setup, holding the *levels* (indices into LEVELS) of *workloads*,
    and the *more* levels of single workloads, each level as a workload."""
    full = yaml.safe_load(FULL.read_text())
    variants = {}
    for workload in workloads:
        knob, values = LEVELS[workload]
        chosen = sorted(set(levels) | set((more or {}).get(workload, [])))
        for value in [values[i] for i in chosen if i < len(values)]:
            variants[variant(workload, value)] = {**full["workloads"][workload], knob: value}
    configs = {}
    for setup_id in setups:
        filter_name, containers, prefix = SETUPS[setup_id]
        configs[setup_id] = config.validate({
            "results_dir": str(results), "repetitions": 1,
            "testbed": {**copy.deepcopy(full["testbed"]), "prefix": prefix},
            "sweep": {"single": {"solutions": ["bridge"], "filters": [filter_name], "containers": [containers]},
                      "workloads": list(variants)},
            "workloads": variants,
        })
    return configs


def load1() -> float:
    return os.getloadavg()[0]


def measure(configs: dict[str, dict], results: Path, rounds: int, seed: int, lock_per: str = "block") -> None:
    shuffle = random.Random(seed)
    results.mkdir(parents=True, exist_ok=True)
    log = results / "progress.csv"
    new = not log.exists()
    with log.open("a", newline="") as handle:
        writer = csv.writer(handle)
        if new:
            writer.writerow(["setup", "workload", "rep", "status", "wall_s", "load1_before", "finished_at"])
        try:
            for rep in range(1, rounds + 1):
                setups = list(configs)
                shuffle.shuffle(setups)
                for setup_id in setups:
                    cfg = configs[setup_id]
                    names = list(cfg["workloads"])
                    shuffle.shuffle(names)
                    # A block (one setup's targets of one round) holds the host lock from its first
                    # target to its last, as a sweep runs them back to back on its machine; between
                    # blocks others measure. runner.measure's own per-target lock goes to a file of ours.
                    with runner.HostLock(timeout_s=3600) if lock_per == "block" else contextlib.nullcontext():
                        os.environ["SECONETBENCH_LOCK"] = str(results / "block.lock")
                        try:
                            # a fresh deployment per round, as a blocked sweep deploys each setup once a round
                            with contextlib.closing(backends.for_config(cfg)) as backend:
                                backend.teardown()
                            for name in names:
                                out = results / "raw" / setup_id / name / f"rep{rep}"
                                if (out / META_FILE).exists():
                                    continue
                                before, started = load1(), time.monotonic()
                                try:
                                    runner.measure(cfg, setup_id, name, rep, out)
                                    status = "ok"
                                except Exception as error:  # noqa: BLE001 - one failed target must not end the curve
                                    status = f"failed: {str(error)[:200]}"
                                    print(f"{setup_id}/{name}/rep{rep}: {error}", file=sys.stderr, flush=True)
                                writer.writerow([setup_id, name, rep, status, round(time.monotonic() - started, 3),
                                                 before, round(time.time(), 3)])
                                handle.flush()
                        finally:
                            os.environ.pop("SECONETBENCH_LOCK", None)
                    print(f"round {rep}/{rounds}: {setup_id} done, load1 {load1():.2f}", file=sys.stderr, flush=True)
        finally:
            for cfg in configs.values():
                with contextlib.closing(backends.for_config(cfg)) as backend:
                    backend.teardown()


def analyse(results: Path) -> list[dict]:
    """The curve from the raw targets under *results*: one row per setup x workload x level."""
    values: dict[tuple[str, str], list] = {}
    for meta_path in sorted(results.glob(f"raw/*/*/rep*/{META_FILE}")):
        rows, kind, meta = pipeline.target_rows(meta_path.parent)
        value = convergence.repetition_values(rows, kind)["value"].iloc[0]
        key = (meta["target"]["setup"], meta["target"]["workload"])
        values.setdefault(key, []).append((value, meta))
    full = yaml.safe_load(FULL.read_text())["workloads"]
    curve = []
    for workload, (knob, levels) in LEVELS.items():
        for level in levels:
            for setup_id in SETUPS:
                measured = values.get((setup_id, variant(workload, level)))
                if not measured:
                    continue
                summary = stats.summarize([v for v, _ in measured])
                metas = [m for _, m in measured]
                _, metric, per_rep = convergence.REPETITION_METRICS[metas[0]["table"]]
                curve.append({
                    "workload": workload, "setup": setup_id, "knob": knob, "level": level,
                    "nominal_s": round(nominal_s(full[workload], knob, level), 2),
                    "metric": f"{per_rep} {metric}", "n": summary["n"], "median": round(summary["median"], 4),
                    "ci_halfwidth_pct": round(summary["ci_halfwidth_pct"], 2),
                    "run_s_mean": round(sum(m["duration_s"] for m in metas) / len(metas), 2),
                    "load1_median": round(stats.summarize([m["noise"]["load1"] for m in metas])["median"], 2),
                    "outside_cpu_pct_median": round(
                        stats.summarize([m["noise"]["outside_cpu_pct"] for m in metas])["median"], 1),
                    "noisy": sum(bool(m["noise"]["noisy"]) for m in metas),
                })
    return curve


# Half-widths from 6 repetitions are themselves uncertain (the range of 6 normal values has a
# coefficient of variation of about 0.33, so h^2 about 0.66): levels whose cost of precision is
# within this factor of the cheapest are not told apart, and the shortest of them is taken.
INDISTINGUISHABLE = 2.0


def choose(curve: list[dict], target_pct: float) -> dict[str, dict]:
    """Per workload, the level a sweep should use (docs/workloads.md, "Durations").

    A level's half-width h is the wider of its setups' (a sweep must converge in every setup), at
    the bench's repetitions (the config's min); a level measured in only some setups, or without
    a CI, is left out. (1) The shortest level with h <= *target_pct*. (2) Where none reaches it:
    by the stopping rule's own 1/sqrt(n) model (convergence.decide) a level needs
    ``min * (h / target)^2`` repetitions of ``run_s`` each, so its cost of precision is
    ``h^2 * run_s``; the shortest level whose cost is within INDISTINGUISHABLE of the cheapest."""
    setups_seen = {row["setup"] for row in curve}
    levels: dict[tuple[str, float], dict] = {}
    for row in curve:
        level = levels.setdefault((row["workload"], row["level"]), {
            "workload": row["workload"], "level": row["level"], "halfwidths": [], "run_s": 0.0, "n": row["n"]})
        level["halfwidths"].append(row["ci_halfwidth_pct"])
        level["run_s"] = max(level["run_s"], row["run_s_mean"])
        level["n"] = min(level["n"], row["n"])
    chosen = {}
    for workload in dict.fromkeys(row["workload"] for row in curve):
        candidates = []
        for (name, _), level in sorted(levels.items(), key=lambda item: item[0][1]):
            widths = level["halfwidths"]
            if name != workload or len(widths) < len(setups_seen) or any(math.isnan(h) or h <= 0 for h in widths):
                continue
            level["halfwidth_pct"] = max(widths)
            level["precision_cost"] = level["halfwidth_pct"] ** 2 * level["run_s"]
            candidates.append(level)
        if not candidates:
            continue
        reaching = [lv for lv in candidates if lv["halfwidth_pct"] <= target_pct]
        if reaching:
            chosen[workload] = {**reaching[0], "rule": "shortest reaching the target"}
            continue
        cheapest = min(lv["precision_cost"] for lv in candidates)
        best = next(lv for lv in candidates if lv["precision_cost"] <= INDISTINGUISHABLE * cheapest)
        chosen[workload] = {**best, "rule": "none reaches it: shortest of the cheapest precision"}
    return chosen


def plot(curve: list[dict], target_pct: float, out_svg: Path) -> None:
    """The curve as an SVG: per workload, CI half-width against the time one target ran."""
    import shutil
    import tempfile

    import altair as alt
    import pandas as pd

    from seconetbench.figures import save_chart

    frame = pd.DataFrame(curve)
    # the layers take their data from the facet (alt.Chart() without data), so each panel holds its own
    lines = alt.Chart().mark_line(point=True).encode(
        x=alt.X("run_s_mean:Q", title="run time of one target (s)", scale=alt.Scale(type="log")),
        y=alt.Y("ci_halfwidth_pct:Q", title="CI half-width (% of median)", scale=alt.Scale(type="log")),
        color=alt.Color("setup:N"), tooltip=["workload", "setup", "level", "n", "median", "ci_halfwidth_pct"])
    rule = alt.Chart().mark_rule(strokeDash=[4, 4], color="gray").encode(y=alt.datum(target_pct))
    chart = alt.layer(lines, rule, data=frame).properties(width=180, height=140).facet(
        facet=alt.Facet("workload:N", sort=list(LEVELS)), columns=3).properties(
        title=f"95 % CI half-width of the median over 6 repetitions against duration; dashed: the target ±{target_pct:g} %")
    with tempfile.TemporaryDirectory() as tmp:
        written = save_chart(chart, Path(tmp) / out_svg.stem)
        shutil.copy(next(p for p in written if p.suffix == ".svg"), out_svg)


def write_curve(curve: list[dict], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(curve[0]))
        writer.writeheader()
        writer.writerows(curve)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=6, help="repetitions per level (config/full.yaml's min)")
    parser.add_argument("--workloads", default=",".join(LEVELS),
                        help="comma-separated, of: " + ", ".join(LEVELS) + "; groups separated by ';' are measured one "
                             "after the other, each group all its rounds")
    parser.add_argument("--setups", default=",".join(SETUPS), help="comma-separated, of: " + ", ".join(SETUPS))
    parser.add_argument("--levels", default="0,1,2,3",
                        help="which levels of each workload to measure, as indices into its LEVELS (0 = shortest): "
                             "measure the short ones first, and the longer ones only where they are needed")
    parser.add_argument("--more", default="", help="further levels of single workloads, e.g. throughput_653=2,latency=3")
    parser.add_argument("--lock-per", choices=["block", "run"], default="block",
                        help="hold the host lock per block (one setup's targets of a round) or for the whole run")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--results", default="/tmp/seconetbench-duration-curve")
    parser.add_argument("--out", default=str(REPO / "docs/data/duration_curve.csv"))
    parser.add_argument("--analyse", action="store_true", help="only analyse the raw targets in --results")
    args = parser.parse_args()
    results = Path(args.results)
    groups = [[w for w in group.split(",") if w] for group in args.workloads.split(";")]
    workloads = [w for group in groups for w in group]
    unknown = sorted(set(workloads) - set(LEVELS))
    if unknown:
        parser.error(f"--workloads: unknown {unknown}; known: {', '.join(LEVELS)}")
    setups = [s for s in args.setups.split(",") if s]
    if set(setups) - set(SETUPS):
        parser.error(f"--setups: unknown {sorted(set(setups) - set(SETUPS))}; known: {', '.join(SETUPS)}")
    if not args.analyse:
        levels = [int(i) for i in args.levels.split(",") if i]
        more = {}
        for item in filter(None, args.more.split(",")):
            workload, _, index = item.partition("=")
            more.setdefault(workload, []).append(int(index))
        # --lock-per run: the host lock from the first target to the last (bench/noise.py does so)
        with runner.HostLock(timeout_s=3 * 3600) if args.lock_per == "run" else contextlib.nullcontext():
            for group in groups:  # each group all its rounds, so that an interrupted run leaves whole curves
                measure(configurations(group, setups, levels, results, more), results, args.rounds, args.seed,
                        args.lock_per)
    curve = analyse(results)
    if not curve:
        print(f"no raw targets under {results}", file=sys.stderr)
        return 1
    write_curve(curve, Path(args.out))
    print(f"{'workload':<16}{'setup':<28}{'level':>8}{'s':>7}{'n':>4}{'median':>12}{'CI ±%':>8}{'run s':>8}")
    for row in curve:
        print(f"{row['workload']:<16}{row['setup']:<28}{row['level']:>8}{row['nominal_s']:>7}{row['n']:>4}"
              f"{row['median']:>12}{row['ci_halfwidth_pct']:>8}{row['run_s_mean']:>8}")
    reps = config.validate(yaml.safe_load(FULL.read_text()))["repetitions"]
    plot(curve, reps["ci_halfwidth_pct"], Path(args.out).with_suffix(".svg"))
    print(f"\nchoice (target ±{reps['ci_halfwidth_pct']} %, repetitions {reps['min']}..{reps['max']}; "
          "half-width = the wider setup's):")
    for workload, level in choose(curve, reps["ci_halfwidth_pct"]).items():
        needed = max(reps["min"], math.ceil(reps["min"] * (level["halfwidth_pct"] / reps["ci_halfwidth_pct"]) ** 2))
        print(f"{workload:<16}{LEVELS[workload][0]} {level['level']}: ±{level['halfwidth_pct']:.1f} % at n={level['n']} "
              f"({level['rule']}); the stopping rule would want ~{needed} repetitions of {level['run_s']:.1f} s"
              + ("" if needed <= reps["max"] else f", more than max {reps['max']}: not converged"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
