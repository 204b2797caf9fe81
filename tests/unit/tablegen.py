"""Builders of small, schema-conforming fixture tables for the stats and figures tests.

Every builder returns a pandas DataFrame read back from ``tables.conform(frame, kind)``, so a
fixture that drifts from the schema in ``tables.py`` fails at construction.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np
import pandas as pd

from seconetbench import tables
from seconetbench.spec import SetupSpec

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
    spec = SetupSpec.parse(setup, multi_solution="bridge")  # a multi-host id names its tunnel
    return (spec.scenario, spec.solution, spec.filter, spec.tunnel, spec.containers)


def many_setups(count: int, containers: int = 2) -> list[str]:
    """*count* distinct setup ids, alternating filters none/iptables."""
    return [f"single-sol{i:02d}-{('none', 'iptables')[i % 2]}-c{containers}" for i in range(count)]


def _identity(setup: str, workload: str, rep: int, pair: str, flow: int) -> dict:
    scenario, solution, filter_, tunnel, containers = setup_parts(setup)
    return dict(
        setup=setup, scenario=scenario, solution=solution, filter=filter_, tunnel=tunnel,
        implementation="userspace" if tunnel == "wireguard" else "kernel", containers=containers, workload=workload, rep=rep, group="g1", pair=pair, flow=flow,
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


def first_packet_table(setups: Sequence[str] = ("single-ovs-none-c2",), reps: int = 1, probes: int = 5,
                       seed: int = 0, max_pairs: int | None = None) -> pd.DataFrame:
    """One row per first_packet probe: a slow first packet (10x on ovs: the upcall) and a warm one."""
    rng = np.random.default_rng(seed)
    rows = []
    for setup in setups:
        ovs = setup_parts(setup)[1] == "ovs"
        for rep in range(1, reps + 1):
            for pair in pairs_for(setup_parts(setup)[4])[:max_pairs]:
                for probe in range(1, probes + 1):
                    warm = 0.05 + float(rng.exponential(0.01))
                    rows.append({**_identity(setup, "first_packet", rep, pair, probe),
                                 "first_ms": warm * (10 if ovs else 1.2), "warm_ms": warm,
                                 "flushed": "conntrack,ovs_datapath_flows" if ovs else "conntrack",
                                 "flushed_entries": 4 if ovs else 0, "remaining_entries": 0})
    return _conformed(rows, "first_packet")


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
    """The summary table of latency, throughput, ditg and first_packet fixture tables (as the workflow computes
    it); the cells 'setup/workload' in *not_converged* are marked so, every other cell converged.
    *design* is the run order ({"run_order": "blocked", "rounds": 6} pairs effects per round)."""
    from seconetbench import pipeline

    frames_by_kind = {}
    for frame in frames:
        kind = ("ditg" if "traffic" in frame else "throughput" if "payload_bytes" in frame
                else "first_packet" if "first_ms" in frame else "policy_update" if "connection" in frame
                else "latency")
        frames_by_kind[kind] = frame
    cells = {f"{s}/{w}" for frame in frames for s, w in frame[["setup", "workload"]].drop_duplicates().itertuples(index=False)}
    status = {cell: "not_converged" if cell in not_converged else "converged" for cell in cells}
    return tables.conform(pipeline.summary_of(frames_by_kind, status, design), "summary").to_pandas()


def security_table(setups: Sequence[str] = ("single-bridge-none-c2",), reps: int = 1,
                   checks: Sequence[str] = ("isolation", "confidentiality", "spoofing")) -> pd.DataFrame:
    """One probe per setup, check and repetition: ok, and not_applicable for the multi-host-only
    checks on single-host setups (as the security workloads record them)."""
    rows = []
    for setup in setups:
        for check in checks:
            for rep in range(1, reps + 1):
                single_only = setup_parts(setup)[0] == "single" and check != "isolation"
                rows.append({**_identity(setup, check, rep, "c01-c02", 1), "check": check, "source": "c01",
                             "destination": "c02", "protocol": "udp", "port": 5001, "whitelisted": True,
                             "observed": not single_only, "verdict": "not_applicable" if single_only else "ok",
                             "detail": None})
    return _conformed(rows, "security")


# --------------------------------------------------------------------------------------------
# a full-size sweep
def static_implementation(setup: SetupSpec) -> str:
    """What `auto` resolves to on a machine whose kernel has no optional modules (as CI's): the
    kernel's where the technology needs no probe, else its first other implementation."""
    from seconetbench import preflight, probes

    named = preflight.setup_technologies(setup)[0 if setup.scenario == "single" else 1]
    cls = type(named)
    no_kernel = type("NoKernel", (), {"kernel_available": False})()
    found = {cls.kernel_probe: no_kernel} if cls.kernel_probe else {}
    return probes.choose(cls.implementations, setup.implementation, cls.kernel_probe, found)


def _setup_factor(setup: str, spread: float) -> float:
    """A fixed factor per setup in [1 - spread, 1 + spread], so setups differ as they would."""
    return 1 + spread * (2 * (zlib.crc32(setup.encode()) % 1000) / 999 - 1)


def full_sweep_tables(config_path: str = "config/full.yaml", reps: int = 5, probes: int = 5, max_pairs: int = 2,
                      seed: int = 1) -> dict[str, pd.DataFrame]:
    """Every table a sweep of *config_path* makes (its setups x workloads x *reps* repetitions),
    with realistic spreads and each setup's implementation, plus the summary (blocked order, every
    tenth cell not converged). Kept to *probes* pings and *max_pairs* pairs per target, so the
    tables stay small enough for unit tests while the figures see every setup and workload."""
    from seconetbench import config, sweep

    planned = sweep.expand(config.validate(config.load_files(config_path)))
    setups = [s.id for s in planned.setups]
    implementations = {s.id: static_implementation(s) for s in planned.setups}
    kinds: dict[str, list] = {}
    for workload in planned.workloads:
        kinds.setdefault(workload.kind, []).append(workload)
    rng = np.random.default_rng(seed)

    def realistic(frame: pd.DataFrame, columns: Sequence[str], spread: float) -> pd.DataFrame:
        """Scale *columns* by a factor per setup and a noise per row; set each setup's implementation."""
        factor = frame["setup"].map(lambda s: _setup_factor(s, spread)).to_numpy()
        noise = rng.lognormal(0.0, 0.08, len(frame))
        scaled = {c: frame[c] * factor * noise for c in columns}
        return frame.assign(**scaled, implementation=frame["setup"].map(implementations))

    latency = realistic(latency_table(setups, reps=reps, probes=probes, max_pairs=max_pairs, seed=seed), ["rtt_ms"], 0.5)
    payloads = [w.params["payload_bytes"] for w in kinds.get("throughput", [])]
    throughput = throughput_table(setups, payloads=payloads, reps=reps, max_pairs=max_pairs)
    throughput = realistic(throughput.assign(bytes=throughput["bytes"] * throughput["payload_bytes"] / 1370),
                           ["bytes"], 0.6)
    throughput["bytes"] = throughput["bytes"].round().astype("int64")
    throughput["throughput_mbps"] = throughput["bytes"] * 8 / 1e6 / (throughput["interval_end_s"]
                                                                      - throughput["interval_start_s"])
    traffic = [name for kind in ("bursty", "tcp100", "quake3", "video") for name in [w.name for w in kinds.get(kind, [])]]
    ditg = realistic(ditg_table(setups, reps=reps, traffic=traffic, max_pairs=max_pairs, intervals=2),
                     ["bitrate_kbps", "delay_ms"], 0.4)
    ditg["bytes"] = (ditg["bitrate_kbps"] * 1e3 / 8 * ditg["duration_s"]).round().astype("int64")
    workloads = [w.name for w in planned.workloads]
    tunnel_words = {s: ("userspace (wireguard-go)" if s.startswith("multi-wireguard") else implementations[s])
                    for s in setups}
    deployment = deployment_table(setups, workloads=workloads, reps=reps)
    deployment = realistic(deployment, ["deploy_s"], 0.5).assign(
        tunnel_implementation=lambda d: d["setup"].map(tunnel_words).where(d["scenario"] == "multi"))
    throughput_workloads = [w.name for w in kinds.get("throughput", [])]
    host_usage = host_usage_table(setups, workloads=throughput_workloads, reps=reps).assign(
        implementation=lambda d: d["setup"].map(implementations))
    security = security_table(setups, reps=1).assign(implementation=lambda d: d["setup"].map(implementations))
    frames = {"latency": latency, "throughput": throughput, "ditg": ditg, "deployment": deployment,
              "host_usage": host_usage, "security": security}
    if "first_packet" in kinds:
        frames["first_packet"] = realistic(first_packet_table(setups, reps=reps, probes=probes, max_pairs=max_pairs,
                                                              seed=seed), ["first_ms", "warm_ms"], 0.5)
    frames = {kind: tables.conform(frame, kind).to_pandas() for kind, frame in frames.items()}
    cells = sorted({f"{s}/{w}" for kind in ("latency", "throughput", "ditg")
                    for s, w in frames[kind][["setup", "workload"]].drop_duplicates().itertuples(index=False)})
    measured = [frames[kind] for kind in ("latency", "throughput", "ditg", "first_packet") if kind in frames]
    frames["summary"] = summary_table(*measured, not_converged=cells[::10], design={"run_order": "blocked", "rounds": reps})
    return frames
