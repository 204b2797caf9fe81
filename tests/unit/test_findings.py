"""The paper's findings checked on synthetic tables (tablegen): a finding that clearly holds,
one clearly reversed, one whose CI reaches across the rule's boundary, and cells the sweep lacks;
pairing per target, per round and unpaired; findings.md and findings.html from table files."""

from __future__ import annotations

from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest

from seconetbench import cli, findings, pipeline, tables
from tests.unit import tablegen

pytestmark = pytest.mark.unit

BLOCKED = {"run_order": "blocked", "rounds": 8}
SHUFFLED = {"run_order": "shuffled", "rounds": 8}
NONE, IPTABLES = "single-bridge-none-c2", "single-bridge-iptables-c2"
ROUTING, VXLAN, WIREGUARD = "multi-routing-none-c4", "multi-vxlan-none-c4", "multi-wireguard-none-c4"


def scaled(frame: pd.DataFrame, column: str, factors: dict) -> pd.DataFrame:
    """*frame* with *column* multiplied per setup: factors[setup] is a number, or a list with one
    factor per repetition (rep 1 first)."""
    frame = frame.copy()
    for setup, factor in factors.items():
        rows = frame["setup"] == setup
        per_row = (np.asarray(factor, dtype=float)[frame.loc[rows, "rep"].to_numpy() - 1]
                   if isinstance(factor, list) else float(factor))
        frame.loc[rows, column] = frame.loc[rows, column] * per_row
        if column == "bytes":
            frame[column] = frame[column].round().astype("int64")
    return frame


def latency(setups, reps=8, like=None, rtt=None) -> pd.DataFrame:
    """tablegen's latency table; the setups in *like* get the probes of the setup named there
    (tablegen draws filtered setups slower), so that *rtt* scales them exactly."""
    frame = tablegen.latency_table(setups, reps=reps, probes=40, seed=7)
    for setup, source in (like or {}).items():
        frame.loc[frame["setup"] == setup, "rtt_ms"] = frame.loc[frame["setup"] == source, "rtt_ms"].to_numpy()
    return scaled(frame, "rtt_ms", rtt or {})


def by_id(results):
    return {r.finding.id: r for r in results}


def check(frames, design=BLOCKED, only=None):
    chosen = [f for f in findings.FINDINGS if only is None or f.id in only]
    return by_id(findings.check(frames, design, chosen))


def test_a_filter_within_ten_percent_holds_and_the_unmeasured_filters_are_named():
    frames = {"latency": latency([NONE, IPTABLES], like={IPTABLES: NONE}, rtt={IPTABLES: 1.02})}
    result = check(frames, only={"filters-latency-single"})["filters-latency-single"]
    assert result.verdict == findings.HOLDS
    (iptables,) = result.comparisons
    assert iptables.label == "iptables" and iptables.pairing == "paired per round" and iptables.n == 8
    assert 1 / 1.1 < iptables.ci_low <= iptables.ratio <= iptables.ci_high < 1.1
    assert any(m.startswith("nftables: single-<solution>-nftables-c<N> × rtt_ms") for m in result.not_measured)


def test_a_filter_that_adds_half_the_latency_contradicts_barely():
    # tablegen: 0.05 ms + Exp(0.01 ms) per probe without a filter, 0.08 ms + Exp(0.01 ms) with one
    result = check({"latency": latency([NONE, IPTABLES])}, only={"filters-latency-single"})["filters-latency-single"]
    assert result.verdict == findings.CONTRADICTED
    (iptables,) = result.comparisons
    assert iptables.ci_low > 1.1 and 1.4 < iptables.ratio < 1.7
    assert "contradicted by iptables" in result.reason


def test_a_ci_across_the_boundary_is_inconclusive():
    # round-to-round spread of the filtered setup alone: its ratios span 0.85-1.35
    spread = [0.85, 1.35, 0.9, 1.3, 1.0, 1.2, 0.95, 1.25]
    frames = {"latency": latency([NONE, IPTABLES], like={IPTABLES: NONE}, rtt={IPTABLES: spread})}
    result = check(frames, only={"filters-latency-single"})["filters-latency-single"]
    assert result.verdict == findings.INCONCLUSIVE
    (iptables,) = result.comparisons
    assert iptables.ci_low < 1.1 < iptables.ci_high
    assert "reaching across" in result.reason


def test_missing_cells_are_not_measured_and_named():
    frames = {"latency": latency([NONE, IPTABLES]),
              "throughput": tablegen.throughput_table([NONE], payloads=(653,), reps=8)}
    results = check(frames)
    payload = results["throughput-grows-with-payload-single"]
    assert payload.verdict == findings.NOT_MEASURED and not payload.comparisons
    assert f"{NONE} × throughput_mbps@64" in payload.not_measured
    assert f"{NONE} × throughput_mbps@1370" in payload.not_measured
    tunnels = results["tunnels-add-latency"]
    assert tunnels.verdict == findings.NOT_MEASURED
    assert "vxlan: multi-vxlan-none-c<N> × rtt_ms and multi-routing-none-c<N> × rtt_ms" in tunnels.not_measured
    bursty = results["bursty-filters-raise-delay"]
    assert bursty.verdict == findings.NOT_MEASURED and f"{IPTABLES} × delay_ms@bursty" in bursty.not_measured
    assert len(findings.FINDINGS) == len(results) >= 17
    assert len({f.id for f in findings.FINDINGS}) == len(findings.FINDINGS)


def test_throughput_growing_with_payload_holds_step_by_step():
    stream = tablegen.throughput_table([NONE, IPTABLES], payloads=(64, 653, 1370), reps=8)
    stream = stream.assign(bytes=np.where(stream["payload_bytes"] == 64, stream["bytes"] // 4,
                                          np.where(stream["payload_bytes"] == 653, stream["bytes"] // 2, stream["bytes"])))
    result = check({"throughput": stream}, only={"throughput-grows-with-payload-single"})[
        "throughput-grows-with-payload-single"]
    assert result.verdict == findings.HOLDS
    ratios = {c.label: c.ratio for c in result.comparisons}
    assert ratios == pytest.approx({"throughput_mbps@653 ÷ throughput_mbps@64": 2.0,
                                    "throughput_mbps@1370 ÷ throughput_mbps@653": 2.0}, rel=0.02)
    assert all(c.pairs == 2 for c in result.comparisons)  # pooled over both setups


def test_one_tunnel_against_the_claim_contradicts_every_tunnel_adds_latency():
    frames = {"latency": latency([ROUTING, VXLAN, WIREGUARD], rtt={VXLAN: 1.2, WIREGUARD: 0.8})}
    result = check(frames, only={"tunnels-add-latency"})["tunnels-add-latency"]
    assert result.verdict == findings.CONTRADICTED
    verdicts = {c.label: c.verdict for c in result.comparisons}
    assert verdicts == {"vxlan (kernel)": findings.HOLDS, "wireguard (userspace)": findings.CONTRADICTED}
    assert any(m.startswith("ipip: multi-ipip-none-c<N>") for m in result.not_measured)


def test_a_tunnel_effect_against_a_filter_effect_is_oriented_by_metric():
    # the tunnel doubles the latency; the filter adds 5 %
    vxlan_iptables = "multi-vxlan-iptables-c4"
    frames = {"latency": latency([ROUTING, VXLAN, vxlan_iptables], like={VXLAN: ROUTING, vxlan_iptables: ROUTING},
                                 rtt={VXLAN: 2.0, vxlan_iptables: 2.1})}
    result = check(frames, only={"filters-negligible-next-to-tunnels-latency"})[
        "filters-negligible-next-to-tunnels-latency"]
    assert result.verdict == findings.HOLDS
    (effect,) = result.comparisons
    assert effect.ratio == pytest.approx(2.0 / 1.05)


def first_packet_table(setup: str, first_ms: float, warm_ms: float, reps: int = 8) -> pd.DataFrame:
    """The first_packet workload's table (a workload named flow_setup): per repetition, 5 probes of one pair."""
    rows = [{"setup": setup, "scenario": "single", "solution": "ovs", "filter": "none", "tunnel": "none",
             "implementation": "kernel", "containers": 2, "workload": "flow_setup", "rep": rep, "group": "g1",
             "pair": "c01-c02",
             "flow": probe, "first_ms": first_ms * (1 + 0.01 * probe), "warm_ms": warm_ms * (1 + 0.01 * rep),
             "flushed": "conntrack,ovs-datapath", "flushed_entries": 4, "remaining_entries": 0}
            for rep in range(1, reps + 1) for probe in range(1, 6)]
    return tables.conform(pd.DataFrame(rows), "first_packet").to_pandas()


def test_the_first_packet_workload_is_preferred_to_the_pings_first_probe():
    ovs = "single-ovs-none-c2"
    frames = {"latency": latency([ovs]), "first_packet": first_packet_table(ovs, first_ms=40.0, warm_ms=0.1)}
    results = check(frames, SHUFFLED, only={"ovs-first-packet-slower", "ovs-first-packet-up-to-30ms"})
    bound = results["ovs-first-packet-up-to-30ms"]
    assert bound.verdict == findings.CONTRADICTED and bound.comparisons[0].ratio == pytest.approx(40 * 1.03)
    slower = results["ovs-first-packet-slower"].comparisons[0]
    assert slower.pairing == "paired (one target)" and slower.ratio > 300


def test_every_finding_has_a_verdict_on_a_full_size_sweep():
    frames = tablegen.full_sweep_tables(reps=6, probes=4, max_pairs=1)
    summary = frames.pop("summary")
    assert len(summary["setup"].unique()) > 100
    results = check(frames, {"run_order": "blocked", "rounds": 6})
    assert {r.verdict for r in results.values()} <= set(findings.VERDICTS)
    tunnels = results["tunnels-add-latency"]
    assert {c.label.split()[0] for c in tunnels.comparisons} == set(findings.TUNNELS)
    assert all(c.pairing == "paired per round" and c.n == 6 for c in tunnels.comparisons)
    measured = [r for r in results.values() if r.verdict != findings.NOT_MEASURED]
    assert len(measured) >= 14, [r.finding.id for r in results.values() if r not in measured]


def test_the_ovs_first_packet_is_paired_within_its_target_whatever_the_run_order():
    ovs = "single-ovs-none-c2"
    frame = latency([ovs])
    frame.loc[frame["seq"] == 1, "rtt_ms"] = 20.0
    results = check({"latency": frame}, SHUFFLED, only={"ovs-first-packet-slower", "ovs-first-packet-up-to-30ms"})
    slower, bound = results["ovs-first-packet-slower"], results["ovs-first-packet-up-to-30ms"]
    assert slower.verdict == findings.HOLDS and slower.comparisons[0].pairing == "paired (one target)"
    assert slower.comparisons[0].ratio > 100
    assert bound.verdict == findings.HOLDS
    assert bound.comparisons[0].unit == "ms" and bound.comparisons[0].ratio == pytest.approx(20.0)
    frame.loc[frame["seq"] == 1, "rtt_ms"] = 45.0
    assert check({"latency": frame}, SHUFFLED, only={"ovs-first-packet-up-to-30ms"})[
        "ovs-first-packet-up-to-30ms"].verdict == findings.CONTRADICTED


def test_between_setups_unpaired_without_rounds_and_no_ci_from_too_few_repetitions():
    frames = {"latency": latency([NONE, IPTABLES], reps=6)}
    result = check(frames, SHUFFLED, only={"filters-latency-single"})["filters-latency-single"]
    (iptables,) = result.comparisons
    assert iptables.pairing == "unpaired" and np.isnan(iptables.ci_low)  # 7 per side needed
    assert result.verdict == findings.INCONCLUSIVE and "too few repetitions" in result.reason
    paired = check(frames, {"run_order": "blocked", "rounds": 6}, only={"filters-latency-single"})
    assert paired["filters-latency-single"].verdict == findings.CONTRADICTED


def test_bpf_below_iptables_reports_the_difference_in_mbits():
    ebpf = "single-bridge-ebpf-c2"
    stream = tablegen.throughput_table([IPTABLES, ebpf], payloads=(653,), reps=8)
    stream = scaled(stream, "bytes", {ebpf: 0.9})
    result = check({"throughput": stream}, only={"bpf-below-iptables-653"})["bpf-below-iptables-653"]
    assert result.verdict == findings.HOLDS
    (effect,) = result.comparisons
    assert effect.ratio == pytest.approx(0.9, rel=0.01) and effect.value_unit == "Mbit/s"
    assert effect.denominator_median - effect.numerator_median == pytest.approx(0.1 * effect.denominator_median, rel=0.01)
    assert "Mbit/s (−" in findings.markdown([result], BLOCKED)


class _Text(HTMLParser):
    def __init__(self):
        super().__init__()
        self.text, self.ids = [], set()

    def handle_starttag(self, tag, attrs):
        self.ids.update(v for k, v in attrs if k == "id")

    def handle_data(self, data):
        self.text.append(data)


def test_the_command_writes_markdown_and_html_from_a_results_directory(tmp_path, capsys):
    lat = latency([NONE, IPTABLES])
    paths = []
    (tmp_path / "tables").mkdir()
    for kind, frame in {"latency": lat, "ditg": tablegen.ditg_table([NONE, IPTABLES], reps=8)}.items():
        paths.append(tmp_path / "tables" / f"{kind}.parquet")
        tables.write(frame, kind, paths[-1])
    pipeline.summarize_tables(paths, tmp_path / "tables" / "summary.parquet", design=BLOCKED)
    assert cli.main(["findings", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "contradicted  filters-latency-single" in printed and "verdicts: holds: " in printed
    results = findings.build([*paths, tmp_path / "tables" / "summary.parquet"], tmp_path / "findings.md",
                             tmp_path / "findings.html")
    md = (tmp_path / "findings.md").read_text()
    assert "run order blocked, 8 rounds" in md
    for result in results:
        assert f"## {result.finding.id}" in md
        assert f"| [{result.finding.id}](#{result.finding.id}) | {result.finding.claim} |" in md
    parser = _Text()
    parser.feed((tmp_path / "findings.html").read_text())
    text = " ".join(parser.text)
    assert parser.ids >= {f.id for f in findings.FINDINGS}
    assert "contradicted by iptables" in text and "not measured" in text
    # tablegen's D-ITG delay does not depend on the filter: the ratio is exactly 1, on the boundary
    bursty = by_id(results)["bursty-filters-raise-delay"]
    assert bursty.verdict == findings.INCONCLUSIVE and bursty.comparisons[0].ratio == pytest.approx(1.0)


def test_every_finding_is_documented():
    from tests.conftest import REPO

    table = (REPO / "docs/findings.md").read_text().split("## The findings", 1)[1]
    documented = {line.split("|")[1].strip().strip("`") for line in table.splitlines() if line.startswith("| `")}
    assert documented == {f.id for f in findings.FINDINGS}


def test_the_command_names_the_tables_it_misses(tmp_path, capsys):
    assert cli.main(["findings", str(tmp_path)]) == 1
    error = capsys.readouterr().err
    assert "no tables to check the findings on" in error and "latency.parquet" in error
