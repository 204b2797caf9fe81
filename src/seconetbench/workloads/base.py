"""The workload interface and the machinery to run one command per pair, all pairs at once."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from seconetbench import proc
from seconetbench.backends.base import Container, Deployment
from seconetbench.errors import WorkloadError
from seconetbench.spec import SetupSpec, WorkloadSpec

if TYPE_CHECKING:
    import pandas as pd

    from seconetbench.backends.base import Backend


@dataclass
class RunContext:
    deployment: Deployment
    registry: proc.Registry
    out_dir: Path  # the (temporary) raw target directory
    label: str  # "setup/workload/repN", used in error messages
    # The backend that deployed it: asked whether a server listens (a pod is not a local
    # process) and for the containers' files (remote_path, push, pull).
    backend: Backend
    # testbed.cpu_pinning: {"sender": cpus, "sink": cpus} pins the generators of each side
    cpu_pinning: dict[str, Any] | None = None

    def generator_cpus(self, container: Container) -> set[int] | None:
        """The CPUs a generator in *container* is pinned to: its side of the pair (the sender or
        the sink container) in testbed.cpu_pinning, or None (not pinned)."""
        if not self.cpu_pinning:
            return None
        side = "sender" if container.name in {sender for sender, _ in self.deployment.pairs} else "sink"
        value = self.cpu_pinning.get(side)
        return proc.pinned_cpus(value) if value is not None else None


@dataclass
class Launched:
    pair: str
    role: str  # "client" or "server"
    argv: list[str]
    process: subprocess.Popen
    stdout: Path
    stderr: Path
    container: Container | None = None
    started: float = field(default_factory=time.time)
    returncode: int | None = None
    cpus: set[int] | None = None  # pinned to (testbed.cpu_pinning)


class Workload:
    kind: ClassVar[str]
    table: ClassVar[str]  # the table kind its parsed rows belong to (seconetbench.tables)
    tools: ClassVar[tuple[str, ...]] = ()
    # Capabilities (backends.base.Capabilities field names) the backend must have; the config
    # check refuses the workload on a backend without them, before anything is deployed.
    needs: ClassVar[tuple[str, ...]] = ()
    # The workload measures whether the setup's filter is enforced (policy_update): the deploy
    # records a filter the platform does not enforce (a CNI without NetworkPolicy) instead of
    # refusing the setup, and the workload reports it (docs/decisions.md).
    measures_enforcement: ClassVar[bool] = False

    def __init__(self, spec: WorkloadSpec):
        self.spec = spec
        self.params = spec.params

    def check(self) -> str | None:
        """None when the tools are installed, else what is missing."""
        missing = [t for t in self.required_tools() if shutil.which(t) is None]
        return f"missing tools: {missing}" if missing else None

    def required_tools(self) -> Sequence[str]:
        return self.tools

    # ------------------------------------------------------------------ cost (seconetbench.plan)
    # Workloads whose overheads are measured and fitted together (the D-ITG kinds share theirs).
    cost_group: ClassVar[str | None] = None

    def nominal_s(self, setup: SetupSpec) -> float:
        """Seconds this workload's own parameters make it last on *setup*: what it waits for (a
        duration, probes at an interval), without what the machine adds around it."""
        return 0.0

    def cost_drivers(self, setup: SetupSpec) -> dict[str, float]:
        """What its wall time grows with beyond :meth:`nominal_s` on *setup* (processes started,
        probes, flows ended, packets decoded); seconetbench.plan multiplies each by the cost
        measured on this machine (data/overheads.yaml)."""
        return {"pairs": setup.containers // 2}

    def run(self, ctx: RunContext) -> dict[str, Any]:
        """Run the traffic, write raw files into ctx.out_dir, return facts for meta.json."""
        raise NotImplementedError

    def parse(self, raw_dir: Path, meta: dict[str, Any]) -> pd.DataFrame:
        """Rows of the workload's table (measure columns plus pair and flow) from a raw target."""
        raise NotImplementedError

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def launch(ctx: RunContext, pair: str, role: str, container: Container, argv: list[str]) -> Launched:
        """Start *argv* inside *container* (through its access object)."""
        stdout = ctx.out_dir / f"{pair}.{role}.stdout"
        stderr = ctx.out_dir / f"{pair}.{role}.stderr"
        cpus = ctx.generator_cpus(container)
        process = proc.spawn(proc.in_container(container, argv), stdout, stderr, ctx.registry, argv, cpus=cpus,
                             stdin_open=container.access.ends_with_stdin)
        return Launched(pair, role, argv, process, stdout, stderr, container, cpus=cpus)

    @staticmethod
    def wait_all(ctx: RunContext, launched: Sequence[Launched], timeout_s: float, what: str) -> None:
        """Wait for every process; on timeout end them all and fail, naming the stragglers."""
        deadline = time.monotonic() + timeout_s
        late = []
        for item in launched:
            try:
                item.returncode = item.process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                late.append(item)
        if late:
            proc.terminate([i.process for i in late])
            names = ", ".join(f"{i.pair} {i.role}" for i in late)
            raise WorkloadError(f"{ctx.label}: {what} did not finish within {timeout_s:.0f} s ({names}); "
                                "ended them")
        for item in launched:
            ctx.registry.forget(item.process.pid)

    @staticmethod
    def stop(ctx: RunContext, launched: Sequence[Launched]) -> None:
        proc.terminate([i.process for i in launched])
        for item in launched:
            item.returncode = item.process.returncode
            ctx.registry.forget(item.process.pid)

    @staticmethod
    def record(launched: Sequence[Launched]) -> list[dict[str, Any]]:
        return [{"pair": i.pair, "role": i.role, "argv": i.argv, "returncode": i.returncode,
                 "stdout": i.stdout.name, "stderr": i.stderr.name, "started": i.started,
                 **({"cpus": sorted(i.cpus)} if i.cpus else {})}
                for i in launched]


def sockets(pid: int, udp: bool = False) -> list[tuple[int, str]]:
    """(local port, state) of every TCP (or UDP) socket, IPv4 and IPv6, in the network namespace
    of process *pid*: its /proc/<pid>/net/{tcp,tcp6} (field 1 local address:port, field 3 state:
    0A listening, 01 established; UDP sockets show 07). No command runs inside the namespace."""
    table = "udp" if udp else "tcp"
    found = []
    for name in (table, f"{table}6"):  # ITGRecv listens on ::
        try:
            lines = Path(f"/proc/{pid}/net/{name}").read_text().splitlines()[1:]
        except (FileNotFoundError, ProcessLookupError):
            continue
        for line in lines:
            fields = line.split()
            found.append((int(fields[1].rsplit(":", 1)[1], 16), fields[3]))
    return found


def listening(pid: int, port: int, udp: bool = False) -> bool:
    """Whether the namespace of process *pid* has a socket listening on *port*."""
    return any(local == port and (udp or state == "0A") for local, state in sockets(pid, udp))


def wait_listening(ctx: RunContext, servers: Sequence[Launched], port: int, udp: bool = False,
                   timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    pending = list(servers)

    def ready(server: Launched) -> bool:
        return ctx.backend.listening(server.container, server.process.pid, port, udp)

    while pending and time.monotonic() < deadline:
        pending = [s for s in pending if not ready(s)]
        for server in pending:
            if server.process.poll() is not None:
                raise WorkloadError(f"{ctx.label}: server for {server.pair} exited "
                                    f"(code {server.process.returncode}): {server.stderr.read_text()[-500:]}")
        if pending:
            time.sleep(0.02)
    if pending:
        raise WorkloadError(f"{ctx.label}: servers of {[s.pair for s in pending]} not listening on port "
                            f"{port} after {timeout_s} s")
