"""Throughput basic: one bulk stream per pair, all pairs at once, with a fixed write size.

uperf runs when a ``uperf`` binary is on PATH (the paper's generator), else iperf3 with the same
payload (``-l``). Which generator ran is recorded in meta.json and in every table row.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import quoteattr

from seconetbench import parsers
from seconetbench.errors import ParseError, WorkloadError
from seconetbench.workloads import register
from seconetbench.workloads.base import RunContext, Workload, wait_listening

if TYPE_CHECKING:
    import pandas as pd

    from seconetbench.spec import SetupSpec

IPERF3_PORT = 5201
UPERF_CONTROL_PORT = 20000
UPERF_DATA_PORT = 20001  # fixed, so that container firewalls need not open ephemeral ports


def uperf_profile(destination: str, payload_bytes: int, duration_s: float, protocol: str) -> str:
    """A uperf profile: connect once, write *payload_bytes* per flowop for *duration_s*, disconnect."""
    options = quoteattr(f"remotehost={destination} protocol={protocol} port={UPERF_DATA_PORT}")
    return f"""<?xml version="1.0"?>
<profile name="seconetbench-{protocol}-stream-{payload_bytes}">
  <group nthreads="1">
    <transaction iterations="1">
      <flowop type="connect" options={options}/>
    </transaction>
    <transaction duration="{duration_s:g}s">
      <flowop type="write" options="size={payload_bytes}"/>
    </transaction>
    <transaction iterations="1">
      <flowop type="disconnect"/>
    </transaction>
  </group>
</profile>
"""


@register
class Throughput(Workload):
    kind = "throughput"
    table = "throughput"

    @property
    def generator(self) -> str:
        choice = self.params.get("generator", "auto")
        if choice == "auto":
            return "uperf" if shutil.which("uperf") else "iperf3"
        return choice

    def required_tools(self):
        return (self.generator,)

    def timeout_s(self) -> float:
        return self.params["duration_s"] * 1.5 + 20

    def nominal_s(self, setup: SetupSpec) -> float:
        return self.params["duration_s"]  # all pairs at once

    # ------------------------------------------------------------------ run
    def run(self, ctx: RunContext) -> dict[str, Any]:
        if self.generator == "uperf":
            return self._run_uperf(ctx)
        return self._run_iperf3(ctx)

    def iperf3_client_argv(self, destination: str) -> list[str]:
        p = self.params
        argv = ["iperf3", "-c", destination, "-p", str(IPERF3_PORT), "-t", f"{p['duration_s']:g}",
                "-l", str(p["payload_bytes"]), "-i", f"{p['interval_s']:g}", "--json"]
        if p.get("protocol", "tcp") == "udp":
            argv += ["-u", "-b", f"{p.get('udp_rate_mbps', 0):g}M"]
        return argv

    def _run_iperf3(self, ctx: RunContext) -> dict[str, Any]:
        deployment = ctx.deployment
        servers, clients = [], []
        try:
            for sender, sink in deployment.pairs:
                pair = deployment.pair_name(sender, sink)
                sink_c = deployment.container(sink)
                argv = ["iperf3", "-s", "-1", "-p", str(IPERF3_PORT), "-B", sink_c.ip, "--json"]
                servers.append(self.launch(ctx, pair, "server", sink_c, argv))
            wait_listening(ctx, servers, IPERF3_PORT)
            for sender, sink in deployment.pairs:
                pair = deployment.pair_name(sender, sink)
                argv = self.iperf3_client_argv(deployment.container(sink).ip)
                clients.append(self.launch(ctx, pair, "client", deployment.container(sender), argv))
            self.wait_all(ctx, clients, self.timeout_s(), "iperf3 clients")
        finally:
            # Servers run with -1 and exit after their test; end the ones that did not.
            self.stop(ctx, servers)
            if clients and any(c.returncode is None for c in clients):
                self.stop(ctx, clients)
        for client in clients:
            # iperf3 --json exits 0 even on errors: the parser raises ToolError on the 'error' key.
            try:
                parsers.parse_file("iperf3", client.stdout)
            except ParseError as exc:
                raise WorkloadError(f"{ctx.label}: iperf3 {client.pair}: {exc.reason}") from None
        return {"generator": "iperf3", "processes": self.record(servers + clients)}

    def _run_uperf(self, ctx: RunContext) -> dict[str, Any]:
        deployment = ctx.deployment
        p = self.params
        servers, clients = [], []
        try:
            for sender, sink in deployment.pairs:
                pair = deployment.pair_name(sender, sink)
                servers.append(self.launch(ctx, pair, "server", deployment.container(sink), ["uperf", "-s"]))
            wait_listening(ctx, servers, UPERF_CONTROL_PORT)
            for sender, sink in deployment.pairs:
                pair = deployment.pair_name(sender, sink)
                profile = ctx.out_dir / f"{pair}.profile.xml"
                profile.write_text(uperf_profile(deployment.container(sink).ip, p["payload_bytes"],
                                                 p["duration_s"], p.get("protocol", "tcp")))
                argv = ["uperf", "-m", str(profile), "-R", "-a", "-i", f"{p['interval_s']:g}s"]
                clients.append(self.launch(ctx, pair, "client", deployment.container(sender), argv))
            self.wait_all(ctx, clients, self.timeout_s(), "uperf clients")
        finally:
            self.stop(ctx, servers)
        failed = [c for c in clients if c.returncode != 0]
        if failed:
            raise WorkloadError(f"{ctx.label}: uperf {failed[0].pair} exited {failed[0].returncode}: "
                                f"{failed[0].stdout.read_text()[-300:]}")
        return {"generator": "uperf", "processes": self.record(servers + clients)}

    # ------------------------------------------------------------------ parse
    def parse(self, raw_dir: Path, meta: dict[str, Any]) -> pd.DataFrame:
        import pandas as pd  # here: validating a config reads this class, not its parsing

        run = meta["workload_run"]
        generator = run["generator"]
        frames = []
        for record in run["processes"]:
            if record["role"] != "client":
                continue
            parsed = parsers.parse_file(generator, raw_dir / record["stdout"])
            samples = parsed.samples
            frame = pd.DataFrame({
                "pair": record["pair"],
                "flow": samples["stream"].rank(method="dense").astype(int) if "stream" in samples else 1,
                "generator": generator,
                "protocol": self.params.get("protocol", "tcp"),
                "payload_bytes": self.params["payload_bytes"],
                "interval_start_s": samples["interval_start_s"],
                "interval_end_s": samples["interval_end_s"],
                "bytes": samples["bytes"],
                "throughput_mbps": samples["throughput_mbps"],
                "retransmits": samples["retransmits"] if "retransmits" in samples else pd.NA,
            })
            if "omitted" in samples:
                frame = frame[~samples["omitted"].astype(bool).to_numpy()]
            frames.append(frame)
        return pd.concat(frames, ignore_index=True)
