"""Latency basic: ping from every sender to its sink, all pairs at once."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from seconetbench import parsers
from seconetbench.errors import WorkloadError
from seconetbench.workloads import register
from seconetbench.workloads.base import RunContext, Workload

if TYPE_CHECKING:
    import pandas as pd

    from seconetbench.spec import SetupSpec

# ping exit codes: 0 = at least one reply, 1 = no reply (a valid 100 % loss result), 2 = error
PING_ERROR = 2


@register
class Latency(Workload):
    kind = "latency"
    table = "latency"
    tools = ("ping",)

    def argv(self, destination: str) -> list[str]:
        p = self.params
        return ["ping", "-D", "-n", "-c", str(p["count"]), "-i", str(p["interval_s"]),
                "-s", str(p["payload_bytes"]), "-W", "1", destination]

    def timeout_s(self) -> float:
        return self.params["count"] * self.params["interval_s"] + 15

    def nominal_s(self, setup: SetupSpec) -> float:
        # all pairs at once; the last echo request leaves (count - 1) intervals after the first
        return (self.params["count"] - 1) * self.params["interval_s"]

    def run(self, ctx: RunContext) -> dict[str, Any]:
        deployment = ctx.deployment
        launched = []
        for sender, sink in deployment.pairs:
            pair = deployment.pair_name(sender, sink)
            argv = self.argv(deployment.container(sink).ip)
            launched.append(self.launch(ctx, pair, "client", deployment.container(sender), argv))
        self.wait_all(ctx, launched, self.timeout_s(), "ping")
        failed = [i for i in launched if i.returncode == PING_ERROR]
        if failed:
            first = failed[0]
            raise WorkloadError(f"{ctx.label}: ping {first.pair} failed: "
                                f"{(first.stderr.read_text() + first.stdout.read_text()).strip()[-300:]}")
        return {"generator": "ping", "processes": self.record(launched)}

    def parse(self, raw_dir: Path, meta: dict[str, Any]) -> pd.DataFrame:
        import pandas as pd  # here: validating a config reads this class, not its parsing

        frames = []
        for record in meta["workload_run"]["processes"]:
            parsed = parsers.parse_file("ping", raw_dir / record["stdout"])
            frame = parsed.samples[["seq", "timestamp_s", "rtt_ms", "ttl", "received"]].copy()
            frame.insert(0, "pair", record["pair"])
            frame.insert(1, "flow", 1)
            frames.append(frame)
        return pd.concat(frames, ignore_index=True)

