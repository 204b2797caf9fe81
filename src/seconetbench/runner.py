"""Measure one target: lock the host, deploy or reuse the setup, run the workload, write the raw
target directory atomically with its meta.json.

A failure leaves no complete-looking output: the raw directory only appears when everything in
it is written. What a failed run did produce is kept under ``{results_dir}/failed/`` with the
error, so that nothing measured is lost and the cause can be read.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import tempfile
import threading
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any


from seconetbench import backends
from seconetbench import cells
from seconetbench import config as configuration
from seconetbench import meta as metadata
from seconetbench import noise, proc
from seconetbench.backends.base import Backend, Deployment
from seconetbench.errors import WorkloadError
from seconetbench.fsutil import atomic_directory, write_protect, write_text_atomic
from seconetbench.monitor import Monitor, SetupProcesses, wait_until_quiet
from seconetbench.testbed import groups as testbed_groups
from seconetbench.testbed import netlink
from seconetbench.scripting import in_own_thread, logged
from seconetbench.spec import TargetId
from seconetbench.sweep import Sweep, expand
from seconetbench.workloads import get_workload
from seconetbench.workloads.base import RunContext

log = logging.getLogger(__name__)


def lock_path() -> Path:
    """The host-wide measurement lock: $SECONETBENCH_LOCK or /run/lock/seconetbench.lock, read at
    each use (the tests hold the host's lock and point the measurements they start at their own)."""
    return Path(os.environ.get("SECONETBENCH_LOCK", "/run/lock/seconetbench.lock"))


class HostLock:
    """One measurement at a time on this machine, across Snakemake invocations and results
    directories: fcntl.flock on *path* (default :func:`lock_path`), released by the kernel when
    the holder dies, even by SIGKILL. The one way to take the host-wide lock and the testbed
    groups' locks (testbed/groups.py).

    Exclusive by default: every measurement, test hold and bench. *shared*: taken by the
    measurements of testbed groups (each also holds its group's lock exclusively), so that the
    groups measure side by side with each other but never beside an exclusive holder."""

    def __init__(self, timeout_s: float, path: Path | None = None, shared: bool = False):
        self.path = path or lock_path()
        self.timeout_s = timeout_s
        self.shared = shared
        self.file: Any = None

    def __enter__(self) -> HostLock:
        if not self.try_acquire(self.timeout_s):
            holder = self.path.with_suffix(".holder")
            who = holder.read_text().strip() if holder.exists() else "unknown"
            raise WorkloadError(
                f"another measurement holds {self.path} ({who}) for more than {self.timeout_s:.0f} s; "
                "wait for it, or raise testbed.lock_timeout_s")
        return self

    def try_acquire(self, timeout_s: float) -> bool:
        """Take the lock within *timeout_s* (0: only if free now); whether it was taken. A wait
        is spent in the kernel (flock in a thread of its own), so the lock is taken the moment
        its holder lets go, not at the next poll."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        mode = fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX
        opened = open(self.path, "a")  # noqa: SIM115 - held open while locked, closed in release
        try:
            fcntl.flock(opened, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            if timeout_s <= 0:
                opened.close()
                return False
            if not _flock_within(opened, mode, timeout_s):
                return False  # the waiting thread closes it
        self.file = opened
        how = "shared: a testbed group's measurement" if self.shared else "exclusive"
        self.path.with_suffix(".holder").write_text(f"pid {os.getpid()} since "
                                                    f"{time.strftime('%Y-%m-%dT%H:%M:%S')}, {how}\n")
        return True

    def release(self) -> None:
        if self.file is not None:
            self.file.close()  # closing the only descriptor of the open file ends its flock
            self.file = None

    def __exit__(self, *exc: Any) -> None:
        self.release()


def _flock_within(opened: Any, mode: int, timeout_s: float) -> bool:
    """flock *opened* in *mode*, blocking, for at most *timeout_s* > 0: whether it was taken.
    The blocking call runs in a daemon thread; given up at the deadline, that thread closes
    *opened* whenever its flock returns (so lets the lock go at once)."""
    taken, guard, given_up = threading.Event(), threading.Lock(), []

    def wait() -> None:
        try:
            fcntl.flock(opened, mode)
        except OSError:
            given_up.append("failed")
        with guard:
            if given_up:
                opened.close()
            else:
                taken.set()

    threading.Thread(target=wait, name=f"flock {opened.name}", daemon=True).start()
    taken.wait(timeout_s)
    with guard:
        if not taken.is_set():
            given_up.append("deadline")
        return taken.is_set()


def setup_namespaces(backend: Backend, deployment: Deployment) -> tuple[list[str], list[int]]:
    """The deployment's network namespaces on this machine (none where the backend cannot observe
    them): their names, and the inodes of those that exist."""
    namespaces = backend.observed_namespaces(deployment)
    return namespaces, [inode for inode in map(netlink.netns_inode, namespaces) if inode is not None]


def monitored(settings: dict[str, Any], backend: Backend, deployment: Deployment,
              out_dir: Path) -> contextlib.AbstractContextManager:
    """The monitor over the deployment's namespaces and processes, or nothing when disabled."""
    if not settings["enabled"]:
        return contextlib.nullcontext()
    namespaces, inodes = setup_namespaces(backend, deployment)
    return Monitor(out_dir, namespaces, processes=SetupProcesses(backend.registry.recorded, inodes),
                   interval_s=settings["interval_s"])


def keep_failed(partial: Path, results_dir: Path, label: str, error: BaseException) -> Path:
    """Move what a failed run produced to results/failed/<label>-<time>/ with the error."""
    destination = results_dir / "failed" / f"{label.replace('/', '--')}--{time.strftime('%Y%m%dT%H%M%S')}"
    destination.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(partial, destination, dirs_exist_ok=True)
    (destination / "error.txt").write_text(
        f"{label}: {error}\n\n" + "".join(traceback.format_exception(error)))
    return destination


@contextlib.contextmanager
def failure_kept(results_dir: Path, label: str, produced: Path | None = None) -> Iterator[None]:
    """On a failure of any cause in the block, keep *produced* (what the run wrote so far; None:
    nothing but the error) under results/failed/ with the error, then let the error go on."""
    try:
        yield
    except BaseException as error:
        try:
            if produced is None:
                with tempfile.TemporaryDirectory() as empty:
                    keep_failed(Path(empty), results_dir, label, error)
            else:
                keep_failed(produced, results_dir, label, error)
        except OSError as keeping:  # e.g. the disk is full: the cause still counts
            log.warning("%s: could not keep the failed output: %s", label, keeping)
        raise


def keep_attempt(partial: Path, results_dir: Path, label: str) -> str:
    """Move a noisy first attempt (complete, with its meta.json) out of *partial* to
    results/attempts/<label>--attempt1--<time>/, leaving *partial* empty for the retry. Returns
    its path relative to *results_dir* (recorded in the retry's meta.json)."""
    relative = Path("attempts") / f"{label.replace('/', '--')}--attempt1--{time.strftime('%Y%m%dT%H%M%S')}"
    destination = results_dir / relative
    destination.mkdir(parents=True, exist_ok=True)
    for item in partial.iterdir():
        shutil.move(str(item), destination / item.name)
    return str(relative)


def placement(testbed: dict[str, Any], backend: Backend) -> dict[str, Any] | None:
    """Apply testbed.cpu_pinning to the setup's daemons (or undo an earlier pinning of a reused
    deployment); what meta.json records as cpu_pinning. None on a backend whose processes this
    machine does not run (capability local_generators: kubernetes)."""
    if not backend.capabilities.local_generators:
        return None
    requested = testbed["cpu_pinning"]
    daemons = requested.get("daemons") if requested else None
    applied = proc.place(backend.registry.recorded(), proc.pinned_cpus(daemons) if daemons is not None else None)
    return {"requested": requested, "daemons": applied}


# The validated configs, their sweeps and planned run orders this process has measured with
# (every measurement job runs inside the one Snakemake process): validation and the run order of
# a sweep of thousands of targets cost about 40 ms, once per config instead of once per target.
_PREPARED: dict[str, tuple[dict[str, Any], Sweep]] = {}
_POSITIONS: dict[tuple[int, str, int, int], dict[str, int]] = {}


def prepared(config: dict[str, Any]) -> tuple[dict[str, Any], Sweep]:
    """*config* validated, and its sweep; computed once per config content in this process."""
    key = json.dumps(config, sort_keys=True, default=str)
    if key not in _PREPARED:
        if len(_PREPARED) >= 8:  # tests measure with many configs in one process
            _PREPARED.clear()
            _POSITIONS.clear()
        validated = configuration.validate(config)
        _PREPARED[key] = (validated, expand(validated))
    return _PREPARED[key]


def planned_positions(config: dict[str, Any], sweep: Sweep, groups: int) -> dict[str, int]:
    """Target path -> its 1-based position in the planned run order of *sweep* (a sweep from
    :func:`prepared`, so its identity stands for its config)."""
    order = config["run_order"]
    key = (id(sweep), order["mode"], order["seed"], groups)
    if key not in _POSITIONS:
        planned = sweep.run_order(order["mode"], order["seed"], groups=groups)
        _POSITIONS[key] = {target.path: position for position, target in enumerate(planned, start=1)}
    return _POSITIONS[key]


def measure(config: dict[str, Any], setup_id: str, workload_name: str, rep: int, out_dir: str | Path) -> Path:
    """Measure one target into *out_dir* (created atomically). Returns *out_dir*.

    Every failure is a WorkloadError whose message starts with the target
    (``setup/workload/repN``) and says the cause, whatever raised it (a full disk, a daemon that
    died, a failed isolation check)."""
    label = f"{setup_id}/{workload_name}/rep{rep}"
    try:
        return _measure(config, setup_id, workload_name, rep, Path(out_dir), label)
    except WorkloadError as error:
        if str(error).startswith(label):
            raise
        raise WorkloadError(f"{label}: {error}") from error
    except Exception as error:  # a bug too: the target named, the cause chained
        raise WorkloadError(f"{label}: {type(error).__name__}: {error}") from error


def _measure(config: dict[str, Any], setup_id: str, workload_name: str, rep: int, out_dir: Path,
             label: str) -> Path:
    config, sweep = prepared(config)
    setup = sweep.setup(setup_id)
    spec = sweep.workload(workload_name)
    workload = get_workload(spec)
    missing = workload.check()
    if missing:
        raise WorkloadError(f"{label}: {missing}; run `seconetbench preflight` and install them")
    testbed = config["testbed"]
    results_dir = Path(config["results_dir"])
    # before anything is deployed: a cell never mixes repetitions of different parameters
    generator = {"generator": getattr(workload, "generator", None),  # `auto` resolved (throughput)
                 "cpu_pinning": cells.pinning_of(testbed["cpu_pinning"])
                 if backends.BACKENDS.get(testbed["backend"]).capabilities.local_generators else None}
    cells.check_cell(out_dir.parent, setup, spec, results_dir, ran=generator)
    params = cells.cell_params(setup, spec)

    def deploy(backend: Backend) -> tuple[Deployment, bool]:
        # not measured; the failure of any cause (e.g. which isolation probes failed, a tool that
        # failed with its stderr) is kept with the results
        with tempfile.TemporaryDirectory(prefix="seconetbench-deploy-") as produced, \
                failure_kept(results_dir, label, Path(produced)):
            return backend.deploy_or_reuse(setup, verify=testbed["verify_isolation"], keep=Path(produced),
                                           measures_enforcement=workload.measures_enforcement)

    # a testbed group (the one testbed without testbed.*.groups) under its lock, its backend
    # closed at the end: this process measures target after target (rule run_batch runs in
    # Snakemake's), several at once with several groups
    with testbed_groups.deployed(config, rep, deploy) as (group, backend, deployment, reused):
        log.info("%s: %s deployment %s on testbed group %s", label, "reused the" if reused else "new",
                 deployment.prefix, group.name)
        # and the implementation the deploy resolved (`auto`) is the one the earlier repetitions had
        cells.check_cell(out_dir.parent, setup, spec, results_dir,
                         ran={**generator, **cells.ran_of({"deployment": deployment.facts})})
        succeeded = False
        try:
            with failure_kept(results_dir, label):
                cpu_pinning = placement(testbed, backend)
                _, inodes = setup_namespaces(backend, deployment)
                settle = wait_until_quiet(backend.traffic_namespaces(deployment), testbed["settle_quiet_s"],
                                          testbed["settle_max_s"])
            earlier_attempts: list[str] = []  # a noisy first attempt, when testbed.noise.remeasure
            # failure_kept inside atomic_directory: a failure anywhere in here (the workload, its
            # meta.json, a retry) keeps the raw files measured so far before the partial goes
            with atomic_directory(out_dir) as partial, failure_kept(results_dir, label, partial):
                while True:
                    started = time.time()
                    window = noise.Window(set(inodes), {p.pid for p in backend.registry.recorded()},
                                          outside_visible=backend.capabilities.observe_hosts)
                    with monitored(config["monitor"], backend, deployment, partial), window:
                        run_facts = workload.run(RunContext(deployment, backend.registry, partial, label, backend,
                                                            cpu_pinning=testbed["cpu_pinning"]))
                    finished = time.time()
                    order = config["run_order"]
                    planned = planned_positions(config, sweep, group.count)
                    # repetitions added by convergence rounds come after the planned order
                    position = planned.get(label)
                    meta = {
                        "target": {"setup": setup_id, "workload": workload_name, "rep": rep},
                        "group": group.describe(),
                        "run_order": {**order, "position": position, "targets": len(planned)},
                        "setup": setup.to_dict(),
                        "workload": spec.to_dict(),
                        "cell_params": params,
                        "cell_fingerprint": cells.fingerprint(params),
                        "table": workload.table,
                        "started_at": started,
                        "finished_at": finished,
                        "duration_s": round(finished - started, 6),
                        "settle": settle,
                        "deployment": {"prefix": deployment.prefix, "reused": reused, **deployment.facts,
                                       "containers": len(deployment.containers), "pairs": len(deployment.pairs)},
                        "workload_run": run_facts,
                        "noise": {**noise.assess(window.record, testbed["noise"]), "attempt": len(earlier_attempts) + 1,
                                  "earlier_attempts": earlier_attempts},
                        "cpu_pinning": cpu_pinning,
                        "monitor": config["monitor"],
                        "machine": metadata.machine(),
                        "software": metadata.software(list(workload.required_tools()) + ["ip", "iptables"]),
                    }
                    metadata.write_meta(partial, meta)
                    if not (meta["noise"]["noisy"] and testbed["noise"]["remeasure"] and not earlier_attempts):
                        break
                    earlier_attempts.append(keep_attempt(partial, results_dir, label))
                    log.warning("%s: noisy (%s above %s), kept as %s; measuring once more", label,
                                meta["noise"]["exceeded"], meta["noise"]["thresholds"], earlier_attempts[-1])
                    settle = wait_until_quiet(backend.traffic_namespaces(deployment), testbed["settle_quiet_s"],
                                              testbed["settle_max_s"])
            succeeded = True
            log.info("%s: measured in %.2f s", label, finished - started)
        finally:
            # A failed run may have left the testbed in a bad state: deploy afresh next time.
            if not succeeded or not testbed["reuse_deployment"]:
                backend.teardown()
    return out_dir


def measure_batch(config: dict[str, Any], targets: list[str], record: str, log_path: str) -> dict[str, Any]:
    """What rule run_batch runs, inside the Snakemake process: the *targets* (``setup/workload/repN``,
    consecutive targets of one setup in the run order, sweep.batches) one after the other, in a
    thread of its own (scripting.in_own_thread), the records and a failure's traceback in the job
    log. Each target is measured by :func:`measure` into its own raw directory, which is then
    write-protected; a target complete already is skipped. A failed target does not stop the
    batch: the rest are measured, then the job fails naming the failed ones (their output is kept
    under failed/). Only a batch without failures writes *record*, the job's output: what it
    measured (docs/decisions.md, "A measurement job measures a batch of targets")."""
    with logged(log_path):
        return in_own_thread(_measure_batch, config, [TargetId.parse(t) for t in targets], Path(record))


def _measure_batch(config: dict[str, Any], targets: list[TargetId], record: Path) -> dict[str, Any]:
    raw = Path(prepared(config)[0]["results_dir"]) / "raw"  # the schema's default when not given
    done: dict[str, Any] = {"targets": [t.path for t in targets], "measured": [], "complete_before": []}
    failed = []
    for target in targets:
        out_dir = raw / target.path
        if (out_dir / metadata.META_FILE).exists():
            done["complete_before"].append(target.path)
            continue
        try:
            measure(config, target.setup, target.workload, target.rep, out_dir)
        except WorkloadError as error:
            log.error("%s", error)
            failed.append(str(error))
            continue
        write_protect(out_dir)
        done["measured"].append(target.path)
    if failed:
        raise WorkloadError(f"{len(failed)} of the {len(targets)} targets of this batch failed (the others are "
                            "measured and kept; what the failed ones produced is under failed/):\n" + "\n".join(failed))
    write_text_atomic(record, json.dumps(done, indent=1) + "\n")
    return done
