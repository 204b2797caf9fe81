"""`seconetbench plan`: the counts come from the sweep's own expansion and run order, the
estimate is the workloads' nominal times plus measured overheads (seconetbench.plan)."""

from __future__ import annotations

import itertools
import json

import pytest

from seconetbench import cli, config, plan
from seconetbench.spec import SetupSpec, WorkloadSpec
from seconetbench.sweep import expand
from seconetbench.workloads import get_workload
from tests.conftest import REPO

pytestmark = pytest.mark.unit

# overheads as the calibration writes them, with round numbers so that sums can be checked by hand
OVERHEADS = {
    "invocation_s": 10.0, "between_targets_s": 0.5, "parse_job_s": 1.0, "finish_s": 20.0,
    "deploy": {"scenarios": {"single": {"base_s": 3.0, "per_container_s": 0.2}},
               "families": {"single-bridge-none": {"base_s": 2.0, "per_container_s": 0.1}}},
    "workloads": {"latency": {"base_s": 1.0, "pairs": 0.5}, "throughput": {"base_s": 2.0}},
}


def cfg_of(reps=2, containers=(2,), filters=("none",), mode="grouped", reuse=True, results="results/t"):
    return config.validate({
        "results_dir": results, "repetitions": reps, "run_order": {"mode": mode},
        "testbed": {"reuse_deployment": reuse},
        "sweep": {"single": {"solutions": ["bridge"], "filters": list(filters), "containers": list(containers)},
                  "workloads": ["ping", "bulk"]},
        "workloads": {"ping": {"kind": "latency", "count": 10, "interval_s": 0.5},
                      "bulk": {"kind": "throughput", "payload_bytes": 64, "duration_s": 4}},
    })


def planned(cfg, tmp_path, overheads=OVERHEADS):
    return plan.estimate(cfg, expand(cfg), overheads, tmp_path)


def test_estimate_is_the_sum_of_nominal_times_and_measured_overheads(tmp_path):
    report = planned(cfg_of(reps=2), tmp_path)
    # one setup c2 (1 pair), 2 workloads x 2 repetitions, grouped: one deploy, one parse job
    assert (report["targets"], report["deploys"], report["parse_jobs"]) == (4, 1, 1)
    ping = 9 * 0.5 + (1.0 + 0.5 * 1) + 0.5  # the last of 10 pings leaves 9 intervals after the first
    bulk = 4 + 2.0 + 0.5
    expected = 10.0 + (2.0 + 0.1 * 2) + 2 * (ping + bulk) + 1 * 1.0 + 20.0
    assert report["estimate_s"] == pytest.approx(expected)
    assert "estimate_s_min" not in report and not report["adaptive"]


@pytest.mark.parametrize(("mode", "reuse", "deploys"), [
    ("grouped", True, 4),       # each setup once
    ("blocked", True, 4 * 3),   # each setup once per round
    ("grouped", False, 4 * 2 * 3),  # every target
])
def test_deploys_follow_the_run_order_and_reuse(tmp_path, mode, reuse, deploys):
    cfg = cfg_of(reps=3, containers=(2, 8), filters=("none", "iptables"), mode=mode, reuse=reuse)
    report = planned(cfg, tmp_path)
    assert report["targets"] == 4 * 2 * 3 and report["parse_jobs"] == 4  # a job per setup
    assert report["deploys"] == deploys


def test_shuffled_order_deploys_at_every_change_of_setup(tmp_path):
    cfg = cfg_of(reps=3, containers=(2, 8), filters=("none", "iptables"), mode="shuffled")
    order = expand(cfg).run_order("shuffled", 1)
    changes = 1 + sum(a.setup != b.setup for a, b in itertools.pairwise(order))
    assert planned(cfg, tmp_path)["deploys"] == changes > 4


def test_a_family_without_measured_deploy_takes_its_scenarios_average(tmp_path):
    report = planned(cfg_of(filters=("iptables",)), tmp_path)
    assert report["overheads"]["unmeasured_deploy_families"] == ["single-bridge-iptables"]
    assert report["ends"]["min"]["deploying_s"] == pytest.approx(3.0 + 0.2 * 2)
    assert any("single-bridge-iptables" in note for note in report["notes"])


def test_adaptive_repetitions_give_a_range_from_min_to_max(tmp_path):
    cfg = cfg_of(reps={"min": 6, "max": 10, "ci_halfwidth_pct": 5}, containers=(2, 8))
    report = planned(cfg, tmp_path)
    low, high = report["ends"]["min"], report["ends"]["max"]
    setups, cells = 2, 2 * 2
    assert (low["targets"], high["targets"]) == (cells * 6, cells * 10)
    assert (low["parse_jobs"], high["parse_jobs"]) == (setups, 2 * setups)  # a job per setup, again at max
    assert (low["convergence_rounds"], high["convergence_rounds"]) == (1, 2)
    assert report["estimate_s_min"] == report["estimate_s"] == low["estimate_s"] < report["estimate_s_max"]
    assert report["estimate_s_max"] == high["estimate_s"]
    assert "to" in plan.format_plan(report)


def test_a_budget_caps_the_upper_end_but_never_the_minimum(tmp_path):
    free = planned(cfg_of(reps={"min": 6, "max": 10, "ci_halfwidth_pct": 5}, containers=(2, 8)), tmp_path)
    budget_h = (free["ends"]["min"]["sweep_s"] + 60) / 3600  # a minute beyond the min repetitions
    capped = planned(cfg_of(reps={"min": 6, "max": 10, "ci_halfwidth_pct": 5, "budget_h": budget_h},
                            containers=(2, 8)), tmp_path)
    high = capped["ends"]["max"]
    assert high["capped_by_budget"] and high["sweep_s"] == pytest.approx(budget_h * 3600, abs=0.1)
    assert capped["estimate_s_min"] == free["estimate_s_min"] < capped["estimate_s_max"] < free["estimate_s_max"]
    assert "budget" in plan.format_plan(capped)
    tiny = planned(cfg_of(reps={"min": 6, "max": 10, "ci_halfwidth_pct": 5, "budget_h": 0.001}), tmp_path)
    assert tiny["ends"]["max"]["sweep_s"] == tiny["ends"]["min"]["sweep_s"]  # min is measured whatever


def test_the_convergence_round_prices_repetitions_only_under_a_budget():
    adaptive = {"min": 6, "max": 10, "ci_halfwidth_pct": 5}
    assert plan.budget_cell_costs(cfg_of(reps=adaptive)) is None
    budgeted = cfg_of(reps={**adaptive, "budget_h": 2.0}, containers=(2, 8))
    costs = plan.budget_cell_costs(budgeted)
    assert costs == plan.cell_costs(expand(budgeted)) and len(costs) == 2 * 2 and min(costs.values()) > 0


def test_cell_costs_are_the_planned_seconds_of_one_more_repetition(tmp_path):
    cfg = cfg_of()
    costs = plan.cell_costs(expand(cfg), OVERHEADS)
    assert costs == {"single-bridge-none-c2/ping": pytest.approx(9 * 0.5 + 1.5 + 0.5),
                     "single-bridge-none-c2/bulk": pytest.approx(4 + 2.0 + 0.5)}


def test_targets_already_measured_are_not_counted(tmp_path):
    cfg = cfg_of(reps=2)
    (tmp_path / "raw" / "single-bridge-none-c2" / "ping" / "rep1").mkdir(parents=True)
    report = planned(cfg, tmp_path)
    assert report["already_measured"] == 1 and report["targets"] == 3


def test_excluded_setups_are_not_counted(tmp_path):
    # filter ovs needs solution ovs: the sweep excludes bridge/ovs with the reason
    cfg = cfg_of(filters=("none", "ovs"))
    report = planned(cfg, tmp_path)
    assert (report["setups"], report["excluded_setups"], report["targets"]) == (1, 1, 2 * 2)


def test_workloads_say_their_nominal_time_and_cost_drivers():
    c32 = SetupSpec("multi", "bridge", "none", 32, tunnel="vxlan", hosts=2)
    first = get_workload(WorkloadSpec("fp", "first_packet", {"probes": 10, "warm_gap_s": 0.1}))
    assert first.nominal_s(c32) == pytest.approx(16 * 10 * 0.1) and first.cost_drivers(c32) == {"probes": 160}
    tcp = get_workload(WorkloadSpec("t", "tcp100", config.validate({
        "sweep": {"workloads": ["t"], "single": {"solutions": ["bridge"], "filters": ["none"], "containers": [2]}},
        "workloads": {"t": {"kind": "tcp100", "flows": 7, "duration_s": 30}}})["workloads"]["t"]))
    drivers = tcp.cost_drivers(c32)
    from seconetbench.workloads.ditg import START_DELAY_MS  # every flow starts after it

    assert tcp.nominal_s(c32) == 30 + START_DELAY_MS / 1000 and drivers["flows"] == 7 and drivers["pairs"] == 16
    assert drivers["packets"] == pytest.approx(16 * 7 * 30 * tcp.params["rate_kbps"] * 1000 / 8 / tcp.params["payload_bytes"])
    single = SetupSpec("single", "bridge", "none", 8)
    spoofing = get_workload(WorkloadSpec("s", "spoofing", {}))
    assert spoofing.cost_drivers(single) == {"multi_host": 0.0, "pairs": 0}  # not_applicable at once
    assert spoofing.cost_drivers(c32) == {"multi_host": 1.0, "pairs": 16}


def test_fit_recovers_costs_and_leaves_out_what_it_cannot_tell_apart():
    rows = [({"pairs": p, "flows": f, "constant": 3}, 2 + 0.5 * p + 0.01 * f) for p in (1, 4, 16) for f in (1, 20, 100)]
    fitted = plan.fit_linear(rows)
    assert fitted == pytest.approx({"base_s": 2.0, "pairs": 0.5, "flows": 0.01}, abs=1e-6)
    # a cost that would come out negative is dropped and the rest fitted again
    falling = [({"pairs": p}, 5 - 0.1 * p) for p in (1, 4, 16)]
    assert set(plan.fit_linear(falling)) == {"base_s"}


def meta(setup: SetupSpec, workload: WorkloadSpec, started: float, duration: float, reused: bool) -> dict:
    return {"setup": setup.to_dict(), "workload": workload.to_dict(), "started_at": started,
            "finished_at": started + duration, "duration_s": duration, "deployment": {"reused": reused}}


def test_parsing_is_fitted_per_job_and_per_target_and_never_negative():
    assert plan.fit_parsing([(2, 4, 5.0), (2, 2, 4.0)]) == pytest.approx({"parse_job_s": 1.5, "parse_target_s": 0.5})
    # more targets took less time (noise): the per-target term would be negative, so jobs carry it all
    assert plan.fit_parsing([(2, 10, 2.0), (4, 4, 6.0)]) == pytest.approx({"parse_job_s": 8.0 / 6, "parse_target_s": 0.0}, abs=1e-4)


def test_calibration_reads_gaps_deploys_and_residuals_from_the_runs():
    ping = WorkloadSpec("ping", "latency", {"count": 10, "interval_s": 0.5, "payload_bytes": 56})
    c2, c32 = SetupSpec("single", "bridge", "none", 2), SetupSpec("single", "bridge", "none", 32)
    # workload run: c2 then c32, two targets each; the targets last 5 s + 1 s + 0.25 s per pair
    metas, t = [], 100.0
    for setup in (c2, c32):
        for rep in range(2):
            t += 0.2 if rep else 0.2 + (1.0 + 0.05 * setup.containers)  # between targets; a deploy first
            duration = 5 + 1 + 0.25 * setup.pairs
            metas.append(meta(setup, ping, t, duration, reused=bool(rep)))
            t += duration
    # parsing: 1.5 s per job and 0.5 s per target (workload run: 2 jobs, 4 targets)
    workload_run = {"metas": metas, "started": 90.0, "parsed": t + 5, "ended": t + 15, "parse_jobs": 2}
    # deploy run: c32, then c2 after its deploy (1 s + 0.05 s per container)
    deploy_run = {"metas": [meta(c32, ping, 300.0, 10.0, False), meta(c2, ping, 310.0 + 0.2 + 1.1, 6.25, False)],
                  "started": 290.0, "parsed": 317.55 + 4, "ended": 317.55 + 14, "parse_jobs": 2}
    fitted = plan.fit_overheads(workload_run, deploy_run)
    assert fitted["between_targets_s"] == pytest.approx(0.2)
    assert fitted["deploy"]["families"]["single-bridge-none"] == pytest.approx({"base_s": 1.0, "per_container_s": 0.05})
    assert fitted["workloads"]["latency"] == pytest.approx({"base_s": 1.5, "pairs": 0.25})  # nominal 4.5 s
    assert (fitted["parse_job_s"], fitted["parse_target_s"]) == pytest.approx((1.5, 0.5))  # 2 jobs, 2 targets: 4 s
    assert fitted["finish_s"] == pytest.approx(10.0)


def test_packaged_overheads_cover_every_workload_of_the_full_sweep():
    overheads = plan.load_overheads()
    cfg = config.load_files(REPO / "config/full.yaml")
    groups = {plan.cost_group(get_workload(w)) for w in expand(cfg).workloads}
    assert groups <= set(overheads["workloads"])
    assert overheads["regenerate"].endswith(plan.CALIBRATE)


def test_cli_plan_json_of_the_full_sweep(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # results_dir relative to here: nothing measured yet
    assert cli.main(["plan", "--config", str(REPO / "config/full.yaml"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["adaptive"] and report["estimate_s_min"] < report["estimate_s_max"]
    assert report["targets"] == report["cells"] * report["config"]["repetitions"]["min"]
    assert not report["overheads"]["unmeasured_workloads"]
