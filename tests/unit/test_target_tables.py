"""Per-target tables from a raw target directory (meta.json + monitor CSVs)."""

from __future__ import annotations

import json

import pytest

from seconetbench import pipeline, tables

pytestmark = pytest.mark.unit

META = {
    "target": {"setup": "single-bridge-iptables-c2", "workload": "lat", "rep": 1},
    "setup": {"id": "single-bridge-iptables-c2", "scenario": "single", "solution": "bridge", "filter": "iptables",
              "tunnel": "none", "containers": 2, "hosts": 1, "backend": "netns", "extra_rules": 0},
    "deployment": {"reused": False, "timings": {"deploy_s": 0.2, "solution_apply_s": 0.1, "filter_apply_s": 0.004},
                   "verification": {"passed": True, "probes": 12, "duration_s": 1.1},
                   "mtu": {"ns1": {"e0": 1500}, "ns2": {"e0": 1450}}},
    "machine": {"cpus": 2},
    "monitor": {"enabled": True, "interval_s": 1.0},
}


def raw_target(tmp_path, host_csv: str):
    """A raw target directory under *tmp_path* with meta.json and the monitor's files."""
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "meta.json").write_text(json.dumps(META))
    (raw / "monitor_host.csv").write_text(host_csv)
    (raw / "monitor_processes.csv").write_text("timestamp_s,pid,name,cpu_pct\n10.0,42,ping,3.0\n")
    return raw


def outs(tmp_path):
    return {kind: tmp_path / f"out.{kind}.parquet" for kind in tables.TARGET_MEASURES}


def write_target_tables(raw, outs_by_kind):
    """Each table of the target as a whole, written through the schema as parse_setup does."""
    for kind, out in outs_by_kind.items():
        tables.write(pipeline.target_table(raw, kind, META), kind, out)


def test_deployment_row_and_monitor_samples(tmp_path):
    raw = raw_target(tmp_path, "timestamp_s,interval_s,cpu_user_pct,cpu_system_pct,cpu_softirq_pct,cpu_steal_pct,"
                    "cpu_iowait_pct,cpu_idle_pct,mem_used_bytes,mem_available_bytes\n"
                    "10.0,1.0,20,10,5,0,0,65,100,900\n10.5,0.5,20,10,5,0,0,65,100,900\n")
    write_target_tables(raw, outs(tmp_path))
    deployment = tables.read(tmp_path / "out.deployment.parquet")
    assert deployment.loc[0, "min_mtu_bytes"] == 1450 and deployment.loc[0, "verification_passed"]
    assert deployment.loc[0, "setup"] == "single-bridge-iptables-c2" and deployment.loc[0, "rep"] == 1
    host = tables.read(tmp_path / "out.host_usage.parquet")
    assert list(host["interval_s"]) == [1.0, 0.5] and set(host["cpus"]) == {2}
    processes = tables.read(tmp_path / "out.process_cpu.parquet")
    assert list(processes["process"]) == ["ping"]


def test_monitor_files_of_older_versions_without_interval_still_parse(tmp_path):
    raw = raw_target(tmp_path, "timestamp_s,cpu_user_pct,cpu_system_pct,cpu_softirq_pct,cpu_steal_pct,"
                    "cpu_iowait_pct,cpu_idle_pct,mem_used_bytes,mem_available_bytes\n"
                    "10.0,20,10,5,0,0,65,100,900\n11.0,20,10,5,0,0,65,100,900\n")
    write_target_tables(raw, outs(tmp_path))
    assert list(tables.read(tmp_path / "out.host_usage.parquet")["interval_s"]) == [1.0, 1.0]


def test_noise_record_becomes_deployment_columns():
    noisy = {**META, "noise": {"steal_pct": 0.4, "outside_cpu_pct": 23.5, "load1": 1.7, "noisy": True,
                               "exceeded": ["max_outside_cpu_pct"], "attempt": 2},
             "cpu_pinning": {"requested": {"sender": 0, "sink": 1}, "daemons": []}}
    row = tables.conform(pipeline.target_table("unused", "deployment", noisy), "deployment").to_pandas().iloc[0]
    assert (row["steal_pct"], row["outside_cpu_pct"], row["load1"]) == (0.4, 23.5, 1.7)
    assert row["noisy"] and row["noise_exceeded"] == "max_outside_cpu_pct" and row["attempt"] == 2
    assert row["cpu_pinned"]
    # a target measured before the noise record: nulls, not zeros
    older = tables.conform(pipeline.target_table("unused", "deployment", META), "deployment").to_pandas().iloc[0]
    assert older[["steal_pct", "outside_cpu_pct", "load1", "noisy", "noise_exceeded", "attempt", "cpu_pinned"]].isna().all()
