"""The security verification workloads on real setups, run through runner.measure and parsed:
each check is shown failing (violations found, marker visible, spoof accepted) as well as
passing (zero violations, marker hidden, spoof rejected)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from seconetbench import config, runner
from seconetbench.testbed import cleanup
from tests.conftest import parsed_as_the_workflow_does

pytestmark = pytest.mark.privileged

WORKLOADS = {
    "iso": {"kind": "isolation", "attackers": 2, "ports": [5201, 80]},
    "conf": {"kind": "confidentiality", "datagrams": 5},
    "spoof": {"kind": "spoofing"},
}


def measured(prefix: str, tmp_path: Path, setup: str, workloads: list[str]) -> dict[str, pd.DataFrame]:
    """Measure *workloads* on *setup* (deployed once, reused, torn down) and parse each target."""
    scenario, rest = setup.split("-", 1)
    technology, filter_, containers = rest.rsplit("-", 2)
    count = int(containers.removeprefix("c"))
    sweep = ({"single": {"solutions": [technology], "filters": [filter_], "containers": [count]}}
             if scenario == "single" else
             {"multi": {"tunnels": [technology], "filters": [filter_], "containers": [count]}})
    cfg = config.validate({
        "results_dir": str(tmp_path / "results"), "repetitions": 1,
        "testbed": {"prefix": prefix, "reuse_deployment": True}, "monitor": {"enabled": False},
        "sweep": {**sweep, "workloads": workloads}, "workloads": {w: WORKLOADS[w] for w in workloads}})
    frames = {}
    try:
        for workload in workloads:
            raw = tmp_path / "results/raw" / setup / workload / "rep1"
            runner.measure(cfg, setup, workload, 1, raw)
            frames[workload] = parsed_as_the_workflow_does(raw, tmp_path / f"{workload}.parquet")
    finally:
        cleanup.remove(prefix)
    return frames


def verdicts(frame: pd.DataFrame, **where) -> pd.Series:
    for column, value in where.items():
        frame = frame[frame[column] == value]
    return frame["verdict"]


def test_isolation_finds_violations_without_a_filter(prefix, tmp_path):
    rows = measured(prefix, tmp_path, "single-bridge-none-c4", ["iso"])["iso"]
    # 2 attackers x 3 destinations x (icmp + arp + 2 ports x (tcp + udp))
    assert len(rows) == 2 * 3 * 6
    assert set(rows["source"]) == {"c01", "c02"}
    for protocol in ("icmp", "tcp", "udp"):
        found = verdicts(rows, protocol=protocol, whitelisted=False)
        assert len(found) and (found == "violation").all(), protocol
        assert (verdicts(rows, protocol=protocol, whitelisted=True) == "ok").all(), protocol
    assert (verdicts(rows, protocol="arp", whitelisted=False) == "visible").all()  # one bridge: one segment
    assert rows["observed"].all()


def test_isolation_with_a_filter_has_no_violation_and_no_break(prefix, tmp_path):
    rows = measured(prefix, tmp_path, "single-bridge-iptables-c4", ["iso"])["iso"]
    layer34 = rows[rows["protocol"] != "arp"]
    assert not (layer34["verdict"] == "violation").any()
    assert not (layer34["verdict"] == "break").any()
    assert layer34.loc[layer34["whitelisted"], "observed"].all()  # every whitelisted pair reachable
    assert not layer34.loc[~layer34["whitelisted"], "observed"].any()
    assert layer34["whitelisted"].any() and not layer34["whitelisted"].all()


def test_plain_tunnel_shows_the_marker_and_accepts_a_spoof(prefix, tmp_path):
    frames = measured(prefix, tmp_path, "multi-vxlan-none-c4", ["conf", "spoof"])
    conf, spoof = frames["conf"], frames["spoof"]
    assert len(conf) == 2 * 3  # 2 pairs x (udp marker, tcp marker, inner addresses)
    assert conf["observed"].all() and (conf["verdict"] == "visible").all()
    assert len(spoof) == 2 and (spoof["protocol"] == "vxlan").all()
    assert spoof["observed"].all() and (spoof["verdict"] == "expected").all()
    raw = tmp_path / "results/raw/multi-vxlan-none-c4/conf/rep1/underlay.pcap"
    assert 0 < raw.stat().st_size < 4000 * (256 + 16) + 24


def test_vpn_hides_the_marker_and_rejects_a_spoof(prefix, tmp_path):
    frames = measured(prefix, tmp_path, "multi-wireguard-none-c4", ["conf", "spoof"])
    conf, spoof = frames["conf"], frames["spoof"]
    assert len(conf) == 2 * 3
    assert not conf["observed"].any() and (conf["verdict"] == "ok").all()
    assert (spoof["protocol"] == "udp-to-vpn").all() and (spoof["port"] == 51820).all()
    assert not spoof["observed"].any() and (spoof["verdict"] == "ok").all()


def test_underlay_checks_record_not_applicable_on_a_single_host(prefix, tmp_path):
    frames = measured(prefix, tmp_path, "single-bridge-none-c2", ["conf", "spoof"])
    for rows in frames.values():
        assert list(rows["verdict"]) == ["not_applicable"]
        assert rows["whitelisted"].isna().all()
