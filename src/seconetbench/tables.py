"""Schemas of every Parquet table, and the one way to write and read them.

Each parsed file (``results/parsed/{setup}/reps{n}.{kind}.parquet``: the cells of a setup,
repetitions 1..n, :func:`parsed_name`) and each aggregated table (``results/tables/{kind}.parquet``)
holds one *kind* of rows. A kind's schema is the identity columns followed by its measure columns, whose names carry their unit.
The targets' ``meta.json`` (versions, kernel, MTU, ...) travel in the Parquet key-value metadata
under ``seconetbench.meta`` (by ``workload/rep``) so that a table alone is enough to reproduce it. docs/tables.md documents
every column; a test keeps the two in sync.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from seconetbench.errors import InvalidValueError, UnknownNameError
from seconetbench.fsutil import atomic_path

if TYPE_CHECKING:  # pyarrow imports pandas when it converts: the workflow's planning never does (0.3 s)
    import pandas as pd

META_KEY = b"seconetbench.meta"

IDENTITY = [
    pa.field("setup", pa.string(), nullable=False),
    pa.field("scenario", pa.string(), nullable=False),
    pa.field("solution", pa.string(), nullable=False),
    pa.field("filter", pa.string(), nullable=False),
    pa.field("tunnel", pa.string(), nullable=False),
    # what ran the tunnel (multi) or the solution (single): kernel, userspace or tc-bpf, decided
    # by probes or pinned (meta.json deployment.implementation); "unknown" when not recorded
    pa.field("implementation", pa.string(), nullable=False),
    pa.field("containers", pa.int32(), nullable=False),
    pa.field("workload", pa.string(), nullable=False),
    pa.field("rep", pa.int32(), nullable=False),
    # the testbed group that measured the target (testbed.ssh.groups, testbed.vm.groups): g1, g2, ...;
    # g1 where there is one (every other backend) and in targets from before groups
    pa.field("group", pa.string(), nullable=False),
    pa.field("pair", pa.string(), nullable=False),  # "c01-c02": sender-sink containers
    pa.field("flow", pa.int32(), nullable=False),  # 1-based flow number within the pair
]
IDENTITY_NAMES = [f.name for f in IDENTITY]

MEASURES: dict[str, list[pa.Field]] = {
    # one row per ping probe, lost probes included (received=false, rtt_ms null)
    "latency": [
        pa.field("seq", pa.int32(), nullable=False),
        pa.field("timestamp_s", pa.float64()),  # epoch seconds of the reply (ping -D)
        pa.field("rtt_ms", pa.float64()),
        pa.field("ttl", pa.int32()),
        pa.field("received", pa.bool_(), nullable=False),
    ],
    # one row per reporting interval of the generator (iperf3/uperf), per flow
    "throughput": [
        pa.field("generator", pa.string(), nullable=False),  # iperf3 or uperf
        pa.field("protocol", pa.string(), nullable=False),  # tcp or udp
        pa.field("payload_bytes", pa.int32(), nullable=False),  # bytes per write()
        pa.field("interval_start_s", pa.float64(), nullable=False),  # since the stream started
        pa.field("interval_end_s", pa.float64(), nullable=False),
        pa.field("bytes", pa.int64(), nullable=False),
        pa.field("throughput_mbps", pa.float64(), nullable=False),  # 1e6 bit/s
        pa.field("retransmits", pa.int64()),  # TCP only, when the generator reports it
    ],
    # D-ITG (bursty, tcp100, quake3, video), from ITGDec on the receiver log: per flow, one
    # whole-flow row (interval 0, ITGDec's summary) and one row per interval of interval_ms
    "ditg": [
        pa.field("traffic", pa.string(), nullable=False),  # workload kind: bursty, tcp100, quake3, video
        pa.field("protocol", pa.string(), nullable=False),  # tcp or udp
        pa.field("interval", pa.int32(), nullable=False),  # 0 = whole flow, 1.. = n-th interval
        pa.field("start_s", pa.float64()),  # since the pair's first received packet; null for interval 0
        pa.field("duration_s", pa.float64()),  # interval length; rx(last) - rx(first) for interval 0
        pa.field("packets", pa.int64()),  # received (interval 0 only)
        pa.field("packets_sent", pa.int64()),  # from the sender log (interval 0 only)
        pa.field("bytes", pa.int64(), nullable=False),  # payload bytes received
        pa.field("bitrate_kbps", pa.float64(), nullable=False),  # payload, 1e3 bit/s
        pa.field("delay_ms", pa.float64()),  # mean one-way delay; null without packets
        pa.field("min_delay_ms", pa.float64()),  # interval 0 only
        pa.field("max_delay_ms", pa.float64()),  # interval 0 only
        pa.field("jitter_ms", pa.float64()),  # mean jitter; null without packets
        pa.field("lost_packets", pa.int64(), nullable=False),  # sequence gaps (never tail losses)
    ],
    # first_packet: one row per probe (flow = the probe's number within the pair, a new flow each),
    # sent right after the setup's flow caches were flushed
    "first_packet": [
        pa.field("first_ms", pa.float64()),  # RTT of the flow's first echo request; null when lost
        pa.field("warm_ms", pa.float64()),  # RTT of the second, warm_gap_s later; null when lost
        pa.field("flushed", pa.string(), nullable=False),  # caches flushed before it, comma-separated
        pa.field("flushed_entries", pa.int64(), nullable=False),  # entries those flushes deleted
        pa.field("remaining_entries", pa.int64(), nullable=False),  # entries right after (0: emptied)
    ],
    # security verification (isolation, confidentiality, spoofing): one row per probe; pair is
    # "source-destination", flow the probe's number within that pair
    "security": [
        pa.field("check", pa.string(), nullable=False),  # isolation, confidentiality or spoofing
        pa.field("source", pa.string(), nullable=False),  # container the probe comes (or claims to come) from
        pa.field("destination", pa.string(), nullable=False),  # container it is addressed to
        pa.field("protocol", pa.string(), nullable=False),  # icmp/tcp/udp/arp, udp/tcp/ipv4, or the spoof recipe
        pa.field("port", pa.int32()),  # TCP/UDP port (inner for isolation and confidentiality, outer for spoofing)
        pa.field("whitelisted", pa.bool_()),  # the pair is on the whitelist; null when not applicable
        pa.field("observed", pa.bool_(), nullable=False),  # reached / found in the capture / accepted
        pa.field("verdict", pa.string(), nullable=False),  # ok, violation, break, visible, expected, inconclusive, not_applicable
        pa.field("detail", pa.string()),
    ],
    # policy_update: one row per whitelist change x probe direction (pair = source-destination)
    # x flow; flow numbers the rows of a pair from 1 (docs/workloads.md, "policy_update")
    "policy_update": [
        pa.field("direction", pa.string(), nullable=False),  # allow | deny
        pa.field("connection", pa.string(), nullable=False),  # new | established
        pa.field("protocol", pa.string(), nullable=False),  # udp | tcp (none when not enforced)
        pa.field("change", pa.int32(), nullable=False),  # the change's number within the target, from 1
        pa.field("extra_rules", pa.int32(), nullable=False),  # the setup's rule-set padding
        pa.field("latency_ms", pa.float64()),  # issue -> first probe showing the new state; null: none within timeout_s
        pa.field("cut", pa.bool_()),  # established + deny: the flow stopped; null otherwise
        pa.field("control_ms", pa.float64()),  # the filter's command for the change (update_pair/remove_pair)
        pa.field("resolution_ms", pa.float64()),  # gap between the probes that bracket the effect
        pa.field("clock_uncertainty_ms", pa.float64()),  # bound on latency_ms's error from the hosts' clock offsets; 0: one clock
        pa.field("status", pa.string(), nullable=False),  # effect | no_effect | not_enforced
    ],
}


# Statistics per setup x workload x metric (results/tables/summary.parquet). The statistic
# columns are in the unit of the metric they summarise, which `metric` names (e.g. rtt_ms).
# The median, its CI and n are over one value per repetition (the unit of replication); the
# probe_* percentiles describe the pooled samples and are no CI (docs/statistics.md).
SETUP_IDENTITY = [f for f in IDENTITY if f.name not in ("rep", "group", "pair", "flow")]
STATISTICS = ["median", "mean", "std", "min", "max", "median_ci_low", "median_ci_high"]
PROBE_PERCENTILES = ["probe_p5", "probe_p25", "probe_p50", "probe_p75", "probe_p95", "probe_p99"]
SUMMARY = pa.schema(
    SETUP_IDENTITY
    + [pa.field("metric", pa.string(), nullable=False),
       pa.field("n", pa.int64(), nullable=False),  # repetitions with a value: what the statistics are over
       pa.field("n_missing", pa.int64(), nullable=False),  # repetitions without a value (every probe lost)
       pa.field("repetitions", pa.int32(), nullable=False)]
    + [pa.field(name, pa.float64()) for name in STATISTICS]
    + [pa.field("ci_halfwidth_pct", pa.float64()),  # half the 95 % CI of the median, % of the median
       pa.field("ci_coverage", pa.float64()),  # the CI's exact coverage, a fraction >= 0.95
       pa.field("probes", pa.int64(), nullable=False),  # pooled samples with a value
       pa.field("probes_missing", pa.int64(), nullable=False),  # pooled samples without (lost probes)
       ]
    + [pa.field(name, pa.float64()) for name in PROBE_PERCENTILES]
    + [pa.field("effect_of", pa.string()),  # filter | tunnel | null (a baseline itself)
       pa.field("baseline_setup", pa.string()),
       pa.field("pairing", pa.string()),  # paired | unpaired | no_baseline
       pa.field("ratio_to_baseline", pa.float64()),  # median per-round ratio (paired) or ratio of medians
       pa.field("ratio_ci_low", pa.float64()),
       pa.field("ratio_ci_high", pa.float64()),
       pa.field("ratio_n", pa.int32()),  # rounds (paired) or the smaller sample (unpaired)
       pa.field("effect_conclusive", pa.bool_()),  # the ratio's CI excludes 1
       pa.field("convergence", pa.string(), nullable=False),  # fixed | converged | not_converged
       pa.field("accelerator", pa.string())]  # the vm backend's: kvm | tcg (null elsewhere; the deployment table's)
)

# Tables of a target as a whole, whatever its workload (parsed/{setup}/reps{n}.{kind}.parquet):
# identity without pair and flow.
TARGET_IDENTITY = [f for f in IDENTITY if f.name not in ("pair", "flow")]
TARGET_MEASURES: dict[str, list[pa.Field]] = {
    # one row per target: how its deployment was made (from meta.json)
    "deployment": [
        pa.field("hosts", pa.int32(), nullable=False),
        pa.field("extra_rules", pa.int32(), nullable=False),
        pa.field("reused", pa.bool_(), nullable=False),  # deployed by an earlier target
        pa.field("deploy_s", pa.float64(), nullable=False),  # namespaces + technologies, whole deploy
        pa.field("solution_apply_s", pa.float64()),
        pa.field("tunnel_apply_s", pa.float64()),
        pa.field("filter_apply_s", pa.float64()),  # installing the whitelist (and extra rules)
        pa.field("rule_update_s", pa.float64()),  # whitelisting one more pair live
        pa.field("verification_s", pa.float64()),  # isolation check
        pa.field("verification_passed", pa.bool_()),
        pa.field("verification_probes", pa.int32()),
        pa.field("min_mtu_bytes", pa.int32()),  # smallest MTU of any link in the setup
        pa.field("tunnel_implementation", pa.string()),  # e.g. kernel, userspace (wireguard-go)
        pa.field("tunnel_cipher", pa.string()),
        pa.field("tunnel_path_mtu_bytes", pa.int32()),
        pa.field("tunnel_overhead_bytes", pa.int32()),
        pa.field("tunnel_setup_s", pa.float64()),  # tunnel start until the first packet passed
        # noise around the workload (meta.json noise; seconetbench.noise), null in older targets
        pa.field("steal_pct", pa.float64()),  # CPU steal, percent of all cores
        pa.field("outside_cpu_pct", pa.float64()),  # CPU of processes outside the setup, percent of all cores
        pa.field("load1", pa.float64()),  # 1-minute load average at the end of the workload
        pa.field("noisy", pa.bool_()),  # above a testbed.noise threshold
        pa.field("noise_exceeded", pa.string()),  # which thresholds, comma-separated (e.g. max_steal_pct)
        pa.field("attempt", pa.int32()),  # 2 = measured again after a noisy first attempt
        pa.field("cpu_pinned", pa.bool_()),  # testbed.cpu_pinning was set
        # the vm backend's accelerator: kvm, or tcg (software emulation: numbers functional
        # only, docs/vm.md); null on the other backends
        pa.field("accelerator", pa.string()),
    ],
    # one row per monitor sample of the host (percent of all cores)
    "host_usage": [
        pa.field("timestamp_s", pa.float64(), nullable=False),
        pa.field("interval_s", pa.float64(), nullable=False),  # seconds the sample covers
        pa.field("cpus", pa.int32(), nullable=False),
        pa.field("cpu_user_pct", pa.float64(), nullable=False),
        pa.field("cpu_system_pct", pa.float64(), nullable=False),
        pa.field("cpu_softirq_pct", pa.float64(), nullable=False),
        pa.field("cpu_steal_pct", pa.float64(), nullable=False),
        pa.field("cpu_iowait_pct", pa.float64(), nullable=False),
        pa.field("cpu_idle_pct", pa.float64(), nullable=False),
        pa.field("mem_used_bytes", pa.int64(), nullable=False),
        pa.field("mem_available_bytes", pa.int64(), nullable=False),
    ],
    # one row per interface of the setup's namespaces: its counters' change while the workload ran
    # (the monitor's last sample minus its first); names without the run prefix
    "interface_counters": [
        pa.field("netns", pa.string(), nullable=False),  # h1, c01, ... (the namespace, prefix cut)
        pa.field("ifname", pa.string(), nullable=False),  # e0, br1, v01, lo, ... (prefix cut)
        pa.field("duration_s", pa.float64(), nullable=False),  # between the first and the last sample
        pa.field("rx_bytes", pa.int64(), nullable=False),
        pa.field("rx_packets", pa.int64(), nullable=False),
        pa.field("rx_errors", pa.int64()),  # null in raw targets from before errors were sampled
        pa.field("rx_drops", pa.int64()),
        pa.field("tx_bytes", pa.int64(), nullable=False),
        pa.field("tx_packets", pa.int64(), nullable=False),
        pa.field("tx_errors", pa.int64()),
        pa.field("tx_drops", pa.int64()),
    ],
    # one row per monitor sample of each process of the setup (percent of one core)
    "process_cpu": [
        pa.field("timestamp_s", pa.float64(), nullable=False),
        pa.field("pid", pa.int64(), nullable=False),
        pa.field("process", pa.string(), nullable=False),
        pa.field("cpu_pct", pa.float64(), nullable=False),
    ],
}

KINDS = sorted(MEASURES) + sorted(TARGET_MEASURES) + ["summary"]


def schema(kind: str) -> pa.Schema:
    if kind == "summary":
        return SUMMARY
    if kind in TARGET_MEASURES:
        return pa.schema(TARGET_IDENTITY + TARGET_MEASURES[kind])
    try:
        measures = MEASURES[kind]
    except KeyError:
        raise UnknownNameError("table kind", kind, KINDS) from None
    return pa.schema(IDENTITY + measures)


def conform(frame: pd.DataFrame, kind: str) -> pa.Table:
    """Check that *frame* has exactly the columns of *kind* and cast it to the schema."""
    target = schema(kind)
    missing = [n for n in target.names if n not in frame.columns]
    extra = [c for c in frame.columns if c not in target.names]
    if missing or extra:
        raise InvalidValueError(f"table '{kind}': missing columns {missing}, unexpected columns {extra}")
    table = pa.Table.from_pandas(frame[target.names], preserve_index=False)
    return table.cast(target)


def write(frame: pd.DataFrame, kind: str, path: str | os.PathLike, meta: dict[str, Any] | None = None) -> None:
    table = conform(frame, kind)
    metadata = {b"seconetbench.kind": kind.encode()}
    if meta is not None:
        metadata[META_KEY] = json.dumps(meta, sort_keys=True, default=str).encode()
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), **metadata})
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def read(path: str | os.PathLike) -> pd.DataFrame:
    return pq.read_table(path).to_pandas()


def read_table_meta(path: str | os.PathLike) -> dict[str, Any]:
    """The targets' meta.json that :func:`write` stored in the table file *path* ({} if none)."""
    metadata = pq.read_schema(path).metadata or {}
    raw = metadata.get(META_KEY)
    return json.loads(raw) if raw else {}


def kind_of(path: str | os.PathLike) -> str:
    metadata = pq.read_schema(path).metadata or {}
    return metadata[b"seconetbench.kind"].decode()


def empty(kind: str) -> pd.DataFrame:
    return schema(kind).empty_table().to_pandas()


def parsed_name(counts: list[int]) -> str:
    """The part of a parsed file's name (``parsed/{setup}/reps{name}.{kind}.parquet``) that says
    how many repetitions of each of the setup's cells it holds, in the sweep's workload order:
    ``6`` when every cell has 6, ``6-8-6`` when they differ (adaptive repetitions)."""
    if not counts or any(count < 1 for count in counts):
        raise ValueError(f"repetition counts must be at least 1: {counts}")
    return str(counts[0]) if len(set(counts)) == 1 else "-".join(map(str, counts))


def parsed_targets(setup: str, workloads: list[str], name: str) -> list[str]:
    """The targets (``setup/workload/repN``) a parsed file named :func:`parsed_name` holds."""
    counts = [int(count) for count in name.split("-")]
    if len(counts) == 1:
        counts *= len(workloads)
    if len(counts) != len(workloads):
        raise ValueError(f"parsed file reps{name} of {setup} names {len(counts)} repetition counts, "
                         f"but the sweep has {len(workloads)} workloads: delete it, it belongs to another sweep")
    return [f"{setup}/{workload}/rep{rep}" for workload, count in zip(workloads, counts) for rep in range(1, count + 1)]
