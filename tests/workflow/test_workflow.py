"""The Snakemake workflow for real: dry runs of every shipped config, lint, a tiny sweep on
the netns testbed, resume after kill -9, figures rebuilt without measuring, and the report."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import pytest
import vl_convert

from seconetbench import config as configuration
from seconetbench import tables
from seconetbench.testbed import cleanup
from tests.conftest import HOST, REPO

pytestmark = pytest.mark.workflow

SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
SHIPPED = sorted((REPO / "config").glob("*.yaml"))

# The tests' own configs write results/ under their work directory (the schema's default,
# spelled out); the shipped configs each write their own results/<name>.
TINY = """
results_dir: results
repetitions: 2
# five samples a second: the default 1 s interval can let a 1 s iperf3 run end between the sample
# that first sees it and the next one on a busy machine (process_cpu then has no iperf3 row)
monitor: {interval_s: 0.2}
run_order: {mode: shuffled, seed: 3}
sweep:
  single: {solutions: [bridge], filters: [none, iptables], containers: [2]}
  workloads: [latency, throughput_653]
workloads:
  latency: {kind: latency, count: 5, interval_s: 0.05}
  throughput_653: {kind: throughput, payload_bytes: 653, duration_s: 1}
"""


def snakemake(workdir: Path, *args: str, timeout: float = 600, check: bool = True,
              env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    argv = [SNAKEMAKE, "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir), "--cores", "2", *args]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)
    if check and result.returncode != 0:
        pytest.fail(f"snakemake {' '.join(args)} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def planned(workdir: Path, *args: str) -> dict[str, list[str]]:
    """rule -> outputs of the jobs a dry run plans."""
    result = snakemake(workdir, "--dry-run", *args)
    jobs: dict[str, list[str]] = {}
    rule = None
    for line in (result.stdout + result.stderr).splitlines():
        match = re.match(r"^(?:local)?rule (\w+):$", line.strip())
        if match:
            rule = match.group(1)
            jobs.setdefault(rule, [])
        elif rule and line.strip().startswith("output:"):
            jobs[rule] += [o.strip() for o in line.split(":", 1)[1].split(",")]
    return jobs


def complete_targets(workdir: Path) -> dict[str, float]:
    """Raw targets that are complete (have meta.json) -> their start time. Only rep<n>
    directories: pathlib's '*' also matches a '.rep<n>.*.partial' being written (and renamed)."""
    return {str(p.parent.relative_to(workdir / "results" / "raw")): json.loads(p.read_text())["started_at"]
            for p in (workdir / "results" / "raw").glob("*/*/rep*/meta.json")}


def assert_no_leftovers(workdir: Path) -> None:
    prefix = configuration.run_prefix({"results_dir": str(workdir / "results")})
    left = cleanup.leftovers(prefix)
    cleanup.remove(prefix)
    assert not any(left.values()), f"sweep left testbed objects: {left}"


def tiny(workdir: Path) -> str:
    # --configfile is relative to the current directory, not to --directory
    return str(workdir / "tiny.yaml")


def make_workdir(tmp_path: Path, text: str = TINY) -> Path:
    (tmp_path / "tiny.yaml").write_text(text)
    return tmp_path


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_dry_run_of_shipped_configs(tmp_path, path):
    jobs = planned(tmp_path, "--configfile", str(path))
    cfg = configuration.load_files(path)  # a named file stands alone: config.yaml is not under it
    assert "run_batch" in jobs and "plot_figure" in jobs
    from seconetbench.sweep import batches, expand

    sweep, order = expand(cfg, check_machine=True), cfg["run_order"]
    # a job per batch (consecutive targets of one setup in the run order), named by its first target
    planned_batches = batches(sweep.measurement_order(order["mode"], order["seed"]), lambda target: False)
    assert set(jobs["run_batch"]) == {f"{cfg['results_dir']}/batches/{batch[0].path}.json" for batch in planned_batches}
    assert sorted(target.path for batch in planned_batches for target in batch) == sorted(t.path for t in sweep.targets())
    assert all(len({target.setup for target in batch}) == 1 for batch in planned_batches)
    # every sweep checks the paper's findings (rule all)
    assert jobs["check_findings"] == [f"{cfg['results_dir']}/findings.md", f"{cfg['results_dir']}/findings.html"]
    # each shipped config writes a results directory of its own
    assert cfg["results_dir"] == {"config.yaml": "results/quick"}.get(path.name, f"results/{path.stem}")
    if path.name == "multi-host.yaml":
        assert not [o for o in jobs["run_batch"] if "/batches/single-" in o]


ONE_CELL = """
results_dir: results
repetitions: 1
sweep:
  single: {{solutions: [bridge], filters: [none], containers: [2]}}
  workloads: [latency]
workloads:
  latency: {{kind: latency, count: {count}, interval_s: 0.02}}
"""


@pytest.mark.privileged  # it measures the first config for real
def test_a_config_of_other_parameters_is_refused_into_the_same_results_dir(tmp_path):
    workdir = make_workdir(tmp_path, ONE_CELL.format(count=3))
    (workdir / "other.yaml").write_text(ONE_CELL.format(count=9))
    try:
        snakemake(workdir, "--configfile", tiny(workdir))
        measured = complete_targets(workdir)
        assert list(measured) == ["single-bridge-none-c2/latency/rep1"]
        meta = json.loads((workdir / "results/raw/single-bridge-none-c2/latency/rep1/meta.json").read_text())
        assert meta["cell_params"]["workload"]["count"] == 3 and len(meta["cell_fingerprint"]) == 16

        refused = snakemake(workdir, "--configfile", str(workdir / "other.yaml"), check=False)
        assert refused.returncode != 0
        output = refused.stdout + refused.stderr
        assert ("single-bridge-none-c2/latency was measured with different parameters: "
                "workload.count 3 → 9 (rep1)") in output
        assert "another results_dir" in output and "mv results/raw/single-bridge-none-c2/latency" in output
        assert complete_targets(workdir) == measured  # nothing measured is lost or re-measured
        assert not (workdir / "results/failed").exists()
    finally:
        assert_no_leftovers(workdir)


def test_lint_finds_only_the_deliberate_conda_lint():
    result = subprocess.run([SNAKEMAKE, "--snakefile", str(REPO / "Snakefile"), "--lint", "--cores", "1"],
                            capture_output=True, text=True, cwd=REPO, timeout=120)
    lints = set(re.findall(r"^\s+\* (.+?):$", result.stdout + result.stderr, flags=re.M))
    # No conda/containers: the testbed needs root and the host's kernel; .venv is the environment.
    assert lints <= {"Specify a conda environment or container for each rule."}, lints


def test_invalid_config_is_refused_before_any_job(tmp_path):
    # a named config stands alone, so the bad one is complete but for the typo
    (tmp_path / "bad.yaml").write_text(TINY.replace("filters: [none, iptables]", "filters: [ebpfx]"))
    result = snakemake(tmp_path, "--configfile", str(tmp_path / "bad.yaml"), check=False)
    assert result.returncode != 0
    assert "sweep.single.filters[0]" in result.stdout + result.stderr
    assert not (tmp_path / "results").exists()


# The tests below that measure deploy namespaces (root: marker privileged, which also holds the
# host's measurement lock) and take a minute or more (slow).
@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    workdir = make_workdir(tmp_path_factory.mktemp("sweep"))
    with HOST.held():  # a module fixture: set up before the tests' own hold (conftest.py)
        snakemake(workdir, "--configfile", tiny(workdir))
    yield workdir
    assert_no_leftovers(workdir)


@pytest.mark.privileged
@pytest.mark.slow
def test_sweep_produces_tables_figures_and_meta(swept):
    assert len(complete_targets(swept)) == 8
    latency = tables.read(swept / "results/tables/latency.parquet")
    assert set(latency["setup"]) == {"single-bridge-none-c2", "single-bridge-iptables-c2"}
    assert latency["received"].all() and (latency["rtt_ms"] > 0).all()
    assert len(latency) == 2 * 2 * 5
    throughput = tables.read(swept / "results/tables/throughput.parquet")
    assert (throughput["throughput_mbps"] > 0).all()
    summary = tables.read(swept / "results/tables/summary.parquet")
    assert set(summary["metric"]) == {"rtt_ms", "throughput_mbps"}
    for figure in ("latency_boxplot", "throughput_by_payload", "cpu_per_gbit", "deploy_time", "rule_scaling"):
        assert "<svg" in (swept / f"results/figures/{figure}.svg").read_text()
        assert (swept / f"results/figures/{figure}.html").stat().st_size > 1000
    assert not list((swept / "results/figures").glob("multi_host_*"))  # a single-host sweep
    deployment = tables.read(swept / "results/tables/deployment.parquet")
    assert len(deployment) == 8 and deployment["verification_passed"].all()
    assert (deployment["deploy_s"] > 0).all() and (~deployment["reused"]).sum() >= 2
    host = tables.read(swept / "results/tables/host_usage.parquet")
    assert set(host["workload"]) == {"latency", "throughput_653"} and (host["interval_s"] > 0).all()
    processes = tables.read(swept / "results/tables/process_cpu.parquet")
    assert "iperf3" in set(processes["process"])  # the 0.25 s pings end before a sample sees them
    counters = tables.read(swept / "results/tables/interface_counters.parquet")
    assert len(counters.drop_duplicates(["setup", "workload", "rep"])) == 8  # a row per interface of every target
    sender = counters[(counters["netns"] == "c01") & (counters["ifname"] == "e0")]
    assert len(sender) == 8 and (sender["tx_packets"] > 0).all()
    schema = json.loads((REPO / "workflow/schemas/meta.schema.json").read_text())
    metas = [json.loads(p.read_text()) for p in (swept / "results/raw").glob("*/*/*/meta.json")]
    for meta in metas:
        jsonschema.validate(meta, schema)
        assert meta["deployment"]["verification"]["passed"]
    positions = sorted(m["run_order"]["position"] for m in metas)
    assert positions == list(range(1, 9))
    # the shuffled order was followed: start times increase with the recorded position
    by_start = [m["run_order"]["position"] for m in sorted(metas, key=lambda m: m["started_at"])]
    assert by_start == positions
    # a setup's parsed file of a kind holds every repetition, and each target's metadata by workload/rep
    parsed = next((swept / "results/parsed").glob("*/reps2.latency.parquet"))
    assert sorted(tables.read(parsed)["rep"].unique()) == [1, 2]
    metas = tables.read_table_meta(parsed)["reps"]
    assert sorted(metas) == ["latency/1", "latency/2"] and metas["latency/1"]["machine"]["kernel"] == os.uname().release


@pytest.mark.privileged
@pytest.mark.slow
def test_second_run_plans_nothing(swept):
    assert planned(swept, "--configfile", tiny(swept)) == {}


@pytest.mark.privileged
@pytest.mark.slow
def test_figures_rebuild_without_measuring(swept):
    for path in list((swept / "results/figures").iterdir()) + list((swept / "results/tables").iterdir()):
        path.unlink()
    jobs = planned(swept, "figures", "--configfile", tiny(swept))
    assert "run_batch" not in jobs and "parse_setup" not in jobs
    assert "plot_figure" in jobs
    before = complete_targets(swept)
    snakemake(swept, "figures", "--configfile", tiny(swept))
    assert complete_targets(swept) == before
    assert (swept / "results/figures/latency_boxplot.svg").exists()


@pytest.mark.privileged
@pytest.mark.slow
def test_tables_and_figures_rebuild_on_a_machine_without_the_testbed_tools(swept, tmp_path):
    """A laptop with the results: no ip, iperf3, ping, ITGSend, tcpdump, iptables, not even a
    shell on PATH; only snakemake (its scripts run with the venv's python)."""
    workdir = make_workdir(tmp_path)
    shutil.copytree(swept / "results/raw", workdir / "results/raw")
    bare = tmp_path / "bin"
    bare.mkdir()
    for program in ("python", "snakemake"):
        (bare / program).symlink_to(Path(sys.executable).parent / program)
    assert not [t for t in ("ip", "iperf3", "ping", "ITGSend", "tcpdump", "iptables-restore", "sh")
                if shutil.which(t, path=str(bare))]
    laptop = {"PATH": str(bare), "HOME": str(tmp_path)}
    result = snakemake(workdir, "tables", "figures", "--configfile", tiny(workdir), env=laptop)
    assert "excluded" not in result.stderr  # the checks of this machine spare measured setups
    assert "rule run_batch" not in result.stdout + result.stderr
    latency = tables.read(workdir / "results/tables/latency.parquet")
    assert set(latency["setup"]) == {"single-bridge-none-c2", "single-bridge-iptables-c2"}
    summary = tables.read(workdir / "results/tables/summary.parquet")
    assert set(summary["metric"]) == {"rtt_ms", "throughput_mbps"}
    for figure in ("latency_boxplot", "throughput_by_payload", "deploy_time"):
        assert "<svg" in (workdir / f"results/figures/{figure}.svg").read_text()


@pytest.mark.privileged
@pytest.mark.slow
def test_report_builds_and_every_figure_renders(swept):
    snakemake(swept, "--configfile", tiny(swept), "--report", "report.html")
    report = (swept / "report.html").read_text(errors="replace")
    figures = sorted(p.stem for p in (swept / "results/figures").glob("*.svg"))
    assert len(figures) >= 5
    for name in figures:
        assert name in report, f"figure {name} is not in the report"
        # what a reader's browser shows: the SVG rendered to pixels
        png = vl_convert.svg_to_png((swept / f"results/figures/{name}.svg").read_text())
        assert png.startswith(b"\x89PNG") and len(png) > 5000, name
    assert "findings.html" in report, "the paper's findings are not in the report"


@pytest.mark.privileged
@pytest.mark.slow
@pytest.mark.browser
def test_report_opens_in_a_browser_without_errors(swept):
    from tests.browser.chromium import open_page

    if not (swept / "report.html").exists():
        snakemake(swept, "--configfile", tiny(swept), "--report", "report.html")
    view = open_page(swept / "report.html")
    assert view.errors == [] and not [line for line in view.console if "rror" in line], (view.errors, view.console)
    # the report's scripts drew its page into <div id="app">: the menu, and the chart it opens
    # with (the rule graph, a Vega view); the figures themselves are checked in tests/browser
    drawn = view.dom.split('<div id="app">', 1)[1].split("<script", 1)[0]
    assert "Results" in drawn and "Statistics" in drawn, drawn[:2000]
    assert view.charts and all(chart["drawn"] > 0 for chart in view.charts), view.charts


@pytest.mark.privileged
@pytest.mark.slow
def test_resume_after_kill_9_reruns_only_missing_targets(tmp_path):
    workdir = make_workdir(tmp_path)
    argv = [SNAKEMAKE, "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir), "--cores", "2",
            "--configfile", tiny(workdir)]
    sweep = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        def amid_a_workload_after_three_targets() -> bool:
            # a target's partial directory appears as its workload starts (fsutil.atomic_directory)
            return len(complete_targets(workdir)) >= 3 and any((workdir / "results/raw").glob("*/*/.rep*.partial"))

        deadline = time.monotonic() + 600  # only against a hang: the kill waits for the event
        while not amid_a_workload_after_three_targets() and time.monotonic() < deadline and sweep.poll() is None:
            time.sleep(0.02)
        os.killpg(sweep.pid, signal.SIGKILL)
        sweep.wait()
        done = complete_targets(workdir)
        assert 3 <= len(done) < 8, f"kill came too late or too early: {sorted(done)}"
        # no complete-looking but incomplete target: every raw directory has its meta.json
        raw_dirs = {str(p.relative_to(workdir / "results/raw")) for p in (workdir / "results/raw").glob("*/*/rep*")}
        assert raw_dirs == set(done)

        snakemake(workdir, "--unlock", "--configfile", tiny(workdir))  # Snakemake's own lock survives kill -9
        jobs = planned(workdir, "--configfile", tiny(workdir))
        # a job per batch of the missing targets (docs/decisions.md), each named by its first target
        from seconetbench.sweep import batches, expand

        cfg = configuration.load_files(Path(tiny(workdir)))
        rerun = batches(expand(cfg).measurement_order("shuffled", 3), lambda target: target.path in done)
        assert set(jobs["run_batch"]) == {f"results/batches/{batch[0].path}.json" for batch in rerun}
        missing = {target.path for batch in rerun for target in batch}
        assert missing and not missing & set(done)
        assert len(missing) + len(done) == 8
        snakemake(workdir, "--configfile", tiny(workdir))
        after = complete_targets(workdir)
        assert len(after) == 8
        assert all(after[target] == started for target, started in done.items()), "a finished target was re-measured"
    finally:  # a failing assertion must not leave the sweep or its testbed behind
        if sweep.poll() is None:
            os.killpg(sweep.pid, signal.SIGKILL)
            sweep.wait()
        prefix = configuration.run_prefix({"results_dir": str(workdir / "results")})
        left = cleanup.leftovers(prefix)
        cleanup.remove(prefix)
    assert not any(left.values()), f"sweep left testbed objects: {left}"


ADAPTIVE = """
results_dir: results
repetitions: {{min: 6, max: 7, ci_halfwidth_pct: {target}}}
sweep:
  single: {{solutions: [bridge], filters: [none], containers: [2]}}
  workloads: [latency]
workloads:
  latency: {{kind: latency, count: 5, interval_s: 0.02}}
"""


@pytest.mark.privileged
@pytest.mark.slow
@pytest.mark.parametrize(("target", "reps", "status"), [("0.000001", 7, "not_converged"), ("1000000", 6, "converged")])
def test_adaptive_repetitions_add_targets_only_until_converged(tmp_path, target, reps, status):
    workdir = make_workdir(tmp_path, ADAPTIVE.format(target=target))
    snakemake(workdir, "--configfile", tiny(workdir))
    cell = "single-bridge-none-c2/latency"
    first = json.loads((workdir / "results/convergence/round0.json").read_text())["cells"][cell]
    if first["ci_halfwidth_pct"] == 0:
        # Six repetitions with the same median RTT (ping prints microseconds; rare but possible):
        # a CI of width 0 comes from ties, not precision, so the cell gets one more repetition,
        # and at max it converged only if the seventh widened the CI.
        medians = tables.read(workdir / "results/tables/latency.parquet").query("received") \
            .groupby("rep")["rtt_ms"].median()
        assert medians.iloc[:6].nunique() == 1, medians
        last = json.loads((workdir / "results/convergence/round1.json").read_text())["cells"][cell]
        reps = 7
        status = "converged" if 0 < last["ci_halfwidth_pct"] <= float(target) else "not_converged"
    assert sorted(complete_targets(workdir)) == [f"{cell}/rep{r}" for r in range(1, reps + 1)]
    summary = tables.read(workdir / "results/tables/summary.parquet")
    assert list(summary["convergence"]) == [status]
    assert list(summary["repetitions"]) == [reps] and list(summary["n"]) == [reps]  # n: repetitions
    assert summary["median_ci_low"].notna().all()  # 6 or more repetitions: a 95 % CI over them
    assert planned(workdir, "--configfile", tiny(workdir)) == {}
    assert_no_leftovers(workdir)


def test_batches_are_planned_from_the_missing_targets_of_the_latest_round(tmp_path):
    """Planning only (docs/decisions.md, "A measurement job measures a batch of targets"): after
    round 0 added a 7th repetition to three of four cells, one job per setup measures them, a
    batch record left by a killed run does not hide its batch, and a deleted raw directory is
    measured again in the batch of its setup and round."""
    workdir = make_workdir(tmp_path, TINY.replace("repetitions: 2", "repetitions: {min: 6, max: 7, ci_halfwidth_pct: 1}"))
    cfg = configuration.load_files(Path(tiny(workdir)))
    from seconetbench import cells
    from seconetbench.sweep import expand

    sweep = expand(cfg)
    for setup in sweep.setups:  # six complete repetitions per cell: their meta.json says with what
        for workload in sweep.workloads:
            params = cells.cell_params(setup, workload)
            for rep in range(1, 7):
                raw = workdir / f"results/raw/{setup.id}/{workload.name}/rep{rep}"
                raw.mkdir(parents=True)
                (raw / "meta.json").write_text(json.dumps({"cell_params": params,
                                                           "cell_fingerprint": cells.fingerprint(params)}))
    none, iptables = "single-bridge-none-c2", "single-bridge-iptables-c2"
    decided = {f"{none}/latency": 7, f"{none}/throughput_653": 7, f"{iptables}/latency": 6, f"{iptables}/throughput_653": 7}
    (workdir / "results/convergence").mkdir(parents=True)
    (workdir / "results/convergence/round0.json").write_text(
        json.dumps({"done": False, "cells": {cell: {"reps": reps} for cell, reps in decided.items()}}))
    stale = workdir / f"results/batches/{none}/latency/rep7.json"
    stale.parent.mkdir(parents=True)
    stale.write_text("{}\n")
    jobs = planned(workdir, "--configfile", tiny(workdir))
    assert sorted(jobs["run_batch"]) == [f"results/batches/{iptables}/throughput_653/rep7.json",
                                         f"results/batches/{none}/latency/rep7.json"]
    assert not stale.exists()
    # each setup is parsed again under the name of its cells' new repetition counts (in the
    # sweep's workload order: latency, throughput_653)
    assert {o for o in jobs["parse_setup"] if o.endswith(".latency.parquet")} == {
        f"results/parsed/{none}/reps7.latency.parquet", f"results/parsed/{iptables}/reps6-7.latency.parquet"}

    shutil.rmtree(workdir / f"results/raw/{iptables}/latency/rep3")
    jobs = planned(workdir, "--configfile", tiny(workdir))
    assert f"results/batches/{iptables}/latency/rep3.json" in jobs["run_batch"]
