"""The steps after measuring: raw target -> parsed Parquet -> aggregated tables -> figures.

Each step reads only its inputs (a raw target is self-describing through its meta.json), so
the workflow can rebuild any of them alone.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from seconetbench import cells, tables
from seconetbench.errors import ParseError, SeconetError
from seconetbench.fsutil import write_text_atomic
from seconetbench.meta import read_meta
from seconetbench.spec import SetupSpec, WorkloadSpec
from seconetbench.workloads import get_workload
from seconetbench.workloads.base import Workload


def identity(meta: dict) -> dict[str, object]:
    setup = SetupSpec.from_dict(meta["setup"])
    return {
        "setup": setup.id,
        "scenario": setup.scenario,
        "solution": setup.solution,
        "filter": setup.filter,
        "tunnel": setup.tunnel,
        "implementation": implementation(meta),
        "containers": setup.containers,
        "workload": meta["target"]["workload"],
        "rep": meta["target"]["rep"],
        "group": group_of(meta),
    }


def group_of(meta: dict) -> str:
    """The testbed group that measured the target (testbed/groups.py); the first group for
    targets that do not say (measured on one testbed, before groups)."""
    from seconetbench.testbed.groups import group_name

    return (meta.get("group") or {}).get("name") or group_name(1)


def implementation(meta: dict) -> str:
    """What ran the setup's tunnel or solution (kernel, userspace, tc-bpf), as its deploy
    recorded it; "unknown" for targets that do not say (before the probes, or kubernetes)."""
    recorded = meta.get("deployment", {}).get("implementation") or {}
    return recorded.get("resolved") or "unknown"


def workload_of(meta: dict) -> Workload:
    """The workload a target ran, from its meta.json."""
    workload_dict = dict(meta["workload"])
    return get_workload(WorkloadSpec(name=workload_dict.pop("name"), kind=workload_dict.pop("kind"), params=workload_dict))


def target_rows(raw_dir: str | Path) -> tuple[pd.DataFrame, str, dict]:
    """The rows of one raw target's workload table, that table's kind, and the target's meta."""
    raw_dir = Path(raw_dir)
    try:
        meta = read_meta(raw_dir)
    except FileNotFoundError:
        raise ParseError("meta.json is missing: the raw target is incomplete; delete it and measure again",
                         source=str(raw_dir)) from None
    workload = workload_of(meta)
    rows = workload.parse(raw_dir, meta)
    if rows.empty:
        raise ParseError("the workload produced no samples", source=str(raw_dir))
    for position, (column, value) in enumerate(identity(meta).items()):
        if column not in rows:
            rows.insert(position, column, value)
    return rows, workload.table, meta


def parse_setup(raw_dirs: Iterable[str | Path], outs_by_kind: dict[str, str | Path]) -> None:
    """Parse the targets *raw_dirs* of one setup (every repetition of each of its cells) at once
    into one file per table kind in *outs_by_kind*: each workload's table to the file of its
    kind, and the tables of the targets as a whole (tables.TARGET_MEASURES) to theirs. A file's
    metadata holds every target's meta.json by ``workload/rep`` (the workload tables' files and
    the deployment's). A kind in *outs_by_kind* that no target yields is written empty; a kind
    that a target yields but *outs_by_kind* lacks is an error.

    One job per setup rather than per target or cell: a parse job costs about half a second of
    start-up, and the planning of a big sweep grows with the number of jobs (docs/decisions.md)."""
    raw_dirs = [Path(d) for d in raw_dirs]
    parsed = [target_rows(raw_dir) for raw_dir in raw_dirs]
    by_cell: dict[Path, dict[str, dict]] = {}
    for raw_dir, (_, _, meta) in zip(raw_dirs, parsed):
        by_cell.setdefault(raw_dir.parent, {})[str(meta["target"]["rep"])] = meta
    for cell_dir, metas in by_cell.items():
        # second line of defence after the workflow's and the runner's checks (seconetbench.cells)
        cells.check_repetitions(metas, cell_dir)
    rows_by_kind: dict[str, list[pd.DataFrame]] = {}
    metas_by_kind: dict[str, dict[str, dict]] = {}
    for rows, kind, meta in parsed:
        if kind not in outs_by_kind:
            raise ParseError(f"its workload's table kind {kind} has no output file (given: {sorted(outs_by_kind)})",
                             source=str(meta["target"]["workload"]))
        rows_by_kind.setdefault(kind, []).append(rows)
        metas_by_kind.setdefault(kind, {})[f"{meta['target']['workload']}/{meta['target']['rep']}"] = meta
    every_meta = {key: meta for metas in metas_by_kind.values() for key, meta in metas.items()}
    for kind, out in outs_by_kind.items():
        if kind in tables.TARGET_MEASURES:
            frames = [target_table(raw_dir, kind, meta) for raw_dir, (_, _, meta) in zip(raw_dirs, parsed)]
            meta = {"reps": every_meta} if kind == "deployment" else None
        else:
            frames, meta = rows_by_kind.get(kind, []), {"reps": metas_by_kind.get(kind, {})}
        frame = pd.concat(frames, ignore_index=True) if frames else tables.empty(kind)
        tables.write(frame, kind, out, meta=meta)


def _deployment_row(meta: dict) -> dict[str, object]:
    deployment = meta["deployment"]
    timings = deployment.get("timings", {})
    verification = deployment.get("verification", {})
    tunnel = deployment.get("tunnel") or {}
    noise = meta.get("noise") or {}  # targets measured before the noise record have none
    mtus = [mtu for links in deployment.get("mtu", {}).values() for mtu in links.values()]
    return {
        "hosts": meta["setup"]["hosts"],
        "extra_rules": meta["setup"]["extra_rules"],
        "reused": deployment["reused"],
        "deploy_s": timings["deploy_s"],
        "solution_apply_s": timings.get("solution_apply_s"),
        "tunnel_apply_s": timings.get("tunnel_apply_s"),
        "filter_apply_s": timings.get("filter_apply_s"),
        "rule_update_s": timings.get("rule_update_s"),
        "verification_s": verification.get("duration_s"),
        "verification_passed": verification.get("passed"),
        "verification_probes": verification.get("probes"),
        "min_mtu_bytes": min(mtus) if mtus else None,
        "tunnel_implementation": tunnel.get("implementation"),
        "tunnel_cipher": tunnel.get("cipher"),
        "tunnel_path_mtu_bytes": tunnel.get("path_mtu"),
        "tunnel_overhead_bytes": tunnel.get("overhead_bytes"),
        "tunnel_setup_s": tunnel.get("setup_s"),
        "steal_pct": noise.get("steal_pct"),
        "outside_cpu_pct": noise.get("outside_cpu_pct"),
        "load1": noise.get("load1"),
        "noisy": noise.get("noisy"),
        "noise_exceeded": ",".join(noise["exceeded"]) if noise.get("exceeded") else None,
        "attempt": noise.get("attempt"),
        "cpu_pinned": bool((meta.get("cpu_pinning") or {}).get("requested")) if "cpu_pinning" in meta else None,
        "accelerator": (deployment.get("vm") or {}).get("accel"),
    }


def _monitor_rows(raw_dir: Path, kind: str, meta: dict) -> pd.DataFrame:
    """The monitor's samples of one kind (empty when the monitor was off)."""
    source = {"host_usage": "monitor_host.csv", "process_cpu": "monitor_processes.csv",
              "interface_counters": "monitor_net.csv"}[kind]
    path = raw_dir / source
    if not path.exists():
        return tables.empty(kind)[[f.name for f in tables.TARGET_MEASURES[kind]]]
    frame = pd.read_csv(path)
    if kind == "interface_counters":
        return interface_counters(frame, meta["deployment"]["prefix"])
    if kind == "host_usage":
        if "interval_s" not in frame:
            # raw targets of monitor versions before interval_s: the gaps between samples
            first = meta.get("monitor", {}).get("interval_s", 1.0)
            frame.insert(1, "interval_s", frame["timestamp_s"].diff().fillna(first))
        frame.insert(2, "cpus", meta["machine"]["cpus"])
    else:
        frame = frame.rename(columns={"name": "process"})
    return frame


def interface_counters(samples: pd.DataFrame, prefix: str) -> pd.DataFrame:
    """Per interface of the setup, what its counters moved while the workload ran: the monitor's
    last sample (taken when the workload ended) minus its first (when it started). *samples* is
    monitor_net.csv; the run *prefix* is cut from namespace and interface names (h1, c01, e0), so
    that runs compare. Counters absent from older raw targets (errors, drops) stay null. A
    namespace that vanished before the last sample has no row; neither has an interface seen once."""
    counters = [f.name for f in tables.TARGET_MEASURES["interface_counters"]][3:]
    columns = [f.name for f in tables.TARGET_MEASURES["interface_counters"]]
    if samples.empty:
        return tables.empty("interface_counters")[columns]
    present = [c for c in counters if c in samples]
    ordered = samples.sort_values("timestamp_s", kind="stable").groupby(["netns", "ifname"], sort=True)
    first, last = ordered.first(), ordered.last()
    seen = ordered.size() > 1
    delta = (last[present] - first[present])[seen]
    delta.insert(0, "duration_s", (last["timestamp_s"] - first["timestamp_s"])[seen])
    rows = delta.reset_index()
    for column in ("netns", "ifname"):
        rows[column] = rows[column].str.removeprefix(f"{prefix}-")
    return rows.reindex(columns=columns)


def target_table(raw_dir: str | Path, kind: str, meta: dict) -> pd.DataFrame:
    """One table of a target as a whole (*kind*: deployment facts or monitor samples); *meta*
    is the target's meta.json, read once by the caller for all its tables."""
    raw_dir = Path(raw_dir)
    rows = pd.DataFrame([_deployment_row(meta)]) if kind == "deployment" else _monitor_rows(raw_dir, kind, meta)
    for position, (column, value) in enumerate(identity(meta).items()):
        rows.insert(position, column, value)
    return rows


def aggregate(kind: str, parsed_files: Iterable[str | Path], out: str | Path) -> pd.DataFrame:
    """Concatenate the parsed targets of one table kind into results/tables/<kind>.parquet,
    with the targets' environment (meta.environment) and measuring time in its metadata, so that
    the aggregated tables alone say what they ran on (docs/tables.md; `compare` reads it)."""
    from seconetbench.meta import environment

    frames, metas = [], []
    for path in parsed_files:
        if tables.kind_of(path) == kind:
            frames.append(tables.read(path))
            metas += tables.read_table_meta(path).get("reps", {}).values()
    frame = pd.concat(frames, ignore_index=True) if frames else tables.empty(kind)
    run = None
    if metas:
        run = {"environment": environment(metas), "measured_from": min(m["started_at"] for m in metas),
               "measured_to": max(m["finished_at"] for m in metas)}
    tables.write(frame, kind, out, meta=run)
    return frame


def summarize_tables(table_files: Iterable[str | Path], out: str | Path,
                     convergence_files: Iterable[str | Path] = (), design: dict | None = None) -> pd.DataFrame:
    """Statistics per setup x workload of every table (results/tables/summary.parquet).

    The ``convergence`` column says whether the repetitions were a fixed count, or, with adaptive
    repetitions, whether the cell converged (the final round's decision file). *design* is how
    the sweep was run (``{"run_order": mode, "rounds": repetitions.min}``), which decides
    whether effects are paired per round; it is recorded in the table's metadata."""
    status = {}
    for path in convergence_files:
        status = {cell: d["status"] for cell, d in json.loads(Path(path).read_text())["cells"].items()}
    frames = {}
    for path in table_files:
        frames[tables.kind_of(path)] = tables.read(path)
    result = summary_of(frames, status, design)
    tables.write(result, "summary", out, meta={"design": design or {}})
    return result


def summary_of(frames_by_kind: dict[str, pd.DataFrame], status: dict[str, str],
               design: dict | None = None) -> pd.DataFrame:
    """The summary table (no I/O) of the tables *frames_by_kind*; *status* maps a cell
    ('setup/workload') to its convergence status, and cells without one are 'fixed'.

    Per setup x workload x metric: statistics over one value per repetition
    (convergence.REPETITION_METRICS, as the stopping rule uses them), the pooled samples'
    descriptive percentiles, and the effect against the setup's baseline, paired per round when
    *design* says the run order was ``blocked`` (over reps 1..``rounds``), unpaired otherwise."""
    from seconetbench import convergence, stats

    group = [f.name for f in tables.SETUP_IDENTITY]
    design = design or {}
    frames = []
    for kind, frame in frames_by_kind.items():
        if frame.empty or kind not in convergence.REPETITION_METRICS:
            continue
        # one metric at a time: a row's effect compares per-repetition values of its own metric
        for select, metric, per_rep in convergence.summary_metrics(kind):
            chosen = select(frame)
            if chosen.empty:
                continue
            summary = stats.repetition_summary(chosen, metric, group, per_rep=per_rep)
            values = with_groups(stats.repetition_values(chosen, metric, convergence.CELL, per_rep), frame)
            frames.append(stats.ratio_to_baseline(summary, values, paired=design.get("run_order") == "blocked",
                                                  rounds=design.get("rounds")))
    if not frames:
        return tables.empty("summary")
    result = pd.concat(frames, ignore_index=True)
    cells = result["setup"].astype(str) + "/" + result["workload"].astype(str)
    result["convergence"] = cells.map(status).fillna("fixed") if status else "fixed"
    result["accelerator"] = result["setup"].map(accelerators(frames_by_kind.get("deployment")))
    return result[tables.schema("summary").names]


def with_groups(values: pd.DataFrame, frame: pd.DataFrame) -> pd.DataFrame:
    """Per-repetition *values* with the testbed group of each target (column ``group`` of the
    table *frame* it came from), so that effects pair a round only within one group."""
    if "group" not in frame.columns:
        return values
    keys = ["setup", "workload", "rep"]
    groups = frame[[*keys, "group"]].drop_duplicates(subset=keys)
    return values.merge(groups, on=keys, how="left")


def accelerators(deployment: pd.DataFrame | None) -> dict[str, str]:
    """Setup -> the accelerator its VMs ran on (kvm, tcg; "kvm+tcg" when its targets differ), for
    the setups of the vm backend: every figure's labels then say which numbers are emulated."""
    if deployment is None or "accelerator" not in deployment:
        return {}
    known = deployment.dropna(subset=["accelerator"])
    return {setup: "+".join(sorted(set(values))) for setup, values in known.groupby("setup")["accelerator"]}


def convergence_round(parsed_files: Iterable[str | Path], measured: dict[str, int], rules: dict,
                      out: str | Path, cost_s: dict[str, float] | None = None,
                      results_dir: str | Path | None = None) -> dict:
    """Decide the next convergence round from the parsed targets measured so far (a JSON file).
    With ``budget_h`` in *rules*: the time spent is counted from the first target in
    *results_dir*, and each cell's repetition costs *cost_s* seconds (plan.cell_costs)."""
    import time

    from seconetbench import convergence

    by_kind: dict[str, list[pd.DataFrame]] = {}
    for path in parsed_files:
        by_kind.setdefault(tables.kind_of(path), []).append(tables.read(path))
    values = [convergence.repetition_values(pd.concat(frames, ignore_index=True), kind)
              for kind, frames in by_kind.items() if kind in convergence.REPETITION_METRICS]
    combined = pd.concat(values, ignore_index=True) if values else pd.DataFrame(columns=["setup", "workload", "rep", "value"])
    spent_s = time.time() - sweep_started_at(results_dir) if rules.get("budget_h") and results_dir else 0.0
    decision = convergence.decide(combined, list(measured), dict(measured), rules, spent_s, cost_s)
    write_text_atomic(out, json.dumps(decision, indent=1, sort_keys=True))
    return decision


def sweep_started_at(results_dir: str | Path) -> float:
    """When the first target of *results_dir* started (its meta.json); now if none did."""
    import time

    starts = [read_meta(p.parent)["started_at"] for p in Path(results_dir).glob("raw/*/*/rep*/meta.json")]
    return min(starts, default=time.time())


def plot(figure: str, table_files: Iterable[str | Path], html_out: str | Path, svg_out: str | Path) -> None:
    """Build one registered figure from its tables (in FigureSpec.tables order) and save it as
    interactive HTML and SVG."""
    from seconetbench import figures

    spec = figures.FIGURES[figure]
    chart = spec.builder(*(tables.read(path) for path in table_files))
    written = figures.save_chart(chart, Path(html_out).with_suffix(""))
    expected = {Path(html_out), Path(svg_out)}
    if not expected <= set(map(Path, written)):
        raise SeconetError(f"figure {figure}: save_chart wrote {written}, expected {sorted(map(str, expected))}")
