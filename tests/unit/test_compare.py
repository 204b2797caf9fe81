"""`seconetbench compare`: runs read from their tables only, ratios with bootstrap CIs, regressions
by metric direction and threshold, the environment diff, jumpavg change points, the report files."""

from __future__ import annotations

import json
import math
import sys

import numpy as np
import pytest

from seconetbench import cli, compare, pipeline, tables
from seconetbench.stats import WORSE_WHEN
from tests.unit import tablegen

pytestmark = pytest.mark.unit

SETUPS = ("single-bridge-none-c2", "single-bridge-iptables-c2", "multi-wireguard-none-c4")
THROUGHPUT_WORKLOADS = ["throughput_64", "throughput_653", "throughput_1370"]


def write_run(directory, *, reps=6, bytes_per_interval=125_000_000, rtt_factor=1.0, seed=0, environment=None,
              setups=SETUPS, cipher="chacha20poly1305"):
    """A results directory holding only tables/ (no raw, no parsed): what a shared run looks like."""
    out = directory / "tables"
    out.mkdir(parents=True)
    latency = tablegen.latency_table(setups, reps=reps, seed=seed)
    latency["rtt_ms"] = latency["rtt_ms"] * rtt_factor
    run_meta = {"environment": environment or {"kernel": ["6.1.0-28-amd64"], "tool iperf3": ["iperf 3.12"]}}
    tables.write(latency, "latency", out / "latency.parquet", meta=run_meta)
    tables.write(tablegen.throughput_table(setups, reps=reps, bytes_per_interval=bytes_per_interval), "throughput",
                 out / "throughput.parquet", meta=run_meta)
    tables.write(tablegen.ditg_table(setups, reps=reps), "ditg", out / "ditg.parquet")
    tables.write(tablegen.host_usage_table(setups, workloads=THROUGHPUT_WORKLOADS, reps=reps), "host_usage",
                 out / "host_usage.parquet")
    deployment = tablegen.deployment_table(setups, reps=reps)
    deployment.loc[deployment["tunnel"] != "none", "tunnel_cipher"] = cipher
    tables.write(deployment, "deployment", out / "deployment.parquet")
    return directory


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    return {"base": write_run(root / "base"),
            # 40 % less data per interval: every throughput cell drops to 0.6x (CPU per gigabit rises)
            "slow": write_run(root / "slow", bytes_per_interval=75_000_000, seed=1,
                              environment={"kernel": ["6.12.9-amd64"], "tool iperf3": ["iperf 3.12"]},
                              cipher="aes256gcm16"),
            "other_seed": write_run(root / "other_seed", seed=3)}


def run_cli(capsys, *argv):
    status = cli.main(["compare", *map(str, argv)])
    return status, capsys.readouterr()


# ------------------------------------------------------------------------------ the gate
def test_a_40_percent_throughput_drop_is_a_regression_with_a_nonzero_exit(runs, capsys):
    status, out = run_cli(capsys, runs["base"], runs["slow"], "--json")
    report = json.loads(out.out)
    assert status == compare.REGRESSION_EXIT != 0
    cells = compare.cells_frame(report)
    throughput = cells[cells["metric"] == "throughput_mbps"]
    assert len(throughput) == len(SETUPS) * 3
    assert (throughput["verdict"] == "regression").all()
    assert throughput["ratio"].between(0.58, 0.63).all()  # (75 + r) / (125 + r) MB per interval
    assert (throughput["ratio_ci_high"] < 0.95).all()
    # the same drop costs CPU per gigabit (higher is worse): flagged too
    cost = cells[cells["metric"] == "cpu_s_per_gbit"]
    assert len(cost) == len(SETUPS) * 3 and (cost["verdict"] == "regression").all()
    # latency and D-ITG delay did not change beyond the threshold: never a regression
    others = cells[cells["metric"].isin(["rtt_ms", "delay_ms"])]
    assert len(others) == len(SETUPS) * 3 and not (others["verdict"] == "regression").any()
    assert report["regressions"] == len(throughput) + len(cost)


def test_a_run_compared_with_itself_is_silent(runs, capsys):
    status, out = run_cli(capsys, runs["base"], runs["base"])
    assert status == 0
    assert "no regression" in out.out and "REGRESSION" not in out.out
    assert "nothing recorded differs" in out.out
    report = compare.compare(runs["base"], [runs["base"]])
    verdicts = set(compare.cells_frame(report)["verdict"])
    assert verdicts <= {"unchanged", "inconclusive"} and report["counts"]["unchanged"] > 0
    assert report["unmatched"] == []


def test_another_run_of_the_same_setups_is_no_regression(runs, capsys):
    status, out = run_cli(capsys, runs["base"], runs["other_seed"])
    assert status == 0, out.out


def test_the_tables_directory_itself_can_be_named(runs):
    report = compare.compare(runs["base"] / "tables", [runs["slow"] / "tables"])
    assert report["regressions"] > 0


def test_per_metric_thresholds_and_their_errors(runs, capsys):
    # a 50 % throughput threshold lets the 40 % drop pass; CPU per gigabit rose 64 %: still flagged
    status, out = run_cli(capsys, runs["base"], runs["slow"], "--threshold", "throughput_mbps=50", "--json")
    cells = compare.cells_frame(json.loads(out.out))
    assert not (cells.loc[cells["metric"] == "throughput_mbps", "verdict"] == "regression").any()
    assert (cells.loc[cells["metric"] == "cpu_s_per_gbit", "verdict"] == "regression").all()
    assert status == compare.REGRESSION_EXIT
    status, out = run_cli(capsys, runs["base"], runs["slow"], "--threshold", "jitter=5")
    assert status == 1 and "--threshold: unknown metric(s) ['jitter']" in out.err
    status, out = run_cli(capsys, runs["base"], runs["slow"], "--threshold-pct", "0")
    assert status == 1 and "--threshold-pct" in out.err


def test_a_missing_run_is_named_with_what_to_give(runs, tmp_path, capsys):
    status, out = run_cli(capsys, runs["base"], tmp_path / "nowhere")
    assert status == 1
    assert "candidate 1" in out.err and "nowhere" in out.err and "results directory" in out.err
    status, out = run_cli(capsys, runs["base"])
    assert status == 1 and "at least one candidate" in out.err


def test_cells_of_one_run_only_are_listed_not_compared(runs, tmp_path):
    fewer = write_run(tmp_path / "fewer", setups=SETUPS[:2])
    report = compare.compare(runs["base"], [fewer])
    alone = {(row["setup"], row["only_in"]) for row in report["unmatched"]}
    assert alone == {("multi-wireguard-none-c4", "baseline")}
    assert "multi-wireguard-none-c4" not in set(compare.cells_frame(report)["setup"])
    assert "baseline  rtt_ms           multi-wireguard-none-c4 (userspace) latency" in compare.format_report(report, True)


# ------------------------------------------------------------------------------ direction and CI
def test_direction_comes_from_the_one_list_latency_up_is_worse_throughput_up_is_better(runs, tmp_path):
    slower_ping = write_run(tmp_path / "slower_ping", rtt_factor=1.4)
    cells = compare.cells_frame(compare.compare(runs["base"], [slower_ping]))
    latency = cells[cells["metric"] == "rtt_ms"]
    assert WORSE_WHEN["rtt_ms"] == "higher" and (latency["worse_when"] == "higher").all()
    assert (latency["verdict"] == "regression").all()
    # the other way round, the same cells are improvements
    report = compare.compare(slower_ping, [runs["base"]])
    cells = compare.cells_frame(report)
    assert (cells.loc[cells["metric"] == "rtt_ms", "verdict"] == "improvement").all()
    faster = compare.cells_frame(compare.compare(runs["slow"], [runs["base"]]))
    assert (faster.loc[faster["metric"] == "throughput_mbps", "verdict"] == "improvement").all()


@pytest.mark.parametrize(("low", "high", "worse_when", "expected"), [
    (1.06, 1.20, "higher", "regression"), (1.06, 1.20, "lower", "improvement"),
    (0.80, 0.94, "lower", "regression"), (0.80, 0.94, "higher", "improvement"),
    (0.96, 1.04, "higher", "unchanged"), (0.97, 1.10, "higher", "inconclusive"),
    (0.90, 1.02, "lower", "inconclusive"), (math.nan, math.nan, "lower", "no_ci"),
])
def test_verdict_needs_the_whole_ci_beyond_the_threshold(low, high, worse_when, expected):
    assert compare.verdict(low, high, worse_when, 5.0) == expected


def test_ratio_ci_is_seeded_and_needs_five_repetitions_a_side():
    rng = np.random.default_rng(2)
    base, cand = rng.normal(100, 3, 8), rng.normal(80, 3, 8)
    first = compare.ratio_ci(base, cand, seed=5)
    assert first == compare.ratio_ci(base, cand, seed=5)
    ratio, low, high = first
    assert ratio == pytest.approx(np.median(cand) / np.median(base))
    assert low < ratio < high < 0.9
    few = compare.ratio_ci(base[:4], cand, seed=5)
    assert few[0] == pytest.approx(np.median(cand) / np.median(base[:4])) and math.isnan(few[1])
    assert compare.MIN_REPETITIONS == 5


def test_the_bootstrap_ci_of_the_ratio_covers_about_95_percent_from_five_repetitions():
    """Coverage simulation (docs/statistics.md, "Comparing runs"): two runs of the same
    distribution, the true ratio is 1; fixed seeds, 300 pairs of samples per case."""
    rng = np.random.default_rng(11)
    draws = {"normal": lambda n: rng.normal(100, 5, n), "lognormal": lambda n: np.exp(rng.normal(0, 0.5, n))}
    for name, draw in draws.items():
        for n in (5, 8):
            covered = sum(low <= 1 <= high for _, low, high in
                          (compare.ratio_ci(draw(n), draw(n), seed=i, resamples=2000) for i in range(300)))
            # 3 binomial standard errors below 95 % at 300 trials: 3.8 points
            assert covered / 300 >= 0.912, (name, n, covered)


# ------------------------------------------------------------------------------ environment
def test_the_environment_diff_lists_only_what_differs(runs):
    report = compare.compare(runs["base"], [runs["slow"]])
    differences = report["environment"][0]["differences"]
    by_fact = {d["fact"]: d for d in differences}
    assert by_fact["kernel"]["baseline"] == ["6.1.0-28-amd64"] and by_fact["kernel"]["candidate"] == ["6.12.9-amd64"]
    assert "tool iperf3" not in by_fact  # the same in both
    cipher = by_fact["tunnel_cipher"]
    assert cipher["setups"] == ["multi-wireguard-none-c4"]
    assert (cipher["baseline"], cipher["candidate"]) == (["chacha20poly1305"], ["aes256gcm16"])
    text = compare.format_report(report)
    assert text.index("kernel: 6.1.0-28-amd64 -> 6.12.9-amd64") < text.index("regression ")


def test_aggregated_tables_carry_the_environment_of_their_targets(tmp_path):
    """pipeline.aggregate summarises the parsed cells' meta.json into the table, so that the
    tables alone (raw and parsed gone) give compare its environment diff."""
    def meta(rep, kernel):
        return {"started_at": 1000.0 + rep, "finished_at": 1001.0 + rep,
                "machine": {"kernel": kernel, "cpu_model": "AMD EPYC", "hostname": "vm", "cpus": 2},
                "setup": {"backend": "netns"}, "deployment": {"vm": {"accel": "tcg"}},
                "software": {"seconetbench": "0.1.0", "git_revision": "abc", "tools": {"ping": "ping from iputils 20221126",
                                                                                     "uperf": None}}}
    frame = tablegen.latency_table(reps=2)
    parsed = tmp_path / "parsed" / "single-bridge-none-c2" / "latency" / "reps2.parquet"
    parsed.parent.mkdir(parents=True)
    tables.write(frame, "latency", parsed, meta={"reps": {"1": meta(1, "6.1.0"), "2": meta(2, "6.1.0")}})
    out = tmp_path / "tables" / "latency.parquet"
    out.parent.mkdir()
    pipeline.aggregate("latency", [parsed], out)
    stored = tables.read_table_meta(out)
    assert stored["environment"]["kernel"] == ["6.1.0"]
    assert stored["environment"]["accelerator"] == ["tcg"]
    assert stored["environment"]["tool ping"] == ["ping from iputils 20221126"]
    assert "tool uperf" not in stored["environment"]  # a tool that was not there says nothing
    assert stored["measured_from"] == 1001.0
    parsed.unlink()  # shared without parsed or raw files
    run = compare.load_run(tmp_path)
    assert run.environment == stored["environment"] and run.measured_from == 1001.0


# ------------------------------------------------------------------------------ jumpavg
def test_jumpavg_finds_a_step_and_keeps_a_flat_series_whole():
    rng = np.random.default_rng(0)
    step = [rng.normal(1000, 10, 6) for _ in range(8)] + [rng.normal(900, 10, 6) for _ in range(8)]
    groups = compare.jumpavg(step)
    assert [(g.first, g.last) for g in groups] == [(0, 7), (8, 15)]
    assert groups[0].size == 48 and groups[1].avg == pytest.approx(900, rel=0.01)
    flat = [rng.normal(1000, 10, 6) for _ in range(16)]
    assert [(g.first, g.last) for g in compare.jumpavg(flat)] == [(0, 15)]
    # a 2 % move inside 3 % noise is no change point
    noisy = [rng.normal(1000, 30, 6) for _ in range(8)] + [rng.normal(980, 30, 6) for _ in range(8)]
    assert len(compare.jumpavg(noisy)) == 1


def test_jumpavg_separates_levels_of_single_values_and_refuses_empty_runs():
    groups = compare.jumpavg([1, 1, 1, 1, 5, 5, 5, 5, 2, 2, 2, 2])
    assert [(g.first, g.last) for g in groups] == [(0, 3), (4, 7), (8, 11)]
    assert [g.avg for g in groups] == pytest.approx([1.0, 5.0, 2.0])
    with pytest.raises(ValueError, match="at least one value"):
        compare.jumpavg([[1.0, 2.0], []])
    with pytest.raises(ValueError, match="positive"):
        compare.jumpavg([0.0, 0.0])


def test_a_series_marks_where_throughput_dropped_and_gates_on_the_newest_run(tmp_path, capsys):
    series = tmp_path / "nightly"
    for day in range(1, 7):  # names sort by time (no measuring time in these tables)
        write_run(series / f"2026-12-0{day}", bytes_per_interval=125_000_000 if day < 4 else 75_000_000, seed=day,
                  setups=SETUPS[:1])
    report = compare.series(series)
    assert report["runs"] == [str(series / f"2026-12-0{day}") for day in range(1, 7)]
    cells = {(c["setup"], c["workload"], c["metric"]): c for c in report["cells"]}
    throughput = cells[("single-bridge-none-c2", "throughput_653", "throughput_mbps")]
    assert [g["first_run"] for g in throughput["groups"]] == [report["runs"][0], report["runs"][3]]
    point, = throughput["change_points"]
    assert point["direction"] == "worse" and point["beyond_threshold"] and point["ratio"] == pytest.approx(0.61, abs=0.02)
    assert all(not cells[key]["change_points"] for key in cells if key[2] == "delay_ms")
    assert {(c["setup"], c["metric"]) for c in report["regressed"]} == {(SETUPS[0], "throughput_mbps"),
                                                                       (SETUPS[0], "cpu_s_per_gbit")}
    status, out = run_cli(capsys, "--series", series)
    assert status == compare.REGRESSION_EXIT and "worse ×0.61" in out.out
    # the same series recovering on its newest run: the drop is history, no gate
    write_run(series / "2026-12-07", seed=7, setups=SETUPS[:1])
    status, out = run_cli(capsys, "--series", series)
    assert status == 0, out.out
    status, out = run_cli(capsys, "--series", tmp_path / "none")
    assert status == 1 and "not a directory" in out.err


# ------------------------------------------------------------------------------ files
def test_report_files_figure_and_html_summary(runs, tmp_path):
    report = compare.compare(runs["base"], [runs["slow"]])
    written = compare.write_outputs(report, tmp_path / "compare")
    assert sorted(p.name for p in written) == ["compare.json", "compare.txt", "ratio.html", "ratio.svg", "summary.html"]
    assert json.loads((tmp_path / "compare" / "compare.json").read_text())["regressions"] == report["regressions"]
    summary = (tmp_path / "compare" / "summary.html").read_text()
    assert "Environment: " in summary and "6.12.9-amd64" in summary and "vega-embed" in summary
    assert summary.count("<tr>") > report["regressions"]  # a row per flagged cell, and the diff
    svg = (tmp_path / "compare" / "ratio.svg").read_text()
    assert "<svg" in svg and "throughput_653: throughput_mbps (lower is worse)" in svg
    from seconetbench.figures import compare as compare_figures

    spec = compare_figures.ratio_figure(report).to_dict()
    drawn = next(iter(spec["datasets"].values()))
    assert {row["verdict"] for row in drawn if row["panel"].endswith("throughput_mbps (lower is worse)")} == {"regression"}
    colours = dict(zip(*[spec["spec"]["layer"][3]["encoding"]["color"]["scale"][k] for k in ("domain", "range")]))
    assert colours["regression"] != colours["improvement"]


def test_a_report_without_a_shared_cell_still_writes_its_summary(runs, tmp_path):
    other = write_run(tmp_path / "other", setups=("single-bridge-none-c8",))
    report = compare.compare(runs["base"], [other])
    assert report["cells"] == [] and len(report["unmatched"]) > 0
    assert [p.name for p in compare.write_outputs(report, tmp_path / "out")][-1] == "summary.html"


def test_the_command_is_reachable_as_a_module(runs):
    import subprocess

    result = subprocess.run([sys.executable, "-m", "seconetbench", "compare", str(runs["base"]), str(runs["slow"])],
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == compare.REGRESSION_EXIT, result.stderr
    assert "REGRESSION in" in result.stdout


def test_every_summary_metric_has_a_direction():
    from seconetbench import convergence

    metrics = {metric for kind in convergence.REPETITION_METRICS for _, metric, _ in convergence.summary_metrics(kind)}
    assert metrics | {"cpu_s_per_gbit"} <= set(WORSE_WHEN)
    assert set(WORSE_WHEN.values()) == {"higher", "lower"}


def test_the_config_key_takes_the_metrics_with_a_direction_and_refuses_a_self_comparison():
    from seconetbench import config
    from seconetbench.errors import ConfigError

    sweep = {"sweep": {"workloads": ["latency"], "single": {"solutions": ["bridge"], "filters": ["none"],
                                                            "containers": [2]}},
             "workloads": {"latency": {"kind": "latency"}}}
    settled = config.validate({**sweep, "compare": {"baseline": "results/a", "candidates": ["results/b"]}})
    assert settled["compare"]["threshold_pct"] == compare.DEFAULT_THRESHOLD_PCT
    with pytest.raises(ConfigError, match=r"compare.candidates\[1\].*the baseline itself"):
        config.validate({**sweep, "compare": {"baseline": "results/a", "candidates": ["results/b", "results/a"]}})
    with pytest.raises(ConfigError, match=r"compare.thresholds.jitter_ms.*use one of .*'throughput_mbps'"):
        config.validate({**sweep, "compare": {"baseline": "a", "candidates": ["b"], "thresholds": {"jitter_ms": 5}}})


def test_tables_from_before_the_implementation_column_compare_as_unknown(runs, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    old = tmp_path / "old" / "tables"
    old.mkdir(parents=True)
    frame = tablegen.latency_table(SETUPS[:1], reps=6).drop(columns=["implementation"])
    table = pa.Table.from_pandas(frame, preserve_index=False)
    pq.write_table(table.replace_schema_metadata({b"seconetbench.kind": b"latency"}), old / "latency.parquet")
    report = compare.compare(old.parent, [old.parent])
    assert {row["implementation"] for row in report["cells"]} == {"unknown"}
    # against a run that records it, the cells are in one run each
    report = compare.compare(runs["base"], [old.parent])
    assert {row["implementation"] for row in report["unmatched"] if row["only_in"] == "candidate"} == {"unknown"}
