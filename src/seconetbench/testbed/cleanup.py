"""Remove every testbed object of a prefix: processes, namespaces, links, mounts, state. Idempotent.

Order matters: processes inside a namespace keep it alive after its name is removed, so they are
ended first (the recorded pids, then anything still running inside our namespaces), then the
namespaces (which deletes their links and filter rules), then links left in the root namespace.
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

from seconetbench import proc
from seconetbench.testbed import netlink
from seconetbench.testbed.naming import PROJECT_PREFIX

STATE_ROOT_ENV = "SECONETBENCH_STATE_ROOT"
# Where every run keeps its state (pids, deployment file, keys, configs): $SECONETBENCH_STATE_ROOT,
# read at import, or /run/seconetbench. A host agent of the ssh backend gets a root of its own
# (use_state_root): namespace lab hosts share one filesystem.
STATE_ROOT = Path(os.environ.get(STATE_ROOT_ENV, "/run/seconetbench"))
ANY_RUN = re.compile(rf"^{PROJECT_PREFIX}[a-z0-9]{{0,5}}-")
# Modules owning objects of a prefix that the generic steps below cannot see, or must not end
# blindly: a container engine (its containers go through its API, and its daemon stops
# gracefully before the processes in our namespaces are killed). Each provides
# leftovers(prefix), remove(prefix) (-> {kind: [names]}) and namespaces(prefix) (the
# namespaces it handles itself). remove() calls them first.
HOOKS = {"docker-engine": "seconetbench.engines.dockerd"}
_kept: contextvars.ContextVar[frozenset[str]] = contextvars.ContextVar("kept", default=frozenset())


@contextlib.contextmanager
def keeping(*hooks: str) -> Iterator[None]:
    """Within the block, remove() leaves the objects of these HOOKS alone, namespaces included:
    a deploy clears the previous setup but keeps the run's container engine running."""
    token = _kept.set(_kept.get() | frozenset(hooks))
    try:
        yield
    finally:
        _kept.reset(token)


def _hooks() -> dict[str, object]:
    return {name: importlib.import_module(module) for name, module in HOOKS.items()}


def state_dir(prefix: str) -> Path:
    return STATE_ROOT / prefix


def use_state_root(root: Path) -> None:
    """From now on keep every run's state under *root*, in this process and in the commands it
    starts (they inherit $SECONETBENCH_STATE_ROOT)."""
    global STATE_ROOT
    STATE_ROOT = Path(root)
    os.environ[STATE_ROOT_ENV] = str(root)


def mounts_below(directory: Path) -> list[str]:
    """Mount points at or below *directory* in our mount namespace, deepest first (the ebpf
    technologies mount a private bpffs under the state directory)."""
    points = [line.split()[4].replace("\\040", " ")
              for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    inside = [p for p in points if p == str(directory) or p.startswith(f"{directory}/")]
    return sorted(set(inside), key=len, reverse=True)


def registry(prefix: str) -> proc.Registry:
    """The run's registry of background processes: what cleanup ends by pid."""
    return proc.Registry(state_dir(prefix) / "pids")


def prefixes(prefix: str | None) -> list[str]:
    """*prefix*, or every run prefix that has a state directory."""
    return [prefix] if prefix else [p.name for p in STATE_ROOT.glob(f"{PROJECT_PREFIX}*")]


def _matcher(prefix: str | None):
    if prefix is None:
        return ANY_RUN.match
    return lambda name: name.startswith(prefix + "-")


def leftovers(prefix: str | None = None) -> dict[str, list[str]]:
    """What is still there: namespaces, root links and live recorded processes of *prefix*
    (every run of the project when None)."""
    owned = _matcher(prefix)
    runs = prefixes(prefix)
    processes = [str(p.pid) for each in runs for p in registry(each).recorded()]
    found = {
        "netns": [n for n in netlink.list_netns() if owned(n)],
        "links": [name for name in netlink.link_names() if owned(name)],
        "processes": processes,
        "mounts": [m for each in runs for m in mounts_below(state_dir(each))],
    }
    for hook in _hooks().values():
        found.update(hook.leftovers(prefix))
    return found


def remove(prefix: str | None = None) -> dict[str, list[str]]:
    """Remove everything of *prefix* (every run when None); return what was removed."""
    owned = _matcher(prefix)
    runs = prefixes(prefix)
    by_hooks: dict[str, list[str]] = {}
    spared: set[str] = set()
    for name, hook in _hooks().items():
        if name in _kept.get():
            spared.update(hook.namespaces(prefix))
        else:
            by_hooks.update(hook.remove(prefix))
    ended: list[str] = []
    for each in runs:
        recorded = registry(each).recorded()
        proc.terminate(recorded)
        ended += [str(p.pid) for p in recorded]
    namespaces = [n for n in netlink.list_netns() if owned(n) and n not in spared]
    for name in namespaces:
        inode = netlink.netns_inode(name)
        if inode is not None:
            inside = proc.processes_in_netns(inode)
            proc.terminate(inside)
            ended += [str(p.pid) for p in inside]
        netlink.delete_netns(name)
    links = []
    with netlink.route() as sock:
        for name in [n for n in netlink.link_names() if owned(n)]:
            netlink.delete_link(sock, name)
            links.append(name)
    mounts = [m for each in runs for m in mounts_below(state_dir(each))]
    for point in mounts:  # before the state directory goes: rmtree cannot remove a mount point
        subprocess.run(["umount", point], capture_output=True)
    for each in runs:
        shutil.rmtree(state_dir(each), ignore_errors=True)
    return {"netns": namespaces, "links": links, "processes": ended, "mounts": mounts, **by_hooks}
