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

The raw target holds the probers' records (each prober's stdout, ``visit<k>-<container>.prober.stdout``:
the launcher carries it back on every backend), their words (``ready``, ``done``: its stderr)
and, in meta.json, every change's issue time, control-plane time and window, and where the
probers' clocks are not this machine's (ssh), each visit's measured clock offsets (:class:`Clocks`); :meth:`parse`
computes the table from those alone, with the same function the run used to decide when a
change had taken effect (:func:`flow_effect`).
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
STOP_GRACE_S = 5.0  # a prober's last records and its done line, over ssh too
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
    """The whole records of a prober's record stream (its stdout; a record still on its way is
    left out)."""
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


# ------------------------------------------------------------------------------------ clocks
# The record kinds whose t_send the record's own prober read (the others carry the peer's).
OWN_SEND_TIMES = (prober.SENT_UDP_NEW, prober.SENT_UDP_STREAM, prober.SENT_TCP_STREAM, prober.TCP_NEW_RESULT)


@dataclass(frozen=True)
class Clocks:
    """How a visit's times map onto this machine's (the controller's) clock, the one timeline
    on which a change's issue and its probes are compared. The probers read their host's clock;
    on the netns and docker backends that is this machine's (no offsets), on the ssh backend each
    host's, measured before and after the visit (Backend.clock_offsets, meta.json
    ``visits[].clocks``). A change the hosts made says when each began, on its own clock
    (``made_ns``); its issue is the earliest of them."""

    offsets_ns: dict[str, int]  # host -> its clock minus this machine's
    uncertainty_ms: dict[str, float]  # host -> bound on the error of that offset
    host_of: dict[str, str]  # container -> its host

    @classmethod
    def measured(cls, before: dict[str, dict] | None, after: dict[str, dict] | None,
                 host_of: dict[str, str]) -> dict[str, Any] | None:
        """What meta.json records of a visit's clocks (None: one clock): per host the mean of
        the offsets measured *before* and *after* it, uncertain by the larger measurement's
        uncertainty plus half their difference (the clocks' drift meanwhile)."""
        if before is None:
            return None
        after = after or before
        hosts = {}
        for host in sorted(set(host_of.values())):
            first, last = before[host], after[host]
            drift = abs(last["offset_ms"] - first["offset_ms"])
            hosts[host] = {"offset_ms": (first["offset_ms"] + last["offset_ms"]) / 2,
                           "uncertainty_ms": max(first["uncertainty_ms"], last["uncertainty_ms"]) + drift / 2,
                           "drift_ms": drift, "before": first, "after": last}
        return {"hosts": hosts, "containers": dict(host_of)}

    @classmethod
    def of(cls, recorded: dict[str, Any] | None) -> Clocks:
        """From meta.json's ``visits[].clocks`` (:meth:`measured`); absent: one clock."""
        if not recorded:
            return ONE_CLOCK
        hosts = recorded["hosts"]
        return cls({h: round(v["offset_ms"] * 1e6) for h, v in hosts.items()},
                   {h: float(v["uncertainty_ms"]) for h, v in hosts.items()}, dict(recorded["containers"]))

    def offset(self, container: str) -> int:
        return self.offsets_ns.get(self.host_of.get(container, ""), 0)

    def records(self, container: str, peer: str, records: np.ndarray) -> np.ndarray:
        """*container*'s records with their times on this machine's clock: what it read minus
        its host's offset, the peer's send times carried in a probe minus the peer's."""
        own, theirs = self.offset(container), self.offset(peer)
        if not own and not theirs:
            return records
        import numpy as np

        converted = records.copy()
        sent_here = np.isin(converted["kind"], OWN_SEND_TIMES)
        converted["t_send"] -= np.where(converted["t_send"] == 0, 0, np.where(sent_here, own, theirs))
        converted["t_event"] -= np.where(converted["t_event"] == 0, 0, own)
        return converted

    def issued(self, change: dict[str, Any]) -> tuple[int, str | None]:
        """When *change* was issued, on this machine's clock, and on whose clock it was read
        (a host's; None: this machine's, the controller's call)."""
        made = change.get("made_ns")
        if not made:
            return change["issued_ns"], None
        host = min(made, key=lambda h: made[h] - self.offsets_ns.get(h, 0))
        return made[host] - self.offsets_ns.get(host, 0), host

    def uncertainty(self, probe_container: str, issue_host: str | None) -> float:
        """The bound (ms) on a latency's error from the clocks: none when the probe's and the
        issue's clock are one (the same host: the offset cancels; or no offsets at all), else the
        offsets' uncertainties that enter it."""
        probe_host = self.host_of.get(probe_container)
        if not self.offsets_ns or probe_host == issue_host:
            return 0.0
        return self.uncertainty_ms.get(probe_host, 0.0) + (self.uncertainty_ms.get(issue_host, 0.0) if issue_host else 0.0)


ONE_CLOCK = Clocks({}, {}, {})


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


def unenforced_changes(changer, deployment: Deployment, visits: list[dict[str, Any]]) -> None:
    """On a setup whose filter the platform does not enforce: every planned change is still
    made and timed (control plane, into each visit's ``changes``), without probes (no change can
    show in a data plane that lets everything through); every visit ends with the whitelist as
    it found it, also after a failure."""
    number = 0
    for visit in visits:
        a, b = visit["pair"]
        allowed = visit["initially"] == "allowed"
        visit["changes"] = []
        try:
            for direction in visit["directions"]:
                number += 1
                allowed = direction == "allow"  # before the call: a call that fails is undone
                issued = time.time_ns()
                control_s = (changer.update_pair if allowed else changer.remove_pair)(deployment, a, b)
                visit["changes"].append({"change": number, "direction": direction, "issued_ns": issued,
                                         "control_s": round(control_s, 6)})
        finally:
            if allowed != (visit["initially"] == "allowed"):
                try:
                    (changer.update_pair if not allowed else changer.remove_pair)(deployment, a, b)
                except Exception as error:  # noqa: BLE001 - the first failure is the one raised
                    log.warning("could not restore the whitelist entry of %s-%s (%s)", a, b, error)


def enforcement_evidence(deployment: Deployment, visits: list[dict[str, Any]]) -> dict[str, Any]:
    """Why the setup's filter counts as not enforced: the platform's own word where known
    (kubernetes: the CNI and whether it enforces NetworkPolicy) and the deploy's isolation
    check, whose probes between pairs the whitelist denies got through (those of the visited
    pairs: the state every deny returns them to)."""
    check = deployment.facts.get("verification", {})
    visited = {f"{a}->{b}" for visit in visits for a, b in (visit["pair"], visit["pair"][::-1])}
    cni = deployment.facts.get("kubernetes", {}).get("cni", {})
    return {"cni": cni.get("name"), "enforces_networkpolicy": cni.get("enforces_networkpolicy"),
            "isolation_check": {"passed": check.get("passed"), "failures": len(check.get("failures", [])),
                                "visited_pairs_reachable": [f for f in check.get("failures", [])
                                                            if f.split()[0] in visited]}}


@register
class PolicyUpdate(Workload):
    kind = "policy_update"
    table = "policy_update"
    tools = ("python3",)
    # a filter the platform does not enforce is this workload's result (not_enforced), not a
    # refused deploy (docs/decisions.md "Unenforced policy is a result")
    measures_enforcement = True

    # ------------------------------------------------------------------ run
    def run(self, ctx: RunContext) -> dict[str, Any]:
        p = self.params
        deployment = ctx.deployment
        visits = plan_changes(deployment, p["changes"], p["changes_per_pair"])
        settings = {"rate_hz": p["rate_hz"], "timeout_s": p["timeout_s"], "hold_ms": p["hold_ms"],
                    "probe_timeout_ms": p["probe_timeout_ms"], "port": prober.DEFAULT_PORT}
        tech = ctx.backend.pair_changer(deployment)
        if tech is None:
            return {"enforced": False, **settings, "visits": visits,
                    "reason": f"filter '{deployment.setup.filter}' enforces no whitelist that a change could alter"}
        enforcement = deployment.facts.get("enforcement", {"enforced": True})
        if not enforcement["enforced"]:  # the deploy kept a setup the platform does not enforce
            unenforced_changes(tech, deployment, visits)
            return {"enforced": False, **settings, "visits": visits, "filter": deployment.setup.filter,
                    "reason": enforcement["reason"], "evidence": enforcement_evidence(deployment, visits),
                    "api_calls": getattr(tech, "calls", None)}
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
        host_of = {name: deployment.container(name).host for name in (a, b)}
        before = ctx.backend.clock_offsets(deployment)  # None: one clock (netns, docker)
        clocks = Clocks.of(Clocks.measured(before, None, host_of))
        try:
            for me, peer in ((a, b), (b, a)):
                container = deployment.container(me)
                argv = ["python3", ctx.backend.push(container, script), "--ip", container.ip,
                        "--peer", deployment.container(peer).ip, "--port", str(prober.DEFAULT_PORT),
                        "--rate-hz", f"{p['rate_hz']:g}", "--timeout-ms", f"{p['probe_timeout_ms']:g}",
                        "--max-s", f"{self.max_visit_s(len(visit['directions'])):.0f}"]
                launched.append(self.launch(ctx, f"visit{index}-{me}", "prober", container, argv))
                files[me] = launched[-1].stdout  # the records, as the launcher carries them back
            self.wait_ready(ctx, launched)
            started = time.time_ns()
            visit["started_ns"] = started
            steady = self.wait(ctx, files, clocks, a, b, "allow" if allowed else "deny", started, started, hold_ns,
                               timeout_ns, STEADY_TIMEOUT_S, established=allowed)
            if not steady:
                raise WorkloadError(f"{ctx.label}: the probes between {a} and {b} did not settle "
                                    f"({'passing' if allowed else 'blocked'}, as the whitelist says) within "
                                    f"{STEADY_TIMEOUT_S:.0f} s; see {launched[0].stderr.name}")
            previous = started
            for direction in visit["directions"]:
                number += 1
                allowed = direction == "allow"  # before the call: a command that fails half way is undone
                change = {"change": number, "direction": direction, "issued_ns": time.time_ns()}
                change["control_s"] = round((tech.update_pair if allowed else tech.remove_pair)(deployment, a, b), 6)
                made = getattr(tech, "made_ns", None)  # when the hosts began it, on their clocks (ssh)
                if made:
                    change["made_ns"] = dict(made)
                issued, _ = clocks.issued(change)
                change["settled"] = self.wait(ctx, files, clocks, a, b, direction, issued, previous, hold_ns, timeout_ns,
                                              p["timeout_s"])
                change["ended_ns"] = time.time_ns()
                visit["changes"].append(change)
                previous = issued
        finally:
            if allowed != (visit["initially"] == "allowed"):  # a failure mid-visit: the whitelist as it was
                try:
                    (tech.update_pair if not allowed else tech.remove_pair)(deployment, a, b)
                except Exception as error:
                    log.warning("%s: could not restore the whitelist entry of %s-%s (%s); the deployment's "
                                "whitelist may differ until it is deployed again", ctx.label, a, b, error)
            self.stop_probers(ctx, launched)
            visit["stopped_ns"] = time.time_ns()
            visit["files"] = {name: path.name for name, path in files.items()}
            processes += self.record(launched)
            if before is not None:
                visit["clocks"] = Clocks.measured(before, ctx.backend.clock_offsets(deployment), host_of)
        visit["prober_summaries"] = {item.pair.split("-", 1)[1]: prober_summary(item.stderr) for item in launched}
        return number

    def max_visit_s(self, changes: int) -> float:
        """How long a prober may run on its own (it is stopped earlier): the steady wait and
        every change's timeout, with room."""
        return 2 * (READY_TIMEOUT_S + STEADY_TIMEOUT_S + changes * (self.params["timeout_s"] + 1)) + 30

    @staticmethod
    def stop_probers(ctx: RunContext, launched: list[Launched]) -> None:
        """End the probers so that they still say ``done``: a command whose remote side ends when
        its stdin closes (ssh, ContainerAccess.ends_with_stdin) is told so and its output drains;
        the others get SIGTERM. Whatever is left after the grace is ended (Workload.stop)."""
        for item in launched:
            if item.process.stdin is not None:
                item.process.stdin.close()
            elif item.process.poll() is None:
                item.process.terminate()
        deadline = time.monotonic() + STOP_GRACE_S
        for item in launched:
            try:
                item.process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        PolicyUpdate.stop(ctx, [item for item in launched if item.process.poll() is None])
        for item in launched:
            item.returncode = item.process.returncode
            ctx.registry.forget(item.process.pid)

    @staticmethod
    def wait_ready(ctx: RunContext, launched: list[Launched]) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        for item in launched:
            while not re.search(rb"^ready ", item.stderr.read_bytes(), flags=re.MULTILINE):
                if item.process.poll() is not None:
                    raise WorkloadError(f"{ctx.label}: the prober in {item.container.name} exited "
                                        f"(code {item.process.returncode}): {item.stderr.read_text()[-500:]}")
                if time.monotonic() > deadline:
                    raise WorkloadError(f"{ctx.label}: the prober in {item.container.name} did not say ready "
                                        f"within {READY_TIMEOUT_S:.0f} s")
                time.sleep(POLL_S)

    @staticmethod
    def wait(ctx: RunContext, files: dict[str, Path], clocks: Clocks, a: str, b: str, direction: str, issued: int,
             start: int, hold_ns: int, timeout_ns: int, limit_s: float, established: bool | None = None) -> bool:
        """Poll the probers' records until every flow of both directions shows *direction*'s
        state for hold_ns (True), or *limit_s* after *issued* (False). Established flows count
        when they passed before the change (*established* forces them in or out). Times are
        this machine's (*clocks* converts the records)."""
        deadline = issued + int(limit_s * NS)
        peers = {a: b, b: a}
        while True:
            now = time.time_ns()
            records = {name: clocks.records(name, peers[name], read_records(path)) for name, path in files.items()}
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
        # no whitelist to change (filter none): the planned changes; a platform that does not
        # enforce the filter: the changes that were made, with their control-plane time
        number = 0
        for visit in run["visits"]:
            a, b = visit["pair"]
            made = visit.get("changes") or [{"direction": d, "control_s": None} for d in visit["directions"]]
            for change in made:
                number += 1
                control_ms = change["control_s"] * 1e3 if change["control_s"] is not None else None
                for source, destination in ((a, b), (b, a)):
                    rows.append({"pair": f"{source}-{destination}", "direction": change["direction"],
                                 "connection": "new", "protocol": "none", "change": number,
                                 "extra_rules": extra_rules, "latency_ms": None, "cut": None,
                                 "control_ms": control_ms, "resolution_ms": None, "clock_uncertainty_ms": None,
                                 "status": "not_enforced"})
        return rows
    timeout_ns, hold_ns = int(run["probe_timeout_ms"] * 1e6), int(run["hold_ms"] * 1e6)
    limit_ns = int(run["timeout_s"] * NS)
    for visit in run["visits"]:
        a, b = visit["pair"]
        clocks = Clocks.of(visit.get("clocks"))
        peers = {a: b, b: a}
        records = {}
        for name, file in visit["files"].items():
            path = raw_dir / file
            if not path.exists():
                raise ParseError(f"the prober's records {file} are missing", source=str(raw_dir))
            records[name] = clocks.records(name, peers[name], read_records(path))
        changes = visit["changes"]
        issues = [clocks.issued(change) for change in changes]
        for position, change in enumerate(changes):
            issued, issue_host = issues[position]
            start = issues[position - 1][0] if position else visit["started_ns"]
            end = issues[position + 1][0] if position + 1 < len(changes) else visit["stopped_ns"]
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
                        # whose clock read the probe that decides: the receiver's for the resumed stream
                        "clock_uncertainty_ms": clocks.uncertainty(
                            receiver if flow == RESUMED and change["direction"] == "allow" else sender, issue_host)
                        if shown else None,
                        "status": "effect" if shown else "no_effect"})
    return rows


def prober_summary(stderr: Path) -> dict[str, Any] | None:
    """The prober's closing ``done {json}`` line on its stderr (counts, gaps between ticks,
    timestamp sources); None when it ended without one."""
    import json

    match = re.search(r"^done (\{.*\})$", stderr.read_text(errors="replace"), flags=re.MULTILINE)
    return json.loads(match.group(1)) if match else None

