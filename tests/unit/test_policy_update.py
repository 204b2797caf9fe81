"""policy_update (issue 15) without a testbed: the table from a recorded real run (bridge ×
iptables, 4 containers, 4 changes on c01-c03: tests/fixtures/policy_update/), the effect rule on
its own probes, the plan of changes, not_enforced setups, the summary's rows and the figures."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jsonschema
import numpy as np
import pandas as pd
import pytest

from seconetbench import config, figures, pipeline, tables
from seconetbench.backends.base import Container, Deployment, Host
from seconetbench.backends.netns import NamespaceAccess, NetnsBackend
from seconetbench.errors import ConfigError
from seconetbench.spec import SetupSpec
from seconetbench.workloads import policy
from tests.conftest import SHARED_FIXTURES, parsed_as_the_workflow_does

pytestmark = pytest.mark.unit

RECORDED = SHARED_FIXTURES / "policy_update" / "single-bridge-iptables-c4"


def recorded_rows(out: Path) -> pd.DataFrame:
    """The policy_update table of the recorded run, parsed as the workflow parses (to *out*)."""
    return parsed_as_the_workflow_does(RECORDED, out, target_tables=False)


def recorded_as(setups: list[tuple[str, str]], out: Path, reps: int = 1) -> pd.DataFrame:
    """The recorded rows once per (setup id, implementation) and repetition 1..*reps*: a table of
    several setups for the figures' tests."""
    rows = recorded_rows(out)
    frames = []
    for setup, implementation in setups:
        scenario, solution, filter_, *_ = setup.split("-")
        frames += [rows.assign(setup=setup, scenario=scenario, solution=solution, filter=filter_,
                               implementation=implementation, rep=rep) for rep in range(1, reps + 1)]
    return tables.conform(pd.concat(frames, ignore_index=True), "policy_update").to_pandas()


@pytest.fixture(scope="module")
def rows(tmp_path_factory):
    return recorded_rows(tmp_path_factory.mktemp("parsed") / "reps1.parquet")


def meta() -> dict:
    return json.loads((RECORDED / "meta.json").read_text())


def test_every_change_shows_in_every_new_flow_both_ways(rows):
    assert tables.kind_of  # the rows went through tables.write (the schema) in parsed_as_the_workflow_does
    assert set(rows["pair"]) == {"c01-c03", "c03-c01"}
    new = rows[rows["connection"] == "new"]
    assert len(new) == 4 * 2 * 2  # changes x probe directions x protocols
    assert (new["status"] == "effect").all() and new["latency_ms"].notna().all()
    assert list(new.drop_duplicates("change")["direction"]) == ["allow", "deny", "allow", "deny"]
    # the effect is bracketed by two probes at most a few ticks apart (1 kHz)
    assert (new["resolution_ms"] > 0).all() and (new["resolution_ms"] < 20).all()
    # a change shows after it was issued and (netfilter commits before the command exits) within
    # the command's own time plus a few ticks
    assert (new["latency_ms"] > 0).all()
    assert (new["latency_ms"] <= new["control_ms"] + 20).all()
    # flow numbers the rows of a probe direction
    for _, group in rows.groupby("pair"):
        assert list(group["flow"]) == list(range(1, len(group) + 1))


def test_established_flows_exist_only_once_they_passed_and_stateless_rules_cut_them(rows):
    established = rows[rows["connection"] == "established"]
    # the first allow of a pair that was denied finds nothing established
    assert 1 not in set(established["change"]) and set(established["change"]) == {2, 3, 4}
    deny = established[established["direction"] == "deny"]
    assert len(deny) == 2 * 2 * 2 and deny["cut"].all() and deny["latency_ms"].notna().all()
    allow = established[established["direction"] == "allow"]
    assert allow["cut"].isna().all() and allow["latency_ms"].notna().all()
    # the TCP connection resumes when TCP resends (its own timer): no prober resolution there
    assert allow[allow["protocol"] == "tcp"]["resolution_ms"].isna().all()
    assert allow[allow["protocol"] == "udp"]["resolution_ms"].notna().all()
    assert rows[rows["connection"] == "new"]["cut"].isna().all()


def test_a_probe_that_arrives_after_the_next_change_did_not_pass_before_it():
    run = meta()["workload_run"]
    visit = run["visits"][0]
    records = {name: policy.read_records(RECORDED / file) for name, file in visit["files"].items()}
    series = policy.flow_series(records["c01"], records["c03"], ("established", "tcp"),
                                int(run["probe_timeout_ms"] * 1e6))
    deny, allow = visit["changes"][1], visit["changes"][2]
    # TCP resent some of what the deny dropped once the allow had opened the path again: those
    # messages count for the allow, never as "still passing" after the deny
    late = (series.send >= deny["issued_ns"]) & (series.send < allow["issued_ns"]) & \
        (series.arrival >= allow["issued_ns"]) & (series.arrival < policy.NEVER)
    assert late.any()
    effect = policy.flow_effect(series, "deny", deny["issued_ns"], visit["changes"][0]["issued_ns"],
                                allow["issued_ns"], int(run["hold_ms"] * 1e6))
    assert effect.latency_ns is not None and effect.latency_ns < (allow["issued_ns"] - deny["issued_ns"]) / 2
    # had the window run on, the late messages would look like passes: the window's end is the rule
    endless = policy.flow_effect(series, "deny", deny["issued_ns"], visit["changes"][0]["issued_ns"], policy.NEVER,
                                 int(run["hold_ms"] * 1e6))
    assert endless.latency_ns != effect.latency_ns


def test_no_effect_within_the_timeout_is_a_null_latency_and_no_cut():
    run = {**meta()["workload_run"], "timeout_s": 1e-6}
    rows = pd.DataFrame(policy.policy_rows(RECORDED, run, extra_rules=0))
    assert (rows["status"] == "no_effect").all() and rows["latency_ms"].isna().all()
    deny = rows[(rows["connection"] == "established") & (rows["direction"] == "deny")]
    assert len(deny) and (deny["cut"] == False).all()


def test_missing_records_are_a_parse_error(tmp_path):
    shutil.copytree(RECORDED, tmp_path / "raw")
    next((tmp_path / "raw").glob("*.prober.stdout")).unlink()
    with pytest.raises(Exception, match="records .* are missing"):
        policy.policy_rows(tmp_path / "raw", meta()["workload_run"], 0)


def deployment(containers: int, setup_filter: str = "iptables") -> Deployment:
    setup = SetupSpec("single", "bridge", setup_filter, containers)
    host = Host("h1", 1, "h1ns")
    names = [f"c{i:02d}" for i in range(1, containers + 1)]
    return Deployment(setup, "scnx", [host], [
        Container(n, i, "h1", f"ns-{n}", "e0", f"198.19.1.{i}", NamespaceAccess(f"ns-{n}"))
        for i, n in enumerate(names, start=1)], [(names[i], names[i + 1]) for i in range(0, containers, 2)])


def test_changes_visit_non_whitelisted_neighbours_and_end_as_they_began():
    visits = policy.plan_changes(deployment(8), changes=20, per_pair=4)
    assert [v["pair"] for v in visits] == [["c01", "c03"], ["c03", "c05"], ["c05", "c07"], ["c07", "c01"],
                                           ["c02", "c04"]]
    assert all(v["initially"] == "denied" and v["directions"] == ["allow", "deny"] * 2 for v in visits)
    # two containers: the one (whitelisted) pair, deny first so that it ends allowed
    two = policy.plan_changes(deployment(2), changes=6, per_pair=4)
    assert [v["directions"] for v in two] == [["deny", "allow"] * 2, ["deny", "allow"]]


def test_a_setup_without_a_whitelist_records_not_enforced():
    backend = NetnsBackend("scnu1")
    assert backend.pair_changer(deployment(4, "none")) is None
    assert backend.pair_changer(deployment(4, "iptables")) is not None
    run = {"enforced": False, "visits": policy.plan_changes(deployment(4), 2, 2)}
    rows = pd.DataFrame(policy.policy_rows(Path("."), run, 0))
    assert set(rows["status"]) == {"not_enforced"} and rows["latency_ms"].isna().all()
    assert rows["control_ms"].isna().all()  # planned, never made


def test_changes_made_where_the_platform_does_not_enforce_keep_their_control_time():
    # as the kubernetes backend records them on a CNI without NetworkPolicy (tests/kubernetes)
    visits = policy.plan_changes(deployment(4), 2, 2)
    visits[0]["changes"] = [{"change": 1, "direction": "allow", "issued_ns": 1, "control_s": 0.004},
                            {"change": 2, "direction": "deny", "issued_ns": 2, "control_s": 0.003}]
    rows = pd.DataFrame(policy.policy_rows(Path("."), {"enforced": False, "visits": visits}, 0))
    assert list(rows["pair"]) == ["c01-c03", "c03-c01"] * 2 and set(rows["status"]) == {"not_enforced"}
    assert list(rows["control_ms"]) == [4.0, 4.0, 3.0, 3.0] and rows["latency_ms"].isna().all()


def test_config_refuses_an_odd_number_of_changes():
    base = {"sweep": {"single": {"solutions": ["bridge"], "filters": ["iptables"], "containers": [4]},
                      "workloads": ["policy"]}}
    cfg = config.validate({**base, "workloads": {"policy": {"kind": "policy_update"}}})
    assert cfg["workloads"]["policy"]["changes"] == 20 and cfg["workloads"]["policy"]["rate_hz"] == 1000
    with pytest.raises(ConfigError, match="changes"):
        config.validate({**base, "workloads": {"policy": {"kind": "policy_update", "changes": 3}}})


def test_a_backend_without_shared_files_is_accepted_the_records_come_back_on_stdout():
    # the probers' records travel on their stdout, which every backend's launcher carries back
    cfg = config.validate({"testbed": {"backend": "kubernetes"},
                           "sweep": {"single": {"solutions": ["cni"], "filters": ["none"], "containers": [4]},
                                     "workloads": ["policy"]},
                           "workloads": {"policy": {"kind": "policy_update"}}})
    assert cfg["workloads"]["policy"]["kind"] == "policy_update" and not policy.PolicyUpdate.needs


def test_the_recorded_meta_is_valid_and_names_the_probers_and_their_resolution():
    schema = json.loads((Path(__file__).resolve().parents[2] / "workflow/schemas/meta.schema.json").read_text())
    recorded = meta()
    jsonschema.validate(recorded, schema)
    run = recorded["workload_run"]
    assert run["generator"] == "prober" and len(run["processes"]) == 2
    for summary in run["visits"][0]["prober_summaries"].values():
        assert summary["receive_timestamps"] == {"udp": "kernel (SO_TIMESTAMPNS)", "tcp": "kernel (SO_TIMESTAMPNS)"}
        assert summary["gap_ms"]["p50"] <= 1.05  # the tick: 1 ms at 1000 Hz


def test_summary_reports_allow_and_deny_latency_per_repetition(rows):
    summary = pipeline.summary_of({"policy_update": rows}, {})
    assert list(summary["metric"]) == ["allow_latency_ms", "deny_latency_ms"]
    new = rows[rows["connection"] == "new"]
    for direction in ("allow", "deny"):
        row = summary[summary["metric"] == f"{direction}_latency_ms"].iloc[0]
        assert row["n"] == 1 and row["probes"] == (new["direction"] == direction).sum()
        assert row["median"] == pytest.approx(new[new["direction"] == direction]["latency_ms"].median())


@pytest.mark.parametrize("name", ["policy_latency", "policy_rule_scaling", "policy_established"])
def test_figures_render(rows, tmp_path, name):
    more_rules = rows.assign(setup="single-bridge-iptables-c4-r1000", extra_rules=1000)
    frame = pd.concat([rows, more_rules], ignore_index=True)
    spec = figures.FIGURES[name]
    extra = [pipeline.summary_of({"policy_update": frame}, {})] if "summary" in spec.extra_tables else []
    written = figures.save_chart(spec.builder(frame, *extra), tmp_path / name)
    svg = written[1].read_text()
    assert "single-bridge-iptables-c4-r1000" in svg or name == "policy_rule_scaling"
    assert "n = " in svg


def test_read_records_leaves_a_half_written_record_out(tmp_path):
    source = next(RECORDED.glob("*.prober.stdout"))
    partial = tmp_path / "partial.prober.stdout"
    partial.write_bytes(source.read_bytes()[:policy.prober.RECORD.size * 10 + 7])
    assert len(policy.read_records(partial)) == 10
    assert np.all(policy.read_records(partial)["kind"] > 0)


# ------------------------------------------------------------------------------------ clocks
# c01 on a host (lab1) 250 ms ahead of this machine, c03 on one (lab2) 1.7 s behind, measured
# to 0.2 and 0.3 ms
OFFSETS_MS = {"c01": 250.123456, "c03": -1700.5}


def as_read_on_other_clocks(tmp_path: Path, offsets_ms: dict[str, float] = OFFSETS_MS) -> tuple[Path, dict]:
    """The recorded run as probers on hosts whose clocks are *offsets_ms* (container -> ms) off
    this machine's would have recorded it: each time a prober read, shifted by its clock's
    offset (the peer's send times, carried in its probes, by the peer's); the workload_run with
    those offsets measured (visits[].clocks)."""
    raw = tmp_path / "raw"
    shutil.copytree(RECORDED, raw)
    run = meta()["workload_run"]
    visit = run["visits"][0]
    a, b = visit["pair"]
    peers = {a: b, b: a}
    for name, file in visit["files"].items():
        records = policy.read_records(raw / file).copy()
        own, theirs = (round(offsets_ms[n] * 1e6) for n in (name, peers[name]))
        sent_here = np.isin(records["kind"], policy.OWN_SEND_TIMES)
        records["t_send"] += np.where(records["t_send"] == 0, 0, np.where(sent_here, own, theirs))
        records["t_event"] += np.where(records["t_event"] == 0, 0, own)
        (raw / file).write_bytes(records.tobytes())
    visit["clocks"] = {"containers": {"c01": "lab1", "c03": "lab2"},
                       "hosts": {"lab1": {"offset_ms": offsets_ms["c01"], "uncertainty_ms": 0.2},
                                 "lab2": {"offset_ms": offsets_ms["c03"], "uncertainty_ms": 0.3}}}
    return raw, run


def deciding_containers(rows: pd.DataFrame) -> list[str]:
    """Whose clock timed the probe that decides each row: the receiver's for the resumed TCP
    connection (its first arrival), else the sender's."""
    resumed = (rows["connection"] == "established") & (rows["protocol"] == "tcp") & (rows["direction"] == "allow")
    return list(np.where(resumed, rows["pair"].str[-3:], rows["pair"].str[:3]))


def test_records_on_other_clocks_give_the_same_latencies_once_converted_with_the_offsets(rows, tmp_path):
    # the controller issued the changes, on its own clock
    raw, run = as_read_on_other_clocks(tmp_path)
    converted = pd.DataFrame(policy.policy_rows(raw, run, extra_rules=0))
    expected = pd.DataFrame(policy.policy_rows(RECORDED, meta()["workload_run"], extra_rules=0))
    assert len(converted) == len(expected) == len(rows)
    assert np.allclose(converted["latency_ms"], expected["latency_ms"], atol=1e-6, equal_nan=True)
    assert (converted["status"] == expected["status"]).all()
    # unconverted, the same records give other rows: the offsets, not the filter, would decide
    unconverted = pd.DataFrame(policy.policy_rows(raw, meta()["workload_run"], extra_rules=0))
    assert len(unconverted) != len(expected) or not np.allclose(
        unconverted["latency_ms"], expected["latency_ms"], atol=1, equal_nan=True)
    # the probe's clock against the controller's: that host's offset uncertainty
    shown = converted[converted["status"] == "effect"]
    assert list(shown["clock_uncertainty_ms"]) == [0.2 if c == "c01" else 0.3 for c in deciding_containers(shown)]
    assert (expected.loc[expected["status"] == "effect", "clock_uncertainty_ms"] == 0).all()  # one clock


def test_a_change_timed_on_the_hosts_clock_needs_no_offset_for_that_hosts_probes(tmp_path):
    raw, run = as_read_on_other_clocks(tmp_path)
    # each host began the change when the controller issued it (lab2 a millisecond later), each
    # read on its own clock: the change is lab1's, which began first
    for change in run["visits"][0]["changes"]:
        change["made_ns"] = {"lab1": change["issued_ns"] + round(OFFSETS_MS["c01"] * 1e6),
                             "lab2": change["issued_ns"] + round(OFFSETS_MS["c03"] * 1e6) + 1_000_000}
    converted = pd.DataFrame(policy.policy_rows(raw, run, extra_rules=0))
    expected = pd.DataFrame(policy.policy_rows(RECORDED, meta()["workload_run"], extra_rules=0))
    assert np.allclose(converted["latency_ms"], expected["latency_ms"], atol=1e-6, equal_nan=True)
    shown = converted[converted["status"] == "effect"]
    # c01's probes and the change on lab1's clock: none; c03's: both hosts' offsets enter
    assert list(shown["clock_uncertainty_ms"]) == [0.0 if c == "c01" else 0.5 for c in deciding_containers(shown)]


def test_the_offsets_of_before_and_after_a_visit_average_and_their_drift_is_uncertainty():
    before = {"lab1": {"offset_ms": 10.0, "uncertainty_ms": 0.1, "round_trip_ms": 0.2, "samples": 16}}
    after = {"lab1": {"offset_ms": 10.6, "uncertainty_ms": 0.2, "round_trip_ms": 0.4, "samples": 16}}
    recorded = policy.Clocks.measured(before, after, {"c01": "lab1", "c03": "lab1"})
    host = recorded["hosts"]["lab1"]
    assert host["offset_ms"] == pytest.approx(10.3) and host["uncertainty_ms"] == pytest.approx(0.5)
    assert host["drift_ms"] == pytest.approx(0.6) and host["before"] == before["lab1"]
    clocks = policy.Clocks.of(recorded)
    assert clocks.offset("c01") == 10_300_000 and clocks.uncertainty("c03", None) == pytest.approx(0.5)
    assert policy.Clocks.measured(None, None, {"c01": "h1"}) is None  # one clock: nothing recorded
    assert policy.Clocks.of(None) is policy.ONE_CLOCK and policy.ONE_CLOCK.uncertainty("c01", None) == 0.0
