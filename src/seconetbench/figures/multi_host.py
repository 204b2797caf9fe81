"""Multi-host figures like the paper's Figure 7: throughput and latency per tunnel by payload
size, each tunnel labelled with the implementation that ran (kernel, userspace, tc-bpf), and the
setup time per tunnel (seconds until the first packet passed).

The implementation and the setup time come from the ``deployment`` table (one row per target,
from meta.json); :func:`tunnel_facts` keeps the multi-host deploys of it.
"""

from __future__ import annotations

import altair as alt
import pandas as pd

from seconetbench import stats
from seconetbench.figures import FigureSpec, register
from seconetbench.figures._common import inline, no_rows, require

FACT_COLUMNS = ["setup", "tunnel", "implementation", "cipher", "path_mtu", "overhead_bytes", "setup_s"]
DEPLOYMENT_COLUMNS = {"tunnel_implementation": "implementation", "tunnel_cipher": "cipher",
                      "tunnel_path_mtu_bytes": "path_mtu", "tunnel_overhead_bytes": "overhead_bytes",
                      "tunnel_setup_s": "setup_s"}


def tunnel_facts(deployment_frame: pd.DataFrame) -> pd.DataFrame:
    """One row per fresh multi-host deploy (a reused deployment repeats its deploy's facts)."""
    require(deployment_frame, ["scenario", "reused", "setup", "tunnel", *DEPLOYMENT_COLUMNS], "tunnel facts")
    fresh = deployment_frame[(deployment_frame["scenario"] == "multi") & ~deployment_frame["reused"]]
    return fresh.rename(columns=DEPLOYMENT_COLUMNS)[FACT_COLUMNS].reset_index(drop=True)


def _labelled(frame: pd.DataFrame, facts: pd.DataFrame) -> pd.DataFrame:
    """*frame* with a column 'tunnel_label': 'wireguard (userspace (wireguard-go ...))', and the
    cipher suite in brackets where a sweep ran one tunnel with several suites."""
    def joined(values: pd.Series) -> str:
        return " / ".join(sorted({str(v) for v in values if pd.notna(v)}))

    implementation = facts.groupby("tunnel")["implementation"].agg(joined)
    cipher = facts.groupby("setup")["cipher"].agg(joined)
    several = facts.groupby("tunnel")["cipher"].nunique()
    def label(tunnel: str, setup: str) -> str:
        suite = f" [{cipher.get(setup, '')}]" if several.get(tunnel, 0) > 1 else ""
        return f"{tunnel}{suite} ({implementation.get(tunnel, 'implementation unknown')})"

    frame = frame.copy()
    frame["tunnel_label"] = [label(t, s) for t, s in zip(frame["tunnel"], frame["setup"])]
    return frame


def multi_host_throughput(throughput_frame: pd.DataFrame, deployment_frame: pd.DataFrame) -> alt.TopLevelMixin:
    """Median per-pair throughput per tunnel over the payload size (one line per tunnel)."""
    figure = "multi_host_throughput"
    facts = tunnel_facts(deployment_frame)
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


def multi_host_latency(latency_frame: pd.DataFrame, deployment_frame: pd.DataFrame) -> alt.TopLevelMixin:
    """Median RTT per tunnel and latency workload (the workload names the payload size)."""
    figure = "multi_host_latency"
    facts = tunnel_facts(deployment_frame)
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


def multi_host_setup_time(deployment_frame: pd.DataFrame) -> alt.TopLevelMixin:
    """Seconds from starting each tunnel until the first packet passed, one point per deploy."""
    facts = tunnel_facts(deployment_frame)
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


register(FigureSpec(
    name="multi_host_throughput", table="throughput", extra_tables=("deployment",), scenarios=("multi",),
    builder=multi_host_throughput,
    caption="Median throughput per container pair for each tunnel or VPN between hosts, by payload size; "
            "the legend names the implementation that ran (kernel or userspace)."))
register(FigureSpec(
    name="multi_host_latency", table="latency", extra_tables=("deployment",), scenarios=("multi",),
    builder=multi_host_latency,
    caption="Median round-trip time between containers on different hosts for each tunnel or VPN."))
register(FigureSpec(
    name="multi_host_setup_time", table="deployment", scenarios=("multi",),
    builder=multi_host_setup_time,
    caption="Setup time of each tunnel or VPN: seconds from starting it until the first packet passed, "
            "one mark per fresh deploy."))
