"""Testbed groups: independent sets of hosts that measure at the same time (docs/ssh.md,
"Several host groups"; docs/vm.md, "Several VM groups").

With the ssh backend, ``testbed.ssh.groups`` lists several host groups (each a list of hosts as
``testbed.ssh.hosts`` is); with the vm backend, ``testbed.vm.groups`` boots that many groups of
``testbed.vm.hosts`` VMs. Every other config is one group, ``g1``, which is the testbed exactly
as without groups: the run prefix, the host-wide lock, no health check.

A group is a testbed of its own: its own run prefix (:func:`group_prefix`), so its namespaces,
state file (deployment reuse), SSH master connections and VMs are its own, and its own lock
file. A target takes the group of its round (rep; :func:`round_group`) under that lock
(:func:`deployed`), and under the host-wide lock in shared mode (:func:`host_shared`): groups
measure side by side, never beside a test, a bench or an ungrouped sweep, which hold the
host-wide lock exclusively. A round of the blocked run order stays on one group; the statistics
pair a round only within one group (docs/statistics.md). A group that fails its health check
(``seconetbench hosts check``'s checks of its hosts), or whose host fails during a deploy, is
taken out of the rotation for the rest of the process (one Snakemake invocation) with a
message naming it and why; its targets go to the others.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seconetbench.errors import ConfigError, HostError, WorkloadError
from seconetbench.testbed.naming import PREFIX_PATTERN

log = logging.getLogger(__name__)

# Group k's prefix is the run prefix and this character of k: a run prefix is at most 8
# characters (naming.PREFIX_PATTERN), so with groups it may have 7.
GROUP_CHARACTERS = "123456789abcdefghijklmnopqrstuvwxyz"


def group_name(index: int) -> str:
    """The name of group *index* (1-based) in meta.json and the tables' ``group`` column."""
    return f"g{index}"


def group_prefix(prefix: str, index: int, count: int) -> str:
    """The run prefix of what group *index* of *count* builds: the run prefix itself for one
    group (a config without groups is unchanged), else the run prefix and one character."""
    if count == 1:
        return prefix
    derived = prefix + GROUP_CHARACTERS[index - 1]
    if not PREFIX_PATTERN.match(derived):
        raise ConfigError("testbed.prefix", f"value {prefix!r} leaves no room for the group's character "
                          f"({derived!r} would exceed 8 characters); use a prefix of at most 7 characters "
                          "with several testbed groups")
    return derived


def group_count(testbed: dict[str, Any]) -> int:
    """How many groups the validated *testbed* section has (1 without groups)."""
    if testbed["backend"] == "ssh":
        return len((testbed.get("ssh") or {}).get("groups") or [None])
    if testbed["backend"] == "vm":
        return int((testbed.get("vm") or {}).get("groups") or 1)
    return 1


def group_testbed(testbed: dict[str, Any], index: int) -> dict[str, Any]:
    """The testbed section of group *index* alone: its hosts as ``testbed.ssh.hosts`` (one group
    of VMs for the vm backend), the rest as the config has it."""
    if group_count(testbed) == 1:
        return testbed
    if testbed["backend"] == "ssh":
        ssh = {key: value for key, value in testbed["ssh"].items() if key != "groups"}
        return {**testbed, "ssh": {**ssh, "hosts": testbed["ssh"]["groups"][index - 1]}}
    return {**testbed, "vm": {**testbed["vm"], "groups": 1}}


@dataclass(frozen=True)
class TestbedGroup:
    index: int  # 1-based
    count: int  # groups of the config
    prefix: str  # the run prefix of what this group builds
    testbed: dict[str, Any] = field(repr=False)  # the config's testbed section for this group alone
    results_dir: Path = field(repr=False)

    @property
    def name(self) -> str:
        return group_name(self.index)

    @property
    def hosts(self) -> list[str]:
        """The names of the group's hosts (ssh); its VMs' names (vm); none elsewhere."""
        if self.testbed["backend"] == "ssh":
            return [str(h["name"]) for h in self.testbed["ssh"]["hosts"]]
        if self.testbed["backend"] == "vm":
            from seconetbench.testbed.vms import vm_name

            return [vm_name(i) for i in range(1, int(self.testbed["vm"]["hosts"]) + 1)]
        return []

    @property
    def lock_file(self) -> Path:
        """One group: the host-wide measurement lock (runner.lock_path). Several: a lock file per
        group beside it, named after the group's hosts (ssh: two invocations whose configs list
        the same hosts exclude each other whatever the order) or its VMs' prefix (vm)."""
        from seconetbench.runner import lock_path

        host_lock = lock_path()
        if self.count == 1:
            return host_lock
        if self.testbed["backend"] == "ssh":
            endpoints = sorted(f"{h['address']}:{h.get('port', 22)}" for h in self.testbed["ssh"]["hosts"])
            key = "ssh-" + hashlib.sha256(" ".join(endpoints).encode()).hexdigest()[:12]
        else:
            key = f"{self.testbed['backend']}-{self.prefix}"
        return host_lock.with_name(f"{host_lock.stem}.{key}{host_lock.suffix}")

    @contextlib.contextmanager
    def locked(self, timeout_s: float) -> Iterator[None]:
        """The locks a measurement on this group holds for the block, each waited for up to
        *timeout_s*: the only group, the host-wide lock exclusively (its lock_file); one of
        several, the host-wide lock shared (:func:`host_shared`), then its own exclusively."""
        from seconetbench.runner import HostLock

        if self.count == 1:
            with HostLock(timeout_s, self.lock_file):
                yield
            return
        with host_shared(timeout_s), HostLock(timeout_s, self.lock_file):
            yield

    def backend(self):
        from seconetbench.backends import get_backend

        return get_backend(self.testbed["backend"], self.prefix, self.testbed, self.results_dir)

    def describe(self) -> dict[str, Any]:
        """What meta.json records as ``group``."""
        return {"name": self.name, "index": self.index, "of": self.count, "prefix": self.prefix, "hosts": self.hosts}


def host_shared(timeout_s: float):
    """The host-wide lock (runner.lock_path) in shared mode, held by every measurement on one of
    several groups besides its group's own lock: the groups measure side by side, but never
    beside a holder of the host-wide lock in its ordinary, exclusive mode (a test, an ungrouped
    sweep, a bench, ``seconetbench clean``)."""
    from seconetbench.runner import HostLock

    return HostLock(timeout_s, shared=True)


def testbed_groups(config: dict[str, Any]) -> list[TestbedGroup]:
    """The groups of a validated *config*, in order (one for every config without groups)."""
    from seconetbench.config import run_prefix

    testbed, prefix = config["testbed"], run_prefix(config)
    count = group_count(testbed)
    return [TestbedGroup(index, count, group_prefix(prefix, index, count), group_testbed(testbed, index),
                         Path(config.get("results_dir", "results")).resolve())
            for index in range(1, count + 1)]


# ------------------------------------------------------------------------ the rotation
# Per process (the Snakemake invocation runs every target in it): the groups taken out, why, and
# the groups whose health check passed. Keyed by lock file (a group's identity on this machine).
_out_of_rotation: dict[Path, str] = {}
_healthy: set[Path] = set()
_rotation_lock = threading.Lock()


def take_out(group: TestbedGroup, reason: str) -> None:
    """Take *group* out of the rotation for the rest of this process, saying so where the user
    sees it (stderr: Snakemake's console) and in the target's log."""
    with _rotation_lock:
        _out_of_rotation[group.lock_file] = reason
    message = (f"testbed group {group.name} ({', '.join(group.hosts)}) is out of the rotation: {reason}; its targets "
               "go to the other groups. Fix it (seconetbench hosts check --config F) and run the workflow again "
               "to use it")
    log.warning("%s", message)
    print(f"SeCoNetBench: {message}", file=sys.stderr)


def health_problem(group: TestbedGroup, config: dict[str, Any]) -> str | None:
    """What makes *group* unusable, by the checks of ``seconetbench hosts check`` on its hosts
    (reachable, root, tools, packages, underlay device); None when it is usable. Only ssh hosts
    exist before a deploy (a vm group's VMs boot in it)."""
    if group.testbed["backend"] != "ssh":
        return None
    from seconetbench.remote.hosts import check_hosts

    with tempfile.TemporaryDirectory(prefix="scn-group-") as directory:
        # master connections of the check's own: it runs before the group's deploy ends them
        report = check_hosts({**config, "testbed": group.testbed}, Path(directory) / "ssh", clocks=False)
    problems = [f"host {h['name']}: {'; '.join(h['problems'])}" for h in report["hosts"] if not h["ok"]]
    return "; ".join(problems) or None


def round_group(rep: int, count: int) -> int:
    """The group (1-based) of round *rep* among *count* groups: (rep - 1) mod N, plus 1. The
    workflow gives each group a Snakemake resource of its own (testbed_g<k>, common.smk), so
    that a job starts only when its round's group is free."""
    return (rep - 1) % count + 1


def _rotation(groups: list[TestbedGroup], rep: int) -> list[TestbedGroup]:
    """The groups still in the rotation, the target's round's group first, then the next ones."""
    start = round_group(rep, len(groups)) - 1
    ordered = groups[start:] + groups[:start]
    with _rotation_lock:
        return [g for g in ordered if g.lock_file not in _out_of_rotation]


def _no_group_left(groups: list[TestbedGroup]) -> WorkloadError:
    with _rotation_lock:
        why = "; ".join(f"{g.name}: {_out_of_rotation.get(g.lock_file, '?')}" for g in groups)
    return WorkloadError(f"no testbed group is left in the rotation ({why}); fix the hosts (seconetbench hosts "
                         "check --config F) and run the workflow again")


def _lock_one(groups: list[TestbedGroup], rep: int, timeout_s: float):
    """The group of round *rep* and its acquired lock (runner.HostLock), waiting up to
    *timeout_s* while another measurement holds it: a round stays on one group. Only when that
    group is out of the rotation, the next one in it."""
    from seconetbench.runner import HostLock

    while True:
        candidates = _rotation(groups, rep)
        if not candidates:
            raise _no_group_left(groups)
        lock = HostLock(timeout_s, candidates[0].lock_file).__enter__()
        if candidates[0] in _rotation(groups, rep):
            return candidates[0], lock
        lock.__exit__(None, None, None)  # taken out while this target waited for it


@contextlib.contextmanager
def deployed(config: dict[str, Any], rep: int, deploy: Callable[[Any], tuple[Any, bool]]) -> Iterator[tuple]:
    """A group for one target of round *rep*, held under its lock for the block: yields (group,
    its backend, deployment, reused) with *deploy(backend)* done on it. With several groups, a
    group is health-checked once per process before its first target, and a group whose check
    fails or whose host fails during the deploy (HostError) is taken out of the rotation and
    the target deploys on the next one. The backend is closed and the locks released at the end
    (:meth:`TestbedGroup.locked`: with several groups, the host-wide one shared besides the
    group's)."""
    groups = testbed_groups(config)
    timeout_s = config["testbed"]["lock_timeout_s"]
    if len(groups) == 1:
        group = groups[0]
        with contextlib.closing(group.backend()) as backend, group.locked(timeout_s):
            yield (group, backend, *deploy(backend))
        return
    with host_shared(timeout_s):  # beside the other groups, never beside a test or an ungrouped sweep
        while True:
            group, lock = _lock_one(groups, rep, timeout_s)
            try:
                with contextlib.closing(group.backend()) as backend:
                    if group.lock_file not in _healthy:
                        problem = health_problem(group, config)
                        if problem:
                            take_out(group, problem)
                            continue
                        with _rotation_lock:
                            _healthy.add(group.lock_file)
                    try:
                        deployment, reused = deploy(backend)
                    except HostError as error:
                        if len(_rotation(groups, rep)) == 1:
                            raise  # the last group: the target fails, naming the host
                        take_out(group, str(error))
                        continue
                    yield group, backend, deployment, reused
                    return
            finally:
                lock.__exit__(None, None, None)


def finish_all(config: dict[str, Any]) -> list[str]:
    """The end of an invocation on every group (each backend's finish: reused deployments and
    the vm backend's VMs); what failed, per group (the others are finished all the same)."""
    failed = []
    for group in testbed_groups(config):
        try:
            group.backend().finish()
        except Exception as error:  # noqa: BLE001 - one group's cleanup must not keep the others'
            failed.append(f"testbed group {group.name} ({group.prefix}): {error}")
    return failed
