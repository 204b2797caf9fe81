"""One Docker engine per run prefix, started by the framework and never as a system service.

``DockerEngine(prefix).ensure()`` starts Debian's ``dockerd`` (or reuses the one already running
for that prefix) and returns its socket URL; ``.stop()`` removes its containers, ends it by the
pid recorded at its start, and deletes everything it left. Every file of the engine lives in one
directory, ``/var/lib/seconetbench/<prefix>/docker/``::

    data/          --data-root   images, overlay2 layers, containerd's root
    exec/          --exec-root   containerd's state and sockets, container bundles
    docker.sock    -H unix://... the API socket
    dockerd.pid    --pidfile     (dockerd needs one; the recorded pid below is what counts)
    dockerd.log    its stderr    (the tail is quoted when it fails to start)
    daemon.json    --config-file an empty file, so /etc/docker/daemon.json never applies
    <prefix>-runc  the runc wrapper registered as the default runtime
    pids/          proc.Registry: dockerd's pid and start time

That is outside the run's state directory (/run/seconetbench/<prefix>), which every deploy
removes: the engine outlives deploys and is stopped by teardown or ``seconetbench clean``.

Why it runs where it runs:

* In the namespace ``<prefix>-dk``, never in the root namespace. dockerd switches on
  ``ip_forward`` and sets ``iptables -P FORWARD DROP`` in its namespace; with
  ``bridge-nf-call-iptables=1`` that silently breaks every bridge of the root namespace.
* Entered with ``nsenter --net=``, not ``ip netns exec``: the latter makes a mount namespace and
  remounts /sys, which hides /sys/fs/cgroup, and dockerd dies with "Devices cgroup isn't
  mounted". nsenter without --pid execs, so the spawned pid is dockerd's own.
* ``--bridge none --iptables=false``: containers start with ``--network none`` and the
  framework wires them; the engine needs no network of its own and writes no firewall rules.
* The runc wrapper clamps a negative ``process.oomScoreAdj`` to 0: this VM's capability
  bounding set lacks CAP_SYS_RESOURCE, so runc cannot lower oom_score_adj (kubelet asks -998
  for pod sandboxes). Harmless for the docker backend's own containers, which ask for nothing.

The module also provides the hook that ``testbed.cleanup`` calls (``namespaces``,
``leftovers``, ``remove``), so ``seconetbench clean --prefix X`` removes an engine left by a
crashed run: its recorded dockerd (only if pid and start time match), what still runs in its
namespace, the overlay mounts under its data root, its directory and its cgroups.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seconetbench import proc
from seconetbench.errors import DeployError
from seconetbench.testbed import cleanup, netlink
from seconetbench.testbed.naming import Names

if TYPE_CHECKING:
    import docker
    import psutil

ENGINE_ROOT = Path("/var/lib/seconetbench")
CGROUP_ROOT = Path("/sys/fs/cgroup")
LABEL = "seconetbench.prefix"  # on every container and network the framework creates
DOCKERD = "dockerd"
RUNC = "runc"
NETNS_SUFFIX = "dk"
# dockerd 20.10 creates these whatever its exec root (its plugin discovery path), deepest first.
HARD_CODED_DIRECTORIES = (Path("/run/docker/plugins"), Path("/run/docker"))
START_TIMEOUT_S = 30.0  # 0.3-1 s here; the rest is margin for a loaded machine
STOP_GRACE_S = 20.0  # dockerd stops its containerd on SIGTERM; its containers are removed first
# Where each program comes from on Debian, for error messages (tools/setup.sh installs them).
PACKAGES = {DOCKERD: "docker.io", RUNC: "runc", "containerd": "containerd", "nsenter": "util-linux"}

RUNC_WRAPPER = """#!/bin/sh
# Written by SeCoNetBench (engines/dockerd.py) for the engine of run {prefix}.
# The capability bounding set of this machine may lack CAP_SYS_RESOURCE, and then runc fails to
# write a negative oom_score_adj (kubelet asks -998 for pod sandboxes). Clamp it to 0 in the
# bundle's config.json, then run the real runc with the unchanged arguments.
bundle=""; prev=""
for arg in "$@"; do
  case "$prev" in --bundle|-b) bundle="$arg";; esac
  case "$arg" in --bundle=*) bundle="${{arg#--bundle=}}";; esac
  prev="$arg"
done
config="$bundle/config.json"
if [ -n "$bundle" ] && [ -f "$config" ] && grep -Eq '"oomScoreAdj" *: *-' "$config"; then
  sed -E 's/"oomScoreAdj" *: *-[0-9]+/"oomScoreAdj":0/' "$config" > "$config.scn" && mv "$config.scn" "$config"
fi
exec {runc} "$@"
"""


def ping(socket_path: Path, timeout_s: float = 2.0) -> bool:
    """Whether a Docker engine answers GET /_ping on *socket_path* (a bare HTTP request: no
    client object per poll while waiting for the engine)."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout_s)
            sock.connect(str(socket_path))
            sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            status = sock.recv(64).split(b"\r\n", 1)[0].split()
    except OSError:
        return False
    return len(status) >= 2 and status[1] == b"200"


def connect(url: str, timeout_s: float = 60) -> docker.DockerClient:
    """An SDK client for the engine at *url*, API version negotiated with the server."""
    import docker

    try:
        return docker.DockerClient(base_url=url, version="auto", timeout=timeout_s)
    except docker.errors.DockerException as error:
        raise DeployError(f"no Docker engine answers at {url}: {error}; check testbed.docker.host "
                          "(null = the engine SeCoNetBench starts itself)") from None


def remove_objects(client: docker.DockerClient, prefix: str | None) -> list[str]:
    """Remove the containers and networks labelled with run *prefix* from the engine behind
    *client*; return what was removed. None: every container and every labelled network (an
    engine of our own, where kubelet's containers carry no label of ours)."""
    labels = {"label": f"{LABEL}={prefix}"} if prefix else {}
    removed = []
    for container in client.containers.list(all=True, filters=labels):
        container.remove(force=True)  # SIGKILL: `sleep` as pid 1 ignores SIGTERM anyway
        removed.append(f"container {container.name}")
    for network in client.networks.list(filters={"label": f"{LABEL}={prefix}" if prefix else LABEL}):
        network.remove()
        removed.append(f"network {network.name}")
    return removed


@dataclass(frozen=True)
class DockerEngine:
    """The managed engine of run *prefix*. Stateless: every path derives from the prefix, so a
    later process (the next Snakemake job, `seconetbench clean`) finds the same engine."""

    prefix: str
    extra_args: tuple[str, ...] = field(default=())  # more dockerd flags (e.g. for kubelet)

    def __post_init__(self) -> None:
        Names(self.prefix)  # validates the prefix

    # ------------------------------------------------------------------ layout
    @property
    def netns(self) -> str:
        return f"{self.prefix}-{NETNS_SUFFIX}"

    @property
    def directory(self) -> Path:
        return ENGINE_ROOT / self.prefix / "docker"

    @property
    def data_root(self) -> Path:
        return self.directory / "data"

    @property
    def exec_root(self) -> Path:
        return self.directory / "exec"

    @property
    def socket(self) -> Path:
        return self.directory / "docker.sock"

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    @property
    def log(self) -> Path:
        return self.directory / "dockerd.log"

    @property
    def runtime_name(self) -> str:
        return f"{self.prefix}-runc"

    @property
    def runtime_path(self) -> Path:
        return self.directory / self.runtime_name

    @property
    def cgroup_parent(self) -> str:
        # Containers' cgroups go below /<prefix>-docker, not the shared /docker, so stop() can
        # remove the parent directories without touching another engine's.
        return f"/{self.prefix}-docker"

    @property
    def registry(self) -> proc.Registry:
        return proc.Registry(self.directory / "pids")

    @property
    def lock_path(self) -> Path:
        # Beside the directory, not in it: stop() inside ensure() removes the directory.
        return ENGINE_ROOT / f"{self.prefix}.docker.lock"

    # ------------------------------------------------------------------ state
    def process(self):
        """The running dockerd we started (pid and start time as recorded), or None."""
        recorded = self.registry.recorded()
        return recorded[0] if recorded else None

    def running(self) -> bool:
        return self.process() is not None and ping(self.socket)

    def client(self) -> docker.DockerClient:
        return connect(self.url)

    # ------------------------------------------------------------------ start
    def ensure(self) -> str:
        """Start the engine unless it already runs and answers; its socket URL. A dead or
        half-started engine of this prefix is removed first (stop() is idempotent)."""
        import filelock

        ENGINE_ROOT.mkdir(parents=True, exist_ok=True)
        # Two processes of the same run must not both start one (the lock file goes with stop()).
        with filelock.FileLock(str(self.lock_path)):
            if not self.running():
                self._stop()
                self._start()
        return self.url

    def command(self) -> list[str]:
        """dockerd's command line (without the nsenter that puts it in its namespace)."""
        return [
            DOCKERD,
            "--data-root", str(self.data_root), "--exec-root", str(self.exec_root),
            "--pidfile", str(self.directory / "dockerd.pid"), "--host", self.url,
            "--config-file", str(self.directory / "daemon.json"),
            "--storage-driver", "overlay2",
            "--bridge", "none", "--iptables=false", "--ip-masq=false", "--ip-forward=false",
            "--cgroup-parent", self.cgroup_parent,
            "--add-runtime", f"{self.runtime_name}={self.runtime_path}",
            "--default-runtime", self.runtime_name,
            # On stop, containers get 2 s instead of 15 s (ours are removed before anyway).
            "--shutdown-timeout", "2",
            *self.extra_args,
        ]

    def _start(self) -> None:
        for program in (DOCKERD, RUNC, "containerd", "nsenter"):
            if shutil.which(program) is None:
                raise DeployError(f"{program} is missing: install the Debian package {PACKAGES[program]} "
                                  "(tools/setup.sh does), or set testbed.docker.host to an engine")
        for directory in (self.data_root, self.exec_root):
            directory.mkdir(parents=True, exist_ok=True)
        (self.directory / "daemon.json").write_text("{}\n")
        self.runtime_path.write_text(RUNC_WRAPPER.format(prefix=self.prefix, runc=shutil.which(RUNC)))
        self.runtime_path.chmod(0o755)
        netlink.create_netns(self.netns)
        with netlink.route(self.netns) as sock:
            sock.link("set", index=netlink.index(sock, "lo"), state="up")
        argv = self.command()
        nsenter = ["nsenter", f"--net={netlink.NETNS_RUN_DIR / self.netns}", "--"]
        started = time.monotonic()
        process = proc.spawn([*nsenter, *argv], self.directory / "dockerd.out", self.log, self.registry, argv)
        while not ping(self.socket, timeout_s=1.0):
            if process.poll() is not None:
                self.stop()  # keeps the log: it is read before
                raise DeployError(f"dockerd of run {self.prefix} exited with {process.returncode} at start: "
                                  f"{self._last_words()}")
            if time.monotonic() - started > START_TIMEOUT_S:
                words = self._last_words()
                self.stop()
                raise DeployError(f"dockerd of run {self.prefix} did not answer on {self.socket} within "
                                  f"{START_TIMEOUT_S:g} s: {words}")
            time.sleep(0.05)

    def _last_words(self, lines: int = 5) -> str:
        try:
            tail = self.log.read_text(errors="replace").strip().splitlines()[-lines:]
        except FileNotFoundError:
            return f"no log at {self.log}"
        return " | ".join(tail) + f" (full log: {self.log})"

    # ------------------------------------------------------------------ facts
    def describe(self, client: docker.DockerClient) -> dict[str, Any]:
        return describe_engine(client, self.url, managed=True)

    # ------------------------------------------------------------------ stop
    def stop(self) -> dict[str, list[str]]:
        """Remove every container and network of the engine, end dockerd (the recorded pid only)
        and what still runs in its namespace (its containerd and shims), unmount what it left
        mounted, delete its namespace, directory, cgroups and lock file. Idempotent; returns
        what it did under the key 'docker'."""
        removed = self._stop()
        self.lock_path.unlink(missing_ok=True)
        return {"docker": removed}

    def _stop(self) -> list[str]:
        removed: list[str] = []
        if ping(self.socket):
            try:
                removed += remove_objects(self.client(), None)
            except Exception as error:  # noqa: BLE001 - ending the daemon below still cleans up
                removed.append(f"(removing containers failed: {error})")
        daemon = self.process()
        if daemon is not None:
            proc.terminate([daemon], grace_s=STOP_GRACE_S)
            removed.append(f"dockerd {daemon.pid}")
        inode = netlink.netns_inode(self.netns)
        if inode is not None:
            # Left only when dockerd died without stopping them: its containerd and the shims
            # it started. They run in the engine's own namespace, so they are ours.
            inside = proc.processes_in_netns(inode)
            proc.terminate(inside)
            removed += [f"process {p.pid}" for p in inside]
        # Containers whose shim died with it still run; they are in the engine's cgroups.
        orphans = self.cgroup_processes()
        proc.terminate(orphans)
        removed += [f"process {p.pid}" for p in orphans]
        for point in cleanup.mounts_below(self.directory):
            if subprocess.run(["umount", point], capture_output=True).returncode != 0:
                subprocess.run(["umount", "--lazy", point], capture_output=True)  # a container still uses it
            removed.append(f"mount {point}")
        if inode is not None:
            netlink.delete_netns(self.netns)
            removed.append(f"netns {self.netns}")
        if self.directory.exists():
            shutil.rmtree(self.directory, ignore_errors=True)
            removed.append(str(self.directory))
        _remove_if_empty(self.directory.parent)
        if not any(other.process() for other in _engines(None) if other.prefix != self.prefix):
            for directory in HARD_CODED_DIRECTORIES:  # rmdir: kept while not empty (a system dockerd)
                _remove_if_empty(directory)
        for group in self.cgroups():
            _remove_cgroup(group)
            removed.append(f"cgroup {group}")
        return removed

    def cgroups(self) -> list[Path]:
        name = self.cgroup_parent.lstrip("/")
        return [path for path in CGROUP_ROOT.glob(f"*/{name}") if path.is_dir()]

    def cgroup_processes(self) -> list[psutil.Process]:
        """Processes in the engine's cgroups (below cgroup_parent: only this engine's containers)."""
        import psutil  # here: validating a docker config imports this module, but needs no psutil

        found = {}
        for group in self.cgroups():
            for procs in group.rglob("cgroup.procs"):
                for pid in procs.read_text().split():
                    try:
                        found[int(pid)] = psutil.Process(int(pid))
                    except psutil.NoSuchProcess:
                        pass
        return list(found.values())

    def leftovers(self) -> list[str]:
        """What of this engine exists now (empty once stopped)."""
        found = []
        daemon = self.process()
        if daemon is not None:
            found.append(f"dockerd {daemon.pid}")
        found += [f"mount {m}" for m in cleanup.mounts_below(self.directory)]
        if self.directory.exists():
            found.append(str(self.directory))
        found += [f"cgroup {g}" for g in self.cgroups()]
        return found


def describe_engine(client: docker.DockerClient, url: str, managed: bool) -> dict[str, Any]:
    """The engine's facts for meta.json: versions, drivers and runtimes."""
    version = client.version()
    info = client.info()
    return {
        "url": url,
        "managed": managed,
        "server_version": version.get("Version"),
        "api_version": client.api.api_version,  # as negotiated
        "server_api_version": version.get("ApiVersion"),
        "containerd": (info.get("ContainerdCommit") or {}).get("ID"),
        "runc": (info.get("RuncCommit") or {}).get("ID"),
        "storage_driver": info.get("Driver"),
        "cgroup_driver": info.get("CgroupDriver"),
        "cgroup_version": info.get("CgroupVersion"),
        "default_runtime": info.get("DefaultRuntime"),
        "kernel": info.get("KernelVersion"),
    }


def _remove_if_empty(path: Path) -> None:
    try:
        path.rmdir()
    except OSError:
        pass  # not empty: another engine of the prefix (e.g. kubelet's files) still lives there


def _remove_cgroup(group: Path) -> None:
    """rmdir a cgroup directory, children first (cgroupfs dirs cannot be removed recursively,
    and rmdir fails while a process is inside: that leaves it, as it should)."""
    for child in sorted((p for p in group.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        try:
            child.rmdir()
        except OSError:
            pass
    try:
        group.rmdir()
    except OSError:
        pass


# ---------------------------------------------------------------------- cleanup hook
# testbed.cleanup calls these for `seconetbench clean`, deploys and teardowns (see cleanup.HOOKS).

def _engines(prefix: str | None) -> list[DockerEngine]:
    if prefix:
        return [DockerEngine(prefix)]
    return [DockerEngine(p.name) for p in sorted(ENGINE_ROOT.glob("scn*")) if (p / "docker").is_dir()]


def namespaces(prefix: str | None) -> list[str]:
    """The namespaces this hook owns (cleanup spares them while the hook is kept)."""
    return [engine.netns for engine in _engines(prefix)]


def leftovers(prefix: str | None) -> dict[str, list[str]]:
    return {"docker": [item for engine in _engines(prefix) for item in engine.leftovers()]}


def remove(prefix: str | None) -> dict[str, list[str]]:
    """Containers of the run on an engine it did not start (testbed.docker.host, read from the
    run's deployment state), then the run's own engine."""
    removed: list[str] = []
    for each in cleanup.prefixes(prefix):
        url = _external_engine(each)
        if url:
            try:
                removed += remove_objects(connect(url, timeout_s=10), each)
            except Exception as error:  # noqa: BLE001 - report, do not block the rest of cleanup
                removed.append(f"(containers of {each} at {url} not removed: {error})")
    for engine in _engines(prefix):
        removed += engine.stop()["docker"]
    return {"docker": removed}


def _external_engine(prefix: str) -> str | None:
    try:
        state = json.loads((cleanup.state_dir(prefix) / "deployment.json").read_text())
        engine = state["facts"]["docker"]["engine"]
    except (FileNotFoundError, json.JSONDecodeError, KeyError, TypeError):
        return None
    return None if engine.get("managed") else engine.get("url")
