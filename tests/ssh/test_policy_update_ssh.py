"""policy_update on the ssh backend (issue 15), on namespace lab hosts with their own sshd: the
probers' records come back on their stdout over SSH, every host's agent makes the change on its
own enforcement points, and the latencies are on one timeline through the measured clock
offsets (docs/workloads.md, "policy_update")."""

from __future__ import annotations

import math

import pytest

from seconetbench import config, runner
from seconetbench.backends.ssh import SshBackend
from seconetbench.meta import read_meta
from tests.conftest import owned_prefix, parsed_as_the_workflow_does

pytestmark = [pytest.mark.ssh, pytest.mark.privileged]


@pytest.fixture
def run_prefix():
    """The deployment's own run prefix: not the lab's (cleaning the run must leave the lab)."""
    with owned_prefix("scns") as value:
        yield value


def measure(lab, run_prefix, tmp_path, sweep: dict, setup: str, changes: int):
    cfg = config.validate({
        "results_dir": str(tmp_path / "results"), "repetitions": 1,
        "testbed": {**lab.testbed_config(), "prefix": run_prefix, "reuse_deployment": True},
        "monitor": {"enabled": False},
        "sweep": {**sweep, "workloads": ["policy"]},
        "workloads": {"policy": {"kind": "policy_update", "changes": changes, "timeout_s": 3}},
    })
    raw = tmp_path / "results/raw" / setup / "policy" / "rep1"
    try:
        runner.measure(cfg, setup, "policy", 1, raw)
    finally:
        SshBackend(run_prefix, lab.testbed_config()).teardown()
    return read_meta(raw), parsed_as_the_workflow_does(raw, tmp_path / "parsed.parquet")


def assert_real_latencies(rows, changes: int) -> None:
    new = rows[rows["connection"] == "new"]
    # every change showed in every new flow, both ways (changes x probe directions x udp/tcp)
    assert len(new) == changes * 2 * 2 and (new["status"] == "effect").all(), new.to_string()
    assert set(new["direction"]) == {"allow", "deny"}
    for column in ("latency_ms", "control_ms", "resolution_ms"):
        assert all(math.isfinite(v) and v > 0 for v in new[column]), (column, list(new[column]))
    assert (new["latency_ms"] < 3000).all()
    assert new["clock_uncertainty_ms"].notna().all() and (new["clock_uncertainty_ms"] >= 0).all()


def test_a_change_on_one_ssh_host_shows_in_its_probes_on_that_hosts_clock(lab, run_prefix, tmp_path):
    meta, rows = measure(lab, run_prefix, tmp_path,
                         {"single": {"solutions": ["bridge"], "filters": ["iptables"], "containers": [4]}},
                         "single-bridge-iptables-c4-ssh", changes=4)
    assert meta["setup"]["backend"] == "ssh"
    visit = meta["workload_run"]["visits"][0]
    assert all(c["settled"] for c in visit["changes"])
    # the host's agent made each change and said when, on the host's clock; the offsets of
    # before and after the visit are recorded
    host = next(iter(visit["clocks"]["hosts"]))
    assert all(set(c["made_ns"]) == {host} for c in visit["changes"])
    assert set(visit["clocks"]["hosts"][host]) >= {"offset_ms", "uncertainty_ms", "before", "after"}
    assert_real_latencies(rows, 4)
    # the change and every probe were timed on the one host's clock: no offset enters
    assert (rows[rows["status"] == "effect"]["clock_uncertainty_ms"] == 0).all()
    # deny cuts the established flows of the stateless rules, as on netns
    denied = rows[(rows["connection"] == "established") & (rows["direction"] == "deny")]
    assert len(denied) and denied["cut"].all()
    summaries = visit["prober_summaries"]
    assert all(s is not None and s["ticks"] > 0 for s in summaries.values())  # done came back over SSH


def test_a_change_across_two_ssh_hosts_is_timed_through_their_clock_offsets(lab, run_prefix, tmp_path):
    meta, rows = measure(lab, run_prefix, tmp_path,
                         {"multi": {"tunnels": ["vxlan"], "filters": ["nftables"], "containers": [4], "hosts": 2,
                                    "solution": "bridge"}},
                         "multi-vxlan-nftables-c4-ssh", changes=2)
    visit = meta["workload_run"]["visits"][0]
    hosts = visit["clocks"]["containers"]
    assert len(set(hosts.values())) == 2  # the pair crosses hosts
    assert all(len(c["made_ns"]) == 2 for c in visit["changes"])  # both hosts' filters changed
    assert_real_latencies(rows, 2)
    # the probes of the host that did not begin the change first carry both offsets' uncertainty
    assert (rows[rows["status"] == "effect"]["clock_uncertainty_ms"] > 0).any()
