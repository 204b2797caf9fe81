"""Builders of small, schema-conforming fixture tables for the stats and figures tests.

Every builder returns a pandas DataFrame read back from ``tables.conform(frame, kind)``, so a
fixture that drifts from the schema in ``tables.py`` fails at construction.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from seconetbench import tables

# (scenario, solution, filter, tunnel, containers)
SETUPS = {
    "single-bridge-none-c2": ("single", "bridge", "none", "none", 2),
    "single-bridge-iptables-c2": ("single", "bridge", "iptables", "none", 2),
    "single-bridge-none-c8": ("single", "bridge", "none", "none", 8),
    "single-bridge-iptables-c8": ("single", "bridge", "iptables", "none", 8),
    "multi-wireguard-none-c4": ("multi", "bridge", "none", "wireguard", 4),
    "multi-vxlan-none-c4": ("multi", "bridge", "none", "vxlan", 4),
}


def setup_parts(setup: str) -> tuple[str, str, str, str, int]:
    """(scenario, solution, filter, tunnel, containers) of a known or a "scenario-solution-filter-cN" id."""
    if setup in SETUPS:
        return SETUPS[setup]
    scenario, solution, filter_, count = setup.split("-")
    return (scenario, solution, filter_, "none", int(count.removeprefix("c")))


def many_setups(count: int, containers: int = 2) -> list[str]:
    """*count* distinct setup ids, alternating filters none/iptables."""
    return [f"single-sol{i:02d}-{('none', 'iptables')[i % 2]}-c{containers}" for i in range(count)]


def _identity(setup: str, workload: str, rep: int, pair: str, flow: int) -> dict:
    scenario, solution, filter_, tunnel, containers = setup_parts(setup)
    return dict(
        setup=setup, scenario=scenario, solution=solution, filter=filter_, tunnel=tunnel,
        implementation="userspace" if tunnel == "wireguard" else "kernel", containers=containers, workload=workload, rep=rep, pair=pair, flow=flow,
    )  # fmt: skip


def pairs_for(containers: int) -> list[str]:
    """Disjoint sender-sink pairs c01-c02, c03-c04, ..."""
    return [f"c{i:02d}-c{i + 1:02d}" for i in range(1, containers, 2)]


def _conformed(rows: list[dict], kind: str) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=tables.schema(kind).names) if rows else tables.empty(kind)
    return tables.conform(frame, kind).to_pandas()


def latency_table(
    setups: Sequence[str] = ("single-bridge-none-c2",),
    reps: int = 1,
    probes: int = 20,
    loss_every: int = 0,
    seed: int = 0,
    max_pairs: int | None = None,
) -> pd.DataFrame:
    """One row per ping probe; every *loss_every*-th probe is lost (received false, rtt null)."""
    rng = np.random.default_rng(seed)
    rows = []
    for setup in setups:
        base_ms = 0.05 if setup_parts(setup)[2] == "none" else 0.08
        for rep in range(1, reps + 1):
            for pair in pairs_for(setup_parts(setup)[4])[:max_pairs]:
                for seq in range(1, probes + 1):
                    lost = bool(loss_every) and seq % loss_every == 0
                    rows.append(
                        {
                            **_identity(setup, "latency", rep, pair, 1),
                            "seq": seq,
                            "timestamp_s": None if lost else 1.7e9 + seq * 0.2,
                            "rtt_ms": None if lost else base_ms + float(rng.exponential(0.01)),
                            "ttl": None if lost else 64,
                            "received": not lost,
                        }
                    )
    return _conformed(rows, "latency")


def throughput_table(
    setups: Sequence[str] = ("single-bridge-none-c2",),
    payloads: Sequence[int] = (64, 653, 1370),
    reps: int = 1,
    flows: int = 1,
    intervals: int = 3,
    interval_s: float = 1.0,
    protocol: str = "tcp",
    bytes_per_interval: int = 125_000_000,
    max_pairs: int | None = 1,
) -> pd.DataFrame:
    """One row per reporting interval per flow; a flow sends *bytes_per_interval* + rep MB per interval."""
    rows = []
    for setup in setups:
        for payload in payloads:
            for rep in range(1, reps + 1):
                for pair in pairs_for(setup_parts(setup)[4])[:max_pairs]:
                    for flow in range(1, flows + 1):
                        for i in range(intervals):
                            nbytes = bytes_per_interval + 1_000_000 * rep
                            rows.append(
                                {
                                    **_identity(setup, f"throughput_{payload}", rep, pair, flow),
                                    "generator": "iperf3",
                                    "protocol": protocol,
                                    "payload_bytes": payload,
                                    "interval_start_s": i * interval_s,
                                    "interval_end_s": (i + 1) * interval_s,
                                    "bytes": nbytes,
                                    "throughput_mbps": nbytes * 8 / interval_s / 1e6,
                                    "retransmits": 0 if protocol == "tcp" else None,
                                }
                            )
    return _conformed(rows, "throughput")


def ditg_table(
    setups: Sequence[str] = ("single-bridge-none-c2",),
    reps: int = 1,
    traffic: Sequence[str] = ("bursty", "quake3"),
    flows: int = 2,
    intervals: int = 3,
    max_pairs: int | None = 1,
) -> pd.DataFrame:
    """Per flow a whole-flow row (interval 0) and *intervals* interval rows of 1 s at 500 kbit/s."""
    rows = []
    for setup in setups:
        for kind in traffic:
            for rep in range(1, reps + 1):
                for pair in pairs_for(setup_parts(setup)[4])[:max_pairs]:
                    for flow in range(1, flows + 1):
                        delay_ms = 0.05 + 0.01 * flow
                        for interval in range(intervals + 1):
                            whole = interval == 0
                            rows.append({
                                **_identity(setup, kind, rep, pair, flow),
                                "traffic": kind, "protocol": "udp", "interval": interval,
                                "start_s": None if whole else interval - 1.0,
                                "duration_s": float(intervals) if whole else 1.0,
                                "packets": 100 * intervals if whole else None,
                                "packets_sent": 100 * intervals if whole else None,
                                "bytes": 62_500 * (intervals if whole else 1), "bitrate_kbps": 500.0,
                                "delay_ms": delay_ms, "min_delay_ms": delay_ms / 2 if whole else None,
                                "max_delay_ms": delay_ms * 2 if whole else None,
                                "jitter_ms": 0.01, "lost_packets": 0,
                            })
    return _conformed(rows, "ditg")


def _target_identity(setup: str, workload: str, rep: int) -> dict:
    ident = _identity(setup, workload, rep, "", 0)
    del ident["pair"], ident["flow"]
    return ident


def deployment_table(setups: Sequence[str] = ("single-bridge-none-c2",), workloads: Sequence[str] = ("latency",),
                     reps: int = 1, extra_rules: int = 0, tunnel_implementation: str | None = None) -> pd.DataFrame:
    """One row per target; the first target of each setup is a fresh deploy, later ones reuse it."""
    rows = []
    for setup in setups:
        for position, (workload, rep) in enumerate((w, r) for r in range(1, reps + 1) for w in workloads):
            multi = setup.startswith("multi")
            rows.append({**_target_identity(setup, workload, rep), "hosts": 2 if multi else 1,
                         "extra_rules": extra_rules, "reused": position > 0, "deploy_s": 0.3 + 0.01 * position,
                         "solution_apply_s": 0.1, "tunnel_apply_s": 0.05 if multi else None,
                         "filter_apply_s": 0.004, "rule_update_s": 0.002, "verification_s": 1.1, "verification_passed": True,
                         "verification_probes": 12, "min_mtu_bytes": 1440 if multi else 1500,
                         "tunnel_implementation": tunnel_implementation if multi else None,
                         "tunnel_cipher": "chacha20poly1305" if multi else None,
                         "tunnel_path_mtu_bytes": 1440 if multi else None,
                         "tunnel_overhead_bytes": 60 if multi else None,
                         "tunnel_setup_s": 0.07 if multi else None})
    return _conformed(rows, "deployment")


def host_usage_table(setups: Sequence[str] = ("single-bridge-none-c2",), workloads: Sequence[str] = ("throughput_653",),
                     reps: int = 1, samples: int = 4, busy_pct: float = 50.0) -> pd.DataFrame:
    """Monitor samples of 1 s each with a fixed CPU load: busy_pct of 2 cores."""
    rows = []
    for setup in setups:
        for workload in workloads:
            for rep in range(1, reps + 1):
                for sample in range(samples):
                    rows.append({**_target_identity(setup, workload, rep), "timestamp_s": 1000.0 + sample,
                                 "interval_s": 1.0, "cpus": 2, "cpu_user_pct": busy_pct / 2, "cpu_system_pct": busy_pct / 4,
                                 "cpu_softirq_pct": busy_pct / 4, "cpu_steal_pct": 0.0, "cpu_iowait_pct": 0.0,
                                 "cpu_idle_pct": 100.0 - busy_pct, "mem_used_bytes": 10**9,
                                 "mem_available_bytes": 10**10})
    return _conformed(rows, "host_usage")


def summary_table(*frames: pd.DataFrame, not_converged: Sequence[str] = (),
                  design: dict | None = None) -> pd.DataFrame:
    """The summary table of latency, throughput and ditg fixture tables (as the workflow computes
    it); the cells 'setup/workload' in *not_converged* are marked so, every other cell converged.
    *design* is the run order ({"run_order": "blocked", "rounds": 6} pairs effects per round)."""
    from seconetbench import pipeline

    frames_by_kind = {}
    for frame in frames:
        kind = "ditg" if "traffic" in frame else "throughput" if "payload_bytes" in frame else "latency"
        frames_by_kind[kind] = frame
    cells = {f"{s}/{w}" for frame in frames for s, w in frame[["setup", "workload"]].drop_duplicates().itertuples(index=False)}
    status = {cell: "not_converged" if cell in not_converged else "converged" for cell in cells}
    return tables.conform(pipeline.summary_of(frames_by_kind, status, design), "summary").to_pandas()
