"""Multi-host figures like the paper's Figure 7: throughput and latency per tunnel by payload
size, each tunnel labelled with the implementation that ran (kernel, userspace, tc-bpf), and the
setup time per tunnel (seconds until the first packet passed).

The implementation and the setup time come from each target's meta.json
(``deployment.tunnel``); :func:`tunnel_facts` turns those into one row per setup and deploy.
Not yet in the FIGURES registry: that needs a ``tunnels`` table kind (tables.py) filled by
:func:`tunnel_facts`, and test_figures' list of figures (see docs/multi-host.md).
"""

from __future__ import annotations

from collections.abc import Iterable

import altair as alt
import pandas as pd

from seconetbench import stats
from seconetbench.figures._common import inline, no_rows, require

FACT_COLUMNS = ["setup", "tunnel", "implementation", "cipher", "path_mtu", "overhead_bytes", "setup_s"]


def tunnel_facts(metas: Iterable[dict]) -> pd.DataFrame:
    """One row per multi-host target: what its tunnel reported at deploy (meta.json dicts)."""
    rows = []
    for meta in metas:
        tunnel = meta.get("deployment", {}).get("tunnel")
        if tunnel:
            rows.append({"setup": meta["setup"]["id"], "tunnel": tunnel["name"],
                         **{k: tunnel.get(k) for k in FACT_COLUMNS[2:]}})
    return pd.DataFrame(rows, columns=FACT_COLUMNS)


def _labelled(frame: pd.DataFrame, facts: pd.DataFrame) -> pd.DataFrame:
    """*frame* with a column 'tunnel_label': 'wireguard (userspace (wireguard-go ...))'."""
    implementation = facts.groupby("tunnel")["implementation"].agg(lambda s: " / ".join(sorted(set(s))))
    frame = frame.copy()
    frame["tunnel_label"] = [f"{t} ({implementation.get(t, 'implementation unknown')})" for t in frame["tunnel"]]
    return frame


def multi_host_throughput(throughput_frame: pd.DataFrame, facts: pd.DataFrame) -> alt.TopLevelMixin:
    """Median per-pair throughput per tunnel over the payload size (one line per tunnel)."""
    figure = "multi_host_throughput"
    require(throughput_frame, ["scenario", "tunnel", "payload_bytes", "throughput_mbps"], figure)
    multi = throughput_frame[throughput_frame["scenario"] == "multi"]
    if multi.empty:
        raise no_rows(figure, "'throughput_<payload>' on multi-host setups")
    pairs = _labelled(stats.per_pair_throughput(multi), facts)
    data = pairs.groupby(["tunnel_label", "payload_bytes"], as_index=False)["throughput_mbps"].median()
    return alt.Chart(inline(data)).mark_line(point=True).encode(
        x=alt.X("payload_bytes:O", title="payload (bytes per write)"),
        y=alt.Y("throughput_mbps:Q", title="median throughput per pair (Mbit/s)"),
        color=alt.Color("tunnel_label:N", title="tunnel (implementation)", legend=alt.Legend(labelLimit=400)),
    ).properties(title=alt.TitleParams("Throughput per tunnel by payload size", anchor="start",
                                       subtitle=f"n = {len(pairs):,} per-pair values"))


def multi_host_latency(latency_frame: pd.DataFrame, facts: pd.DataFrame) -> alt.TopLevelMixin:
    """Median RTT per tunnel and latency workload (the workload names the payload size)."""
    figure = "multi_host_latency"
    require(latency_frame, ["scenario", "tunnel", "workload", "rtt_ms"], figure)
    multi = latency_frame[(latency_frame["scenario"] == "multi") & latency_frame["rtt_ms"].notna()]
    if multi.empty:
        raise no_rows(figure, "'latency' on multi-host setups")
    data = _labelled(multi, facts).groupby(["tunnel_label", "workload"], as_index=False)["rtt_ms"].median()
    return alt.Chart(inline(data)).mark_bar().encode(
        x=alt.X("tunnel_label:N", title="tunnel (implementation)", axis=alt.Axis(labelLimit=400)),
        y=alt.Y("rtt_ms:Q", title="median round-trip time (ms)"),
        column=alt.Column("workload:N", title="workload (payload)"),
    ).properties(title=alt.TitleParams("Latency per tunnel", anchor="start",
                                       subtitle=f"n = {len(multi):,} echo replies"))


def multi_host_setup_time(facts: pd.DataFrame) -> alt.TopLevelMixin:
    """Seconds from starting each tunnel until the first packet passed, one point per deploy."""
    require(facts, FACT_COLUMNS, "multi_host_setup_time")
    if facts.empty:
        raise no_rows("multi_host_setup_time", "any workload on multi-host setups")
    data = _labelled(facts, facts)
    return alt.Chart(inline(data[["tunnel_label", "setup", "setup_s", "cipher", "path_mtu"]])).mark_tick(
        thickness=2, size=20).encode(
        y=alt.Y("tunnel_label:N", title="tunnel (implementation)", axis=alt.Axis(labelLimit=400)),
        x=alt.X("setup_s:Q", title="setup time: seconds until the first packet passes"),
        tooltip=["setup:N", "setup_s:Q", "cipher:N", "path_mtu:Q"],
    ).properties(title=alt.TitleParams("Setup time per tunnel", anchor="start",
                                       subtitle=f"n = {len(data):,} deploys"))
