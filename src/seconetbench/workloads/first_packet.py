"""First-packet latency under control: empty the flow caches, then time a new flow's first packet.

Per probe, one pair at a time (probe 1 of every pair, then probe 2 of every pair, ...):

1. **flush** (:func:`flush_flow_caches`): conntrack in every namespace of the setup that holds
   entries (`conntrack -F` run inside it, so only our namespaces' tables), then each technology's own per-flow
   caches (``Technology.flush_flow_caches``: the OVS datapath flows). What each flush deleted
   and what was left right after is recorded per probe: the flush is proven, not assumed.
2. **probe**: one ping process in the sender sends two echo requests ``warm_gap_s`` apart. The
   first is the flow's first packet and pays its setup (an OVS upcall, a new conntrack entry);
   the second is the same flow warm (same ICMP id: the same conntrack entry and datapath flow).

Neighbour (ARP) caches, MAC learning tables and the rule sets stay as they are: what is measured
is flow setup, not address resolution (docs/workloads.md, "first_packet").
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seconetbench import parsers, proc
from seconetbench.backends.base import Deployment
from seconetbench.errors import ParseError, WorkloadError
from seconetbench.testbed import netlink
from seconetbench.workloads import register
from seconetbench.workloads.base import RunContext, Workload
from seconetbench.workloads.ping import PING_ERROR

if TYPE_CHECKING:
    import pandas as pd

    from seconetbench.spec import SetupSpec

CONNTRACK = "conntrack"
# Entries in the conntrack table of the namespace this thread is in (absent: no conntrack module)
CONNTRACK_COUNT = Path("/proc/sys/net/netfilter/nf_conntrack_count")


def conntrack_entries(netns: str) -> int:
    """Entries in the conntrack table of *netns*: a file read with this thread inside it."""
    with netlink.entered(netns):
        try:
            return int(CONNTRACK_COUNT.read_text())
        except FileNotFoundError:
            return 0


def flush_conntrack(netns: str) -> dict[str, Any]:
    """Flush the conntrack table of *netns* with `conntrack -F` run inside it (never the
    machine's own table); only where it holds entries, so that a stateless setup costs a file
    read per namespace, not a process."""
    before = conntrack_entries(netns)
    if before:
        proc.run_in(netns, ["conntrack", "-F"])
    return {"cache": CONNTRACK, "where": netns, "deleted": before, "remaining": conntrack_entries(netns)}


def flush_flow_caches(deployment: Deployment, namespaces: Sequence[str]) -> list[dict[str, Any]]:
    """Empty conntrack in every one of *namespaces* (the setup's, on this machine) and the
    per-flow caches of the setup's technologies; one record per cache and place."""
    from seconetbench import preflight  # here: validating a config imports this module

    flushed = [flush_conntrack(netns) for netns in namespaces]
    for technology in preflight.setup_technologies(deployment.setup):
        flushed += technology.flush_flow_caches(deployment)
    return flushed


@register
class FirstPacket(Workload):
    kind = "first_packet"
    table = "first_packet"
    tools = ("ping", "conntrack")
    # The flushes run inside the hosts' and containers' namespaces from this machine: backends
    # whose namespaces are elsewhere (ssh hosts, kubernetes nodes) cannot empty those caches.
    needs = ("observe_hosts",)

    def argv(self, destination: str) -> list[str]:
        p = self.params
        return ["ping", "-n", "-c", "2", "-i", str(p["warm_gap_s"]), "-s", str(p["payload_bytes"]),
                "-W", str(p["timeout_s"]), destination]

    def nominal_s(self, setup: SetupSpec) -> float:
        # one probe at a time, each waiting warm_gap_s between its two echo requests
        return self.params["probes"] * (setup.containers // 2) * self.params["warm_gap_s"]

    def cost_drivers(self, setup: SetupSpec) -> dict[str, float]:
        return {"probes": self.params["probes"] * (setup.containers // 2)}  # a flush and a ping each

    def probe_timeout_s(self) -> float:
        return self.params["warm_gap_s"] + self.params["timeout_s"] + 15

    def run(self, ctx: RunContext) -> dict[str, Any]:
        deployment = ctx.deployment
        namespaces = ctx.backend.observed_namespaces(deployment)
        if not namespaces:
            raise WorkloadError(f"{ctx.label}: backend {ctx.backend.name} shows no namespace of the setup "
                                "on this machine, so no cache can be flushed")
        probes = []
        for probe in range(1, self.params["probes"] + 1):
            for sender, sink in deployment.pairs:  # alternating: every pair's probe k, then k + 1
                pair = deployment.pair_name(sender, sink)
                started = time.monotonic()
                flushed = flush_flow_caches(deployment, namespaces)
                flush_s = time.monotonic() - started
                launched = self.launch(ctx, pair, f"probe{probe:04d}", deployment.container(sender),
                                       self.argv(deployment.container(sink).ip))
                self.wait_all(ctx, [launched], self.probe_timeout_s(), "ping")
                if launched.returncode == PING_ERROR:
                    raise WorkloadError(f"{ctx.label}: ping {pair} probe {probe} failed: "
                                        f"{(launched.stderr.read_text() + launched.stdout.read_text()).strip()[-300:]}")
                [record] = self.record([launched])
                probes.append({**record, "probe": probe, "flush_s": round(flush_s, 6),
                               "flushed": [{**f, "where": short_name(f["where"], deployment.prefix)}
                                           for f in flushed]})
        return {"generator": "ping", "probes": probes}

    def parse(self, raw_dir: Path, meta: dict[str, Any]) -> pd.DataFrame:
        import pandas as pd  # here: validating a config reads this class, not its parsing

        rows = []
        for record in meta["workload_run"]["probes"]:
            samples = parsers.parse_file("ping", raw_dir / record["stdout"]).samples
            rtt = samples.set_index("seq")["rtt_ms"]
            if list(rtt.index) != [1, 2]:
                raise ParseError(f"expected echo requests 1 and 2, found {list(rtt.index)}",
                                 source=str(raw_dir / record["stdout"]))
            flushed = record["flushed"]
            rows.append({"pair": record["pair"], "flow": record["probe"],
                         "first_ms": rtt[1], "warm_ms": rtt[2],
                         "flushed": ",".join(sorted({f["cache"] for f in flushed})),
                         "flushed_entries": sum(f["deleted"] for f in flushed),
                         "remaining_entries": sum(f["remaining"] for f in flushed)})
        return pd.DataFrame(rows)


def short_name(name: str, prefix: str) -> str:
    """A namespace or host name without the run prefix (h1, c01), as the tables name them."""
    return name.removeprefix(f"{prefix}-")
