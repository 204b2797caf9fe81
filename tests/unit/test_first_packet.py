"""The first_packet table and the interface_counters table, parsed from a real raw target
(tests/fixtures/first_packet: single-ovs-none-c2, 3 probes, recorded by runner.measure on the
development VM; see its NOTES.md), and the config check that keeps the workload off backends
whose namespaces are not on this machine."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest

from seconetbench import config, pipeline, tables
from seconetbench.errors import ConfigError, ParseError
from seconetbench.meta import read_meta
from tests.conftest import SHARED_FIXTURES
from tests.unit import tablegen
from tests.unit.test_backend_interface import KUBERNETES_TESTBED, sweep_config

pytestmark = pytest.mark.unit

RAW = SHARED_FIXTURES / "first_packet" / "single-ovs-none-c2" / "rep1"


def ping_rtts(path) -> list[float]:
    """The time= of every reply line of a recorded ping output, in order."""
    return [float(line.split("time=")[1].split()[0]) for line in path.read_text().splitlines() if "time=" in line]


def test_each_probe_is_a_row_with_its_first_and_warm_rtt():
    rows, kind, meta = pipeline.target_rows(RAW)
    assert kind == "first_packet"
    table = tables.conform(rows, kind).to_pandas()
    probes = meta["workload_run"]["probes"]
    assert len(table) == len(probes) == meta["workload"]["probes"]
    for row, record in zip(table.itertuples(), probes):
        first, warm = ping_rtts(RAW / record["stdout"])
        assert (row.pair, row.flow, row.first_ms, row.warm_ms) == (record["pair"], record["probe"], first, warm)
        assert row.flushed_entries == sum(f["deleted"] for f in record["flushed"])
    assert set(table["flushed"]) == {"conntrack,ovs_datapath_flows"}
    assert (table["remaining_entries"] == 0).all()
    # the earlier probe's datapath flows were there to delete before every later probe
    assert (table["flushed_entries"].iloc[1:] > 0).all()
    assert set(table["setup"]) == {"single-ovs-none-c2"} and set(table["workload"]) == {"fp"}


def test_a_probe_whose_ping_sent_one_request_is_refused(tmp_path):
    raw = tmp_path / "rep1"
    shutil.copytree(RAW, raw)
    meta = read_meta(raw)
    stdout = raw / meta["workload_run"]["probes"][0]["stdout"]
    cut = [line for line in stdout.read_text().splitlines() if "icmp_seq=2" not in line]
    stdout.write_text("\n".join(cut).replace("2 packets transmitted, 2 received", "1 packets transmitted, 1 received")
                      + "\n")
    with pytest.raises(ParseError, match=r"expected echo requests 1 and 2, found \[1\]"):
        pipeline.target_rows(raw)


def test_interface_counters_are_the_change_over_the_workload_without_the_prefix():
    meta = read_meta(RAW)
    samples = pd.read_csv(RAW / "monitor_net.csv")
    prefix = meta["deployment"]["prefix"]
    table = tables.conform(pipeline.target_table(RAW, "interface_counters", meta), "interface_counters").to_pandas()
    assert set(table["netns"]) == {"h1", "c01", "c02"}
    sender = table.set_index(["netns", "ifname"]).loc[("c01", "e0")]
    mine = samples[(samples["netns"] == f"{prefix}-c01") & (samples["ifname"] == f"{prefix}-e0")]
    assert sender["tx_packets"] == mine["tx_packets"].iloc[-1] - mine["tx_packets"].iloc[0]
    assert sender["duration_s"] == pytest.approx(mine["timestamp_s"].iloc[-1] - mine["timestamp_s"].iloc[0])
    # every probe sent two echo requests (plus whatever ARP the sender needed)
    assert sender["tx_packets"] >= 2 * len(meta["workload_run"]["probes"])
    assert (table[["rx_drops", "tx_drops", "rx_errors", "tx_errors"]] == 0).all().all()


def test_interface_counters_of_an_older_raw_target_leave_errors_and_drops_null(tmp_path):
    raw = tmp_path / "rep1"
    shutil.copytree(RAW, raw)
    older = pd.read_csv(RAW / "monitor_net.csv").drop(columns=["rx_errors", "rx_drops", "tx_errors", "tx_drops"])
    older.to_csv(raw / "monitor_net.csv", index=False)
    meta = read_meta(raw)
    table = tables.conform(pipeline.target_table(raw, "interface_counters", meta), "interface_counters").to_pandas()
    assert len(table) > 0 and table["tx_drops"].isna().all() and (table["tx_packets"] >= 0).all()
    # the monitor off or seeing no namespace (kubernetes, ssh): a header and no sample
    older.iloc[:0].to_csv(raw / "monitor_net.csv", index=False)
    assert tables.conform(pipeline.target_table(raw, "interface_counters", meta), "interface_counters").num_rows == 0


def test_the_summary_reports_first_and_warm_with_their_effects_apart():
    frame = tablegen.first_packet_table(setups=["single-ovs-none-c2", "single-ovs-ovs-c2"], reps=6)
    summary = pipeline.summary_of({"first_packet": frame}, {})
    assert sorted(summary["metric"].unique()) == ["first_ms", "warm_ms"]
    medians = summary.set_index(["setup", "metric"])["median"]
    assert medians[("single-ovs-none-c2", "first_ms")] > 5 * medians[("single-ovs-none-c2", "warm_ms")]
    filtered = summary[summary["setup"] == "single-ovs-ovs-c2"].set_index("metric")
    assert set(filtered["baseline_setup"]) == {"single-ovs-none-c2"} and filtered["ratio_n"].notna().all()


def test_first_packet_is_refused_where_the_namespaces_are_not_here():
    with pytest.raises(ConfigError) as raised:
        config.validate(sweep_config("kubernetes", "first_packet", kubernetes=KUBERNETES_TESTBED["kubernetes"]))
    assert "(kind first_packet) needs capability observe_hosts" in str(raised.value)
    assert config.validate(sweep_config("netns", "first_packet"))["workloads"]["probe"]["probes"] == 20
