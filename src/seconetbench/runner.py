"""Measure one target: lock the host, deploy or reuse the setup, run the workload, write the raw
target directory atomically with its meta.json.

A failure leaves no complete-looking output: the raw directory only appears when everything in
it is written. What a failed run did produce is kept under ``{results_dir}/failed/`` with the
error, so that nothing measured is lost and the cause can be read.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import filelock

from seconetbench import backends
from seconetbench import config as configuration
from seconetbench import meta as metadata
from seconetbench.errors import DeployError, SeconetError, WorkloadError
from seconetbench.fsutil import atomic_directory
from seconetbench.monitor import Monitor, SetupProcesses, wait_until_quiet
from seconetbench.testbed import netlink
from seconetbench.scripting import in_own_thread, logged
from seconetbench.sweep import expand
from seconetbench.workloads import get_workload
from seconetbench.workloads.base import RunContext

log = logging.getLogger(__name__)
LOCK_PATH = Path(os.environ.get("SECONETBENCH_LOCK", "/run/lock/seconetbench.lock"))
META_FILE = "meta.json"


class HostLock:
    """One measurement at a time on this machine, across Snakemake invocations and results
    directories. fcntl-based: released by the kernel when the holder dies, even by SIGKILL."""

    def __init__(self, timeout_s: float, path: Path = LOCK_PATH):
        self.path = path
        self.timeout_s = timeout_s
        self.lock = filelock.FileLock(str(path))

    def __enter__(self) -> HostLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        holder = self.path.with_suffix(".holder")
        try:
            self.lock.acquire(timeout=self.timeout_s)
        except filelock.Timeout:
            who = holder.read_text().strip() if holder.exists() else "unknown"
            raise WorkloadError(
                f"another measurement holds {self.path} ({who}) for more than {self.timeout_s:.0f} s; "
                "wait for it, or raise testbed.lock_timeout_s") from None
        holder.write_text(f"pid {os.getpid()} since {time.strftime('%Y-%m-%dT%H:%M:%S')}\n")
        return self

    def __exit__(self, *exc: Any) -> None:
        self.lock.release()


def monitored(settings: dict[str, Any], deployment, registry, out_dir: Path) -> contextlib.AbstractContextManager:
    """The monitor over the deployment's namespaces and processes, or nothing when disabled."""
    if not settings["enabled"]:
        return contextlib.nullcontext()
    namespaces = [h.netns for h in deployment.hosts] + [c.netns for c in deployment.containers]
    inodes = [inode for inode in map(netlink.netns_inode, namespaces) if inode is not None]
    return Monitor(out_dir, namespaces, processes=SetupProcesses(registry.recorded, inodes),
                   interval_s=settings["interval_s"])


def keep_failed(partial: Path, results_dir: Path, label: str, error: BaseException) -> Path:
    """Move what a failed run produced to results/failed/<label>-<time>/ with the error."""
    destination = results_dir / "failed" / f"{label.replace('/', '--')}--{time.strftime('%Y%m%dT%H%M%S')}"
    destination.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(partial, destination, dirs_exist_ok=True)
    (destination / "error.txt").write_text(
        f"{label}: {error}\n\n" + "".join(traceback.format_exception(error)))
    return destination


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
    except (SeconetError, OSError, RuntimeError) as error:
        raise WorkloadError(f"{label}: {type(error).__name__}: {error}") from error


def _measure(config: dict[str, Any], setup_id: str, workload_name: str, rep: int, out_dir: Path,
             label: str) -> Path:
    config = configuration.validate(config)
    sweep = expand(config)
    setup = sweep.setup(setup_id)
    spec = sweep.workload(workload_name)
    workload = get_workload(spec)
    missing = workload.check()
    if missing:
        raise WorkloadError(f"{label}: {missing}; run `seconetbench preflight` and install them")
    testbed = config["testbed"]
    results_dir = Path(config["results_dir"])

    # closing(): this process measures target after target (rule run_target runs in Snakemake's)
    with contextlib.closing(backends.for_config(config)) as backend, HostLock(testbed["lock_timeout_s"]):
        try:
            deployment, reused = backend.deploy_or_reuse(setup, verify=testbed["verify_isolation"])
        except DeployError as error:
            # not measured; the failure (e.g. which isolation probes failed) is kept with the results
            with tempfile.TemporaryDirectory() as empty:
                keep_failed(Path(empty), results_dir, label, error)
            raise
        log.info("%s: %s deployment %s", label, "reused the" if reused else "new", deployment.prefix)
        succeeded = False
        try:
            settle = wait_until_quiet(backend.traffic_namespaces(deployment), testbed["settle_quiet_s"],
                                      testbed["settle_max_s"])
            with atomic_directory(out_dir) as partial:
                started = time.time()
                try:
                    with monitored(config["monitor"], deployment, backend.registry, partial):
                        run_facts = workload.run(RunContext(deployment, backend.registry, partial, label, backend))
                except BaseException as error:
                    try:
                        keep_failed(partial, results_dir, label, error)
                    except OSError as keeping:  # e.g. the disk is full: the cause still counts
                        log.warning("%s: could not keep the failed output: %s", label, keeping)
                    raise
                finished = time.time()
                order = config["run_order"]
                planned = [t.path for t in sweep.run_order(order["mode"], order["seed"])]
                # repetitions added by convergence rounds come after the planned order
                position = planned.index(label) + 1 if label in planned else None
                meta = {
                    "target": {"setup": setup_id, "workload": workload_name, "rep": rep},
                    "run_order": {**order, "position": position, "targets": len(planned)},
                    "setup": setup.to_dict(),
                    "workload": spec.to_dict(),
                    "table": workload.table,
                    "started_at": started,
                    "finished_at": finished,
                    "duration_s": round(finished - started, 6),
                    "settle": settle,
                    "deployment": {"prefix": deployment.prefix, "reused": reused, **deployment.facts,
                                   "containers": len(deployment.containers), "pairs": len(deployment.pairs)},
                    "workload_run": run_facts,
                    "monitor": config["monitor"],
                    "machine": metadata.machine(),
                    "software": metadata.software(list(workload.required_tools()) + ["ip", "iptables"]),
                }
                (partial / META_FILE).write_text(json.dumps(meta, indent=1, sort_keys=True))
            succeeded = True
            log.info("%s: measured in %.2f s", label, finished - started)
        finally:
            # A failed run may have left the testbed in a bad state: deploy afresh next time.
            if not succeeded or not testbed["reuse_deployment"]:
                backend.teardown()
    return out_dir


def measure_job(config: dict[str, Any], wildcards: Any, out_dir: str, log_path: str) -> Path:
    """What rule run_target runs, inside the Snakemake process: :func:`measure` in a thread of
    its own (scripting.in_own_thread), its records and a failure's traceback in the job log."""
    with logged(log_path):
        return in_own_thread(measure, config, wildcards.setup, wildcards.workload, int(wildcards.rep), out_dir)


def read_meta(raw_dir: str | Path) -> dict[str, Any]:
    return json.loads((Path(raw_dir) / META_FILE).read_text())
