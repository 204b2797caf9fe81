"""The workflow's compare target (config key compare): tables of other runs compared without
measuring, this sweep's own tables planned first, a missing run refused before any job."""

from __future__ import annotations

import json

import pytest

from tests.unit.test_compare import write_run
from tests.workflow.test_workflow import TINY, make_workdir, planned, snakemake, tiny

pytestmark = pytest.mark.workflow


def work(directory):
    directory.mkdir()
    return directory


def with_compare(baseline, candidates, extra: str = "") -> str:
    return TINY + f"compare:\n  baseline: {baseline}\n  candidates: {json.dumps([str(c) for c in candidates])}\n{extra}"


def test_compare_target_reads_other_runs_tables_and_never_measures(tmp_path):
    base, slow = write_run(tmp_path / "base"), write_run(tmp_path / "slow", bytes_per_interval=75_000_000)
    series = tmp_path / "nightly"
    write_run(series / "2026-12-01")
    write_run(series / "2026-12-02", bytes_per_interval=75_000_000)
    extra = f"  thresholds: {{rtt_ms: 10}}\n  series: {series}\n"
    workdir = make_workdir(work(tmp_path / "work"), with_compare(base, [slow / "tables"], extra))
    assert planned(workdir, "compare", "--configfile", tiny(workdir)) == {
        "compare_runs": ["results/compare/compare.json", "results/compare/compare.txt",
                         "results/compare/summary.html", "results/compare/series.json"], "compare": []}
    snakemake(workdir, "compare", "--configfile", tiny(workdir))
    report = json.loads((workdir / "results/compare/compare.json").read_text())
    assert report["regressions"] > 0 and report["method"]["thresholds_pct"]["rtt_ms"] == 10
    assert json.loads((workdir / "results/compare/series.json").read_text())["regressed"]
    assert "<svg" in (workdir / "results/compare/ratio.svg").read_text()
    assert not (workdir / "results/raw").exists()


def test_this_sweeps_own_results_are_built_before_they_are_compared(tmp_path):
    base = write_run(tmp_path / "base")
    workdir = make_workdir(work(tmp_path / "work"), with_compare(base, ["results"]))
    jobs = planned(workdir, "compare", "--configfile", tiny(workdir))
    assert {"run_batch", "aggregate_table", "compare_runs"} <= set(jobs)


def test_a_run_without_tables_is_refused_before_any_job(tmp_path):
    workdir = make_workdir(tmp_path, with_compare(tmp_path / "nowhere", ["results"]))
    result = snakemake(workdir, "--configfile", tiny(workdir), check=False)
    assert result.returncode != 0
    assert "compare.baseline" in result.stdout + result.stderr and "no tables there" in result.stdout + result.stderr
    assert not (tmp_path / "results").exists()
