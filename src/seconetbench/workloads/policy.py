"""Policy enforcement latency (issue 15): how long until a whitelist change shows in the data plane.

For one pair at a time, a prober (workloads/prober.py) runs in each of its two containers and
probes the other at ``rate_hz`` over four flows per direction: UDP datagrams from fresh sockets
and TCP connection attempts (``new``), and a UDP stream and a TCP connection that run through
the whole visit (``established``). During that steady probing the workload changes the
whitelist live through the setup's filter (its ``update_pair`` / ``remove_pair``), alternating
allow and deny, and reads the probers' records to see each change take effect:

- **allow**: the first probe sent after the change was issued that passes; ``latency_ms`` is its
  send time minus the issue time, ``resolution_ms`` the gap to the probe before it (which did
  not pass): the effect happened within that gap before ``latency_ms``.
- **deny**: the last probe that passes brackets the effect from below; ``latency_ms`` is the
  first probe after it (the first one blocked, after which none passes), ``resolution_ms`` the
  gap between the two.
- **established** flows: the same on the UDP stream and the TCP connection; a deny that stops
  them is a ``cut``. A flow counts as established only when it passed before the change.

A probe *passes* when the peer received it within ``probe_timeout_ms`` of its sending (a TCP
attempt: when it connected within that time). A change whose effect does not show within
``timeout_s`` has ``latency_ms`` null (status ``no_effect``; a deny that never cuts an
established flow: ``cut`` false). docs/workloads.md explains the method.

The raw target holds the probers' record files (``visit<k>-<container>.probes``), their output
and, in meta.json, every change's issue time, control-plane time and window; :meth:`parse`
computes the table from those alone, with the same function the run used to decide when a
change had taken effect (:func:`flow_effect`).
"""

from __future__ import annotations

import logging
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seconetbench import technology
from seconetbench.backends.base import Deployment
from seconetbench.errors import ParseError, WorkloadError
from seconetbench.workloads import prober, register
from seconetbench.workloads.base import Launched, RunContext, Workload

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

log = logging.getLogger(__name__)

PROBER_FILE = "prober.py"  # copied into the raw target: what ran is kept with what it measured
READY_TIMEOUT_S = 10.0
STEADY_TIMEOUT_S = 10.0
POLL_S = 0.01
NS = 1_000_000_000

# (connection, protocol) -> (record kind in the sender's file, record kind of its arrival in the
# receiver's file; None: the sender's own record says whether it passed)
FLOWS = {
    ("new", "udp"): (prober.SENT_UDP_NEW, prober.GOT_UDP_NEW),
    ("new", "tcp"): (prober.TCP_NEW_RESULT, None),
    ("established", "udp"): (prober.SENT_UDP_STREAM, prober.GOT_UDP_STREAM),
    ("established", "tcp"): (prober.SENT_TCP_STREAM, prober.GOT_TCP_STREAM),
}
STATUSES = ("effect", "no_effect", "not_enforced")
RESUMED = ("established", "tcp")  # an allow shows when its data arrives again (flow_effect)


# ------------------------------------------------------------------------------------ records
def read_records(path: Path) -> np.ndarray:
    """The whole records of a prober's file (a record being written is left out)."""
    import numpy as np

    dtype = np.dtype([("kind", "u1"), ("flag", "u1"), ("pad", "<u2"), ("seq", "<u4"),
                      ("t_send", "<i8"), ("t_event", "<i8")])
    assert dtype.itemsize == prober.RECORD.size
    data = path.read_bytes()
    return np.frombuffer(data[:len(data) - len(data) % dtype.itemsize], dtype=dtype)


@dataclass
class Series:
    """One flow of one direction: its probes in send order, whether each passed, when each was
    decided (passed: when it arrived or connected; failed: send + timeout, or when the attempt
    was given up) and when it arrived at all (late included; never: the largest int64)."""

    send: np.ndarray  # ns
    passed: np.ndarray  # bool
    decided: np.ndarray  # ns
    arrival: np.ndarray  # ns


NEVER = 2**63 - 1


def flow_series(sender: np.ndarray, receiver: np.ndarray, flow: tuple[str, str], timeout_ns: int) -> Series:
    """The probes of *flow* from the sender's records to the receiver's."""
    import numpy as np

    sent_kind, got_kind = FLOWS[flow]
    sent = sender[sender["kind"] == sent_kind]
    if got_kind is None:  # a TCP attempt: its own outcome
        sent = sent[np.argsort(sent["t_send"], kind="stable")]
        passed = (sent["flag"] == 1) & (sent["t_event"] - sent["t_send"] <= timeout_ns)
        return Series(sent["t_send"], passed, sent["t_event"], np.where(sent["flag"] == 1, sent["t_event"], NEVER))
    sent = sent[sent["flag"] == 1]
    got = receiver[receiver["kind"] == got_kind]
    # the first arrival of each probe (a TCP stream's message arrives once; a datagram may not)
    got = got[np.argsort(got["t_event"], kind="stable")]
    seqs, first = np.unique(got["seq"], return_index=True)
    arrival = np.full(len(sent), NEVER, dtype=np.int64)
    if len(seqs):
        where = np.minimum(np.searchsorted(seqs, sent["seq"]), len(seqs) - 1)
        found = seqs[where] == sent["seq"]
        arrival[found] = got["t_event"][first[where[found]]]
    passed = arrival - sent["t_send"] <= timeout_ns
    decided = np.where(passed, arrival, sent["t_send"] + timeout_ns)
    return Series(sent["t_send"], passed, decided, arrival)


@dataclass(frozen=True)
class Effect:
    latency_ns: int | None  # from the issue to the probe that shows the new state
    resolution_ns: int | None  # the gap between that probe and its neighbour on the other side
    settled: bool  # the new state has held for hold_ns of decided probes


def flow_effect(series: Series, direction: str, issued_ns: int, start_ns: int, end_ns: int, hold_ns: int,
                now_ns: int | None = None, resumed: bool = False) -> Effect:
    """When the change issued at *issued_ns* showed in *series* (module docstring), looking at
    the probes sent in [*start_ns*, *end_ns*) (from the previous change to the next) and decided
    by *now_ns* (None: everything recorded is decided, as when parsing). A probe that arrived
    only after *end_ns* did not pass in this window: the next change let it through.

    *resumed* (the established TCP stream): an allow shows when the stream's data arrives again
    at all, whenever it was sent (TCP resends what the deny dropped, so a message's send time
    says nothing about when the path opened); its resolution is TCP's resend timer, not ours (None)."""
    import numpy as np

    keep = (series.send >= start_ns) & (series.send < end_ns)
    if now_ns is not None:
        keep &= series.decided <= now_ns
    send, arrival = series.send[keep], series.arrival[keep]
    passed = series.passed[keep] & (series.decided[keep] < end_ns)
    if not len(send):
        return Effect(None, None, False)
    if direction == "allow" and resumed:
        arrived = arrival[(arrival >= issued_ns) & (arrival < end_ns)]
        if not arrived.size:
            return Effect(None, None, False)
        first = int(arrived.min())
        return Effect(first - issued_ns, None, bool(send[-1] - first >= hold_ns))
    if direction == "allow":
        after = np.flatnonzero(passed & (send >= issued_ns))
        if not after.size:
            return Effect(None, None, False)
        first = after[0]
        resolution = int(send[first] - send[first - 1]) if first > 0 else None
        return Effect(int(send[first] - issued_ns), resolution, bool(send[-1] - send[first] >= hold_ns))
    passes = np.flatnonzero(passed)
    blocked = passes[-1] + 1 if passes.size else 0
    if blocked >= len(send):
        return Effect(None, None, False)
    resolution = int(send[blocked] - send[blocked - 1]) if passes.size else None
    return Effect(int(send[blocked] - issued_ns), resolution, bool(send[-1] - send[blocked] >= hold_ns))


def established_before(series: Series, start_ns: int, issued_ns: int) -> bool:
    """Whether the flow passed between *start_ns* and the change: only then is it established."""
    return bool(((series.send >= start_ns) & (series.send < issued_ns) & series.passed).any())


# ---------------------------------------------------------------------------------- the plan
def visit_pairs(deployment: Deployment) -> list[tuple[str, str]]:
    """The pairs whose whitelist entry the changes toggle, in visiting order: pairs that are not
    whitelisted (so the measured pairs of other workloads keep their entries); on several hosts
    first a sender with the next pair's sink (c01-c04, ...: on two hosts, so the change is
    measured across the tunnel, as the measured pairs run), then neighbouring senders (c01-c03,
    c03-c05, ...), then neighbouring sinks; with two containers, the one pair there is."""
    pairs = deployment.pairs
    following = [(index, (index + 1) % len(pairs)) for index in range(len(pairs))]
    candidates = [(pairs[i][0], pairs[j][1]) for i, j in following] if deployment.setup.hosts > 1 else []
    candidates += [(pairs[i][side], pairs[j][side]) for side in (0, 1) for i, j in following]
    found: list[tuple[str, str]] = []
    for a, b in candidates:
        if a != b and not deployment.allowed(a, b) and (a, b) not in found and (b, a) not in found:
            found.append((a, b))
    return found or [pairs[0]]


def plan_changes(deployment: Deployment, changes: int, per_pair: int) -> list[dict[str, Any]]:
    """The visits: per pair, *per_pair* changes alternating allow and deny, starting from the
    pair's state (so that every visit ends with the whitelist as it found it)."""
    pairs = visit_pairs(deployment)
    visits, left, index = [], changes, 0
    while left > 0:
        a, b = pairs[index % len(pairs)]
        allowed = deployment.allowed(a, b)
        count = min(per_pair, left)
        cycle = ["deny", "allow"] if allowed else ["allow", "deny"]
        visits.append({"pair": [a, b], "initially": "allowed" if allowed else "denied",
                       "directions": cycle * (count // 2)})
        left -= count
        index += 1
    return visits


def filter_changer(setup_filter: str):
    """The filter of the setup when it can allow and deny one pair live, else None."""
    tech = technology.get("filter", setup_filter)
    if not getattr(tech, "enforces_whitelist", False):
        return None
    if not (hasattr(tech, "update_pair") and hasattr(tech, "remove_pair")):
        return None
    return tech


@register
class PolicyUpdate(Workload):
    kind = "policy_update"
    table = "policy_update"
    tools = ("python3",)
    # the controller reads the probers' record files while they write them
    needs = ("shared_files",)

    # ------------------------------------------------------------------ run
    def run(self, ctx: RunContext) -> dict[str, Any]:
        p = self.params
        deployment = ctx.deployment
        visits = plan_changes(deployment, p["changes"], p["changes_per_pair"])
        settings = {"rate_hz": p["rate_hz"], "timeout_s": p["timeout_s"], "hold_ms": p["hold_ms"],
                    "probe_timeout_ms": p["probe_timeout_ms"], "port": prober.DEFAULT_PORT}
        tech = filter_changer(deployment.setup.filter)
        if tech is None:
            return {"enforced": False, **settings, "visits": visits,
                    "reason": f"filter '{deployment.setup.filter}' enforces no whitelist that a change could alter"}
        script = ctx.out_dir / PROBER_FILE
        shutil.copyfile(prober.__file__, script)
        number, processes = 0, []
        for index, visit in enumerate(visits, start=1):
            number = self.visit(ctx, tech, script, index, visit, number, processes)
        return {"enforced": True, "generator": "prober", "processes": processes, **settings,
                "filter": deployment.setup.filter, "visits": visits}

    def visit(self, ctx: RunContext, tech, script: Path, index: int, visit: dict[str, Any], number: int,
              processes: list[dict[str, Any]]) -> int:
        """Probe one pair and make its changes (into *visit*; the probers' records into
        *processes*); returns the last change number."""
        p = self.params
        deployment = ctx.deployment
        a, b = visit["pair"]
        allowed = visit["initially"] == "allowed"
        timeout_ns, hold_ns = int(p["probe_timeout_ms"] * 1e6), int(p["hold_ms"] * 1e6)
        launched: list[Launched] = []
        files = {}
        visit["changes"] = []
        try:
            for me, peer in ((a, b), (b, a)):
                container = deployment.container(me)
                files[me] = ctx.out_dir / f"visit{index}-{me}.probes"
                argv = ["python3", ctx.backend.push(container, script), "--ip", container.ip,
                        "--peer", deployment.container(peer).ip, "--port", str(prober.DEFAULT_PORT),
                        "--rate-hz", f"{p['rate_hz']:g}", "--timeout-ms", f"{p['probe_timeout_ms']:g}",
                        "--max-s", f"{self.max_visit_s(len(visit['directions'])):.0f}",
                        "--out", ctx.backend.remote_path(container, files[me])]
                launched.append(self.launch(ctx, f"visit{index}-{me}", "prober", container, argv))
            self.wait_ready(ctx, launched)
            started = time.time_ns()
            visit["started_ns"] = started
            steady = self.wait(ctx, files, a, b, "allow" if allowed else "deny", started, started, hold_ns, timeout_ns,
                               STEADY_TIMEOUT_S, established=allowed)
            if not steady:
                raise WorkloadError(f"{ctx.label}: the probes between {a} and {b} did not settle "
                                    f"({'passing' if allowed else 'blocked'}, as the whitelist says) within "
                                    f"{STEADY_TIMEOUT_S:.0f} s; see {launched[0].stderr.name}")
            previous = started
            for direction in visit["directions"]:
                number += 1
                allowed = direction == "allow"  # before the call: a command that fails half way is undone
                issued = time.time_ns()
                control_s = (tech.update_pair if allowed else tech.remove_pair)(deployment, a, b)
                settled = self.wait(ctx, files, a, b, direction, issued, previous, hold_ns, timeout_ns, p["timeout_s"])
                visit["changes"].append({"change": number, "direction": direction, "issued_ns": issued,
                                         "control_s": round(control_s, 6), "ended_ns": time.time_ns(),
                                         "settled": settled})
                previous = issued
        finally:
            if allowed != (visit["initially"] == "allowed"):  # a failure mid-visit: the whitelist as it was
                try:
                    (tech.update_pair if not allowed else tech.remove_pair)(deployment, a, b)
                except Exception as error:
                    log.warning("%s: could not restore the whitelist entry of %s-%s (%s); the deployment's "
                                "whitelist may differ until it is deployed again", ctx.label, a, b, error)
            self.stop(ctx, launched)
            visit["stopped_ns"] = time.time_ns()
            visit["files"] = {name: path.name for name, path in files.items()}
            processes += self.record(launched)
        visit["prober_summaries"] = {item.pair.split("-", 1)[1]: prober_summary(item.stdout) for item in launched}
        return number

    def max_visit_s(self, changes: int) -> float:
        """How long a prober may run on its own (it is stopped earlier): the steady wait and
        every change's timeout, with room."""
        return 2 * (READY_TIMEOUT_S + STEADY_TIMEOUT_S + changes * (self.params["timeout_s"] + 1)) + 30

    @staticmethod
    def wait_ready(ctx: RunContext, launched: list[Launched]) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        for item in launched:
            while b"ready" not in item.stdout.read_bytes():
                if item.process.poll() is not None:
                    raise WorkloadError(f"{ctx.label}: the prober in {item.container.name} exited "
                                        f"(code {item.process.returncode}): {item.stderr.read_text()[-500:]}")
                if time.monotonic() > deadline:
                    raise WorkloadError(f"{ctx.label}: the prober in {item.container.name} did not say ready "
                                        f"within {READY_TIMEOUT_S:.0f} s")
                time.sleep(POLL_S)

    @staticmethod
    def wait(ctx: RunContext, files: dict[str, Path], a: str, b: str, direction: str, issued: int, start: int,
             hold_ns: int, timeout_ns: int, limit_s: float, established: bool | None = None) -> bool:
        """Poll the probers' records until every flow of both directions shows *direction*'s
        state for hold_ns (True), or *limit_s* after *issued* (False). Established flows count
        when they passed before the change (*established* forces them in or out)."""
        deadline = issued + int(limit_s * NS)
        while True:
            now = time.time_ns()
            records = {name: read_records(path) for name, path in files.items()}
            done = True
            for sender, receiver in ((a, b), (b, a)):
                for flow in FLOWS:
                    series = flow_series(records[sender], records[receiver], flow, timeout_ns)
                    if flow[0] == "established":
                        counts = established_before(series, start, issued) if established is None else established
                        if not counts:
                            continue
                    if not flow_effect(series, direction, issued, start, now, hold_ns, now_ns=now,
                                       resumed=flow == RESUMED).settled:
                        done = False
                        break
                if not done:
                    break
            if done:
                return True
            if now > deadline:
                return False
            time.sleep(POLL_S)

    # ------------------------------------------------------------------ parse
    def parse(self, raw_dir: Path, meta: dict[str, Any]) -> pd.DataFrame:
        import pandas as pd

        run = meta["workload_run"]
        extra_rules = meta["setup"]["extra_rules"]
        rows = policy_rows(raw_dir, run, extra_rules)
        frame = pd.DataFrame(rows)
        frame.insert(1, "flow", frame.groupby("pair").cumcount() + 1)
        return frame


def policy_rows(raw_dir: Path, run: dict[str, Any], extra_rules: int) -> list[dict[str, Any]]:
    """The rows of the policy_update table from a raw target (its record files and meta.json's
    workload_run)."""
    rows = []
    if not run["enforced"]:
        number = 0
        for visit in run["visits"]:
            a, b = visit["pair"]
            for direction in visit["directions"]:
                number += 1
                for source, destination in ((a, b), (b, a)):
                    rows.append({"pair": f"{source}-{destination}", "direction": direction, "connection": "new",
                                 "protocol": "none", "change": number, "extra_rules": extra_rules,
                                 "latency_ms": None, "cut": None, "control_ms": None, "resolution_ms": None,
                                 "status": "not_enforced"})
        return rows
    timeout_ns, hold_ns = int(run["probe_timeout_ms"] * 1e6), int(run["hold_ms"] * 1e6)
    limit_ns = int(run["timeout_s"] * NS)
    for visit in run["visits"]:
        a, b = visit["pair"]
        records = {}
        for name, file in visit["files"].items():
            path = raw_dir / file
            if not path.exists():
                raise ParseError(f"the prober's records {file} are missing", source=str(raw_dir))
            records[name] = read_records(path)
        changes = visit["changes"]
        for position, change in enumerate(changes):
            issued = change["issued_ns"]
            start = changes[position - 1]["issued_ns"] if position else visit["started_ns"]
            end = changes[position + 1]["issued_ns"] if position + 1 < len(changes) else visit["stopped_ns"]
            for sender, receiver in ((a, b), (b, a)):
                for flow in FLOWS:
                    series = flow_series(records[sender], records[receiver], flow, timeout_ns)
                    established = flow[0] == "established"
                    if established and not established_before(series, start, issued):
                        continue  # not running when the change came (the first allow of a denied pair)
                    effect = flow_effect(series, change["direction"], issued, start, end, hold_ns,
                                         resumed=flow == RESUMED)
                    shown = effect.latency_ns is not None and effect.latency_ns <= limit_ns
                    rows.append({
                        "pair": f"{sender}-{receiver}", "direction": change["direction"], "connection": flow[0],
                        "protocol": flow[1], "change": change["change"], "extra_rules": extra_rules,
                        "latency_ms": effect.latency_ns / 1e6 if shown else None,
                        "cut": shown if established and change["direction"] == "deny" else None,
                        "control_ms": change["control_s"] * 1e3,
                        "resolution_ms": effect.resolution_ns / 1e6 if shown and effect.resolution_ns is not None else None,
                        "status": "effect" if shown else "no_effect"})
    return rows


def prober_summary(stdout: Path) -> dict[str, Any] | None:
    """The prober's closing ``done {json}`` line (counts, gaps between ticks, timestamp
    sources); None when it ended without one."""
    import json

    match = re.search(r"^done (\{.*\})$", stdout.read_text(errors="replace"), flags=re.MULTILINE)
    return json.loads(match.group(1)) if match else None

