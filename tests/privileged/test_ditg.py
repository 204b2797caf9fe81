"""Every D-ITG workload on a deployed bridge setup (2 and 8 containers), through runner.measure and pipeline.parse_setup:
the parsed table agrees with ITGDec's own TOTAL summary of every pair."""

from __future__ import annotations

import pytest

from seconetbench import config, parsers, runner, tables
from seconetbench.meta import read_meta
from seconetbench.testbed import cleanup
from seconetbench.workloads.ditg import START_DELAY_MS, pair_file
from tests.conftest import parsed_as_the_workflow_does

pytestmark = pytest.mark.privileged

# Short runs (the run ends ITGSend once its flows are over, not D-ITG's one close per second).
WORKLOADS = {
    "bursty": {"kind": "bursty", "duration_s": 3, "on_ms": 500, "off_ms": 500},
    "tcp100": {"kind": "tcp100", "flows": 5, "duration_s": 2},
    "quake3": {"kind": "quake3", "flows": 2, "duration_s": 2},
    "video": {"kind": "video", "videos": 3, "length_scale": 0.01, "gb_per_hour": 0.5},
}


def measure_and_parse(prefix, tmp_path, workload: str, containers: int):
    cfg = config.validate({
        "results_dir": str(tmp_path / "results"), "repetitions": 1,
        "testbed": {"prefix": prefix, "reuse_deployment": False},
        "monitor": {"enabled": False},
        "sweep": {"single": {"solutions": ["bridge"], "filters": ["none"], "containers": [containers]},
                  "workloads": [workload]},
        "workloads": {workload: WORKLOADS[workload]},
    })
    setup = f"single-bridge-none-c{containers}"
    raw = tmp_path / "results/raw" / setup / workload / "rep1"
    runner.measure(cfg, setup, workload, 1, raw)
    rows = parsed_as_the_workflow_does(raw, tmp_path / "parsed.parquet")
    return raw, rows


def assert_totals_agree(raw, rows, expected_flows: int):
    meta = read_meta(raw)
    pairs = [record["pair"] for record in meta["workload_run"]["pairs"]]
    assert sorted(rows["pair"].unique()) == sorted(pairs)
    for pair in pairs:
        total = parsers.parse_file("itgdec", raw / pair_file(pair, "recv_summary")).summary
        sent = parsers.parse_file("itgdec", raw / pair_file(pair, "send_summary")).summary
        mine = rows[rows["pair"] == pair]
        whole, intervals = mine[mine["interval"] == 0], mine[mine["interval"] > 0]
        assert len(whole) == total["flows"] == expected_flows
        assert whole["packets"].sum() == total["packets"] > 0
        assert whole["bytes"].sum() == total["bytes"]
        assert intervals["bytes"].sum() == total["bytes"]  # the interval files add up to the summary
        assert whole["packets_sent"].sum() == sent["packets"] >= total["packets"]
        assert (intervals["delay_ms"].dropna() > 0).all()
        if set(mine["protocol"]) == {"tcp"}:  # TCP delivers all it sent: the receiver log is complete
            assert whole["packets"].tolist() == whole["packets_sent"].tolist()


@pytest.mark.parametrize("containers", [2, 8])
@pytest.mark.parametrize("workload", list(WORKLOADS))
def test_workload_on_a_bridge(prefix, tmp_path, workload, containers):
    raw, rows = measure_and_parse(prefix, tmp_path, workload, containers)
    assert rows["pair"].nunique() == containers // 2
    flows = {"bursty": 1, "tcp100": 5, "quake3": 2, "video": 3}[workload]
    assert_totals_agree(raw, rows, flows)
    assert set(rows["traffic"]) == {workload}
    assert tables.kind_of(tmp_path / "parsed.parquet") == "ditg"
    assert not list(raw.glob("*.log"))  # binary logs decoded, then dropped (keep_logs false)
    # meta.json records every flow as the script ran it (for video: the drawn lengths and sizes)
    stored = read_meta(raw)["workload_run"]["pairs"][0]["flows"]
    script = (raw / pair_file("c01-c02", "script")).read_text().splitlines()
    assert [f"-rp {f['port']} -d {START_DELAY_MS} {f['options']}" for f in stored] == [line.split(" ", 2)[2] for line in script]
    assert not list(raw.glob("*.fifo"))  # ITGSend's script FIFO is gone
    if workload == "video":
        assert all(f["model_length_s"] > 0 and f["model_size_mb"] > 0 for f in stored)
    assert not any(cleanup.leftovers(prefix).values())


def test_many_flows_end_together_with_every_packet_logged(prefix, tmp_path):
    """tcp100 with 40 flows of 2 s (three bursts of requests through the FIFO): D-ITG alone would
    close them one per second (40 s); the run stops ITGSend once its flows have sent for their
    duration and ends it when the receiver has every packet (meta: frozen, ended after its
    flows), and nothing the table counts is lost: every flow sent for its whole duration (its tx
    span in the sender log) and no longer than the spread of the starts beyond it, and the
    receiver logged every packet it sent (TCP delivers all)."""
    WORKLOADS["tcp100_many"] = {"kind": "tcp100", "flows": 40, "duration_s": 2, "rate_kbps": 250}
    try:
        raw, rows = measure_and_parse(prefix, tmp_path, "tcp100_many", 2)
    finally:
        del WORKLOADS["tcp100_many"]
    run = read_meta(raw)["workload_run"]
    assert run["ending"]["senders_ended_after_flows"] == run["ending"]["senders_frozen"] == ["c01-c02"]
    assert_totals_agree(raw, rows, 40)
    whole = rows[rows["interval"] == 0]
    assert (whole["packets"] == whole["packets_sent"]).all() and (whole["packets"] > 0).all()
    sent = parsers.parse_file("itgdec", raw / pair_file("c01-c02", "send_summary")).samples
    gap_s = 1 / run["pairs"][0]["flows"][0]["rate_pps"]
    assert (sent["total_time_s"] <= 2 + run["ending"]["flow_starts_spread_s"] + 5 * gap_s).all()  # stopped at the window's end
    assert (sent["total_time_s"] >= 2 - 10 * gap_s).all()  # and the window was not cut short
    assert not any(cleanup.leftovers(prefix).values())
