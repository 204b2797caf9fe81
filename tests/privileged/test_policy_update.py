"""The policy_update workload on real namespaces (issue 15): through runner.measure and the
workflow's parse, a whitelist change shows in the data plane (allow: probes pass; deny: they stop,
and so do the established flows of our stateless filters), and the whitelist ends as it began."""

from __future__ import annotations

import pytest

from seconetbench import config, runner, tables
from seconetbench.backends.netns import NetnsBackend
from seconetbench.meta import read_meta
from tests.conftest import parsed_as_the_workflow_does
from tests.privileged.test_netns_bridge import reachable

pytestmark = pytest.mark.privileged


def measure(prefix, tmp_path, solution: str, filter_name: str, changes: int = 4):
    cfg = config.validate({
        "results_dir": str(tmp_path / "results"), "repetitions": 1,
        "testbed": {"prefix": prefix, "reuse_deployment": True},
        "monitor": {"enabled": False},
        "sweep": {"single": {"solutions": [solution], "filters": [filter_name], "containers": [4]},
                  "workloads": ["policy"]},
        "workloads": {"policy": {"kind": "policy_update", "changes": changes, "timeout_s": 3}},
    })
    setup = f"single-{solution}-{filter_name}-c4"
    raw = tmp_path / "results/raw" / setup / "policy" / "rep1"
    runner.measure(cfg, setup, "policy", 1, raw)
    return raw, parsed_as_the_workflow_does(raw, tmp_path / "parsed.parquet")


@pytest.mark.parametrize(("solution", "filter_name"), [("bridge", "iptables"), ("bridge", "nftables")])
def test_allow_and_deny_take_effect_and_cut_established_flows(prefix, tmp_path, solution, filter_name):
    try:
        raw, rows = measure(prefix, tmp_path, solution, filter_name)
        backend = NetnsBackend(prefix)
        deployment = backend.current()
        # the workload toggled c01-c03 (not whitelisted) and left the whitelist as it found it
        assert not reachable(deployment, "c01", "c03") and reachable(deployment, "c01", "c02")
    finally:
        NetnsBackend(prefix).teardown()
    meta = read_meta(raw)
    visit = meta["workload_run"]["visits"][0]
    assert visit["pair"] == ["c01", "c03"] and [c["direction"] for c in visit["changes"]] == ["allow", "deny"] * 2
    assert all(c["settled"] for c in visit["changes"])
    assert set(rows["pair"]) == {"c01-c03", "c03-c01"}
    new = rows[rows["connection"] == "new"]
    # every change showed in every new flow, both ways, within the timeout
    assert len(new) == 4 * 2 * 2 and (new["status"] == "effect").all()
    assert (new["latency_ms"] > 0).all() and (new["latency_ms"] < 3000).all()
    assert (new["resolution_ms"] > 0).all() and (new["control_ms"] > 0).all()
    established = rows[rows["connection"] == "established"]
    # the first allow finds no established flow; later changes find both streams both ways
    assert set(established["change"]) == {2, 3, 4}
    denied = established[established["direction"] == "deny"]
    assert len(denied) == 2 * 2 * 2 and denied["cut"].all()  # stateless rules cut them
    assert established[established["direction"] == "allow"]["latency_ms"].notna().all()
    assert len(meta["workload_run"]["processes"]) == 2  # the two probers, as every generator is recorded
    summaries = visit["prober_summaries"]
    assert {"c01", "c03"} == set(summaries) and all(s["ticks"] > 0 for s in summaries.values())


def test_a_change_on_every_host_of_a_multi_host_setup_takes_effect_across_the_tunnel(prefix, tmp_path):
    # the pair's ends are on different hosts: each host's filter gets the change, one clock here
    cfg = config.validate({
        "results_dir": str(tmp_path / "results"), "repetitions": 1,
        "testbed": {"prefix": prefix, "reuse_deployment": True},
        "monitor": {"enabled": False},
        "sweep": {"multi": {"tunnels": ["vxlan"], "filters": ["iptables"], "containers": [4], "hosts": 2},
                  "workloads": ["policy"]},
        "workloads": {"policy": {"kind": "policy_update", "changes": 2, "timeout_s": 3}},
    })
    setup = "multi-vxlan-iptables-c4"
    raw = tmp_path / "results/raw" / setup / "policy" / "rep1"
    try:
        runner.measure(cfg, setup, "policy", 1, raw)
        deployment = NetnsBackend(prefix).current()
        pair = read_meta(raw)["workload_run"]["visits"][0]["pair"]
        assert deployment.container(pair[0]).host != deployment.container(pair[1]).host
        assert not reachable(deployment, *pair)  # the whitelist ends as it began
    finally:
        NetnsBackend(prefix).teardown()
    rows = parsed_as_the_workflow_does(raw, tmp_path / "parsed.parquet")
    new = rows[rows["connection"] == "new"]
    assert len(new) == 2 * 2 * 2 and (new["status"] == "effect").all() and (new["latency_ms"] > 0).all()


TINY_POLICY = """
results_dir: results
repetitions: 1
sweep:
  single: {solutions: [bridge], filters: [iptables], containers: [4]}
  workloads: [policy]
workloads:
  policy: {kind: policy_update, changes: 2, timeout_s: 3}
"""


@pytest.mark.workflow
@pytest.mark.slow
def test_the_workflow_makes_the_table_summary_and_figures(tmp_path):
    from tests.workflow.test_workflow import (
        assert_no_leftovers,
        make_workdir,
        snakemake,
    )

    workdir = make_workdir(tmp_path, TINY_POLICY)
    snakemake(workdir, "--configfile", str(workdir / "tiny.yaml"))
    try:
        rows = tables.read(workdir / "results/tables/policy_update.parquet")
        assert set(rows["direction"]) == {"allow", "deny"} and (rows["status"] == "effect").all()
        summary = tables.read(workdir / "results/tables/summary.parquet")
        assert set(summary["metric"]) == {"allow_latency_ms", "deny_latency_ms"}
        for figure in ("policy_latency", "policy_established"):
            assert "<svg" in (workdir / f"results/figures/{figure}.svg").read_text()
        assert not (workdir / "results/figures/policy_rule_scaling.svg").exists()  # one rule count only
    finally:
        assert_no_leftovers(workdir)
