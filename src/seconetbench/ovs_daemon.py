"""One Open vSwitch per host namespace: our own ovsdb-server and ovs-vswitchd, no system service.

Each host gets its own database, sockets, pid and log files in
``cleanup.state_dir(prefix)/ovs-<host>/``, so nothing reads or writes /etc/openvswitch or
/var/run/openvswitch. Both daemons run in the foreground inside the host namespace (ovs-vswitchd
opens the host ends of the container veths there) and are recorded in the deployment's
:class:`proc.Registry`: cleanup ends them by pid even after a kill -9 of the job, and deleting the
namespace then removes their ports and tap devices.

The clients (ovs-vsctl, ovs-ofctl, ovs-appctl) reach the daemons over unix sockets in that
directory. A unix socket is a file, not a network object, so they need no namespace.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from seconetbench import proc, technology
from seconetbench.errors import DeployError
from seconetbench.testbed import cleanup

if TYPE_CHECKING:
    from seconetbench.backends.base import Deployment, Host

SCHEMA = Path("/usr/share/openvswitch/vswitch.ovsschema")
START_TIMEOUT_S = 10.0
CLIENT_TIMEOUT_S = 30.0
# Where each program comes from on Debian, for requires() and error messages.
PROGRAMS = {
    "ovsdb-tool": "openvswitch-common",
    "ovsdb-server": "openvswitch-common",
    "ovs-appctl": "openvswitch-common",
    "ovs-ofctl": "openvswitch-common",
    "ovs-vsctl": "openvswitch-switch",
    "ovs-vswitchd": "openvswitch-switch",
}
SERVER, SWITCH = "ovsdb-server", "ovs-vswitchd"
OVS_DIRECTORIES = ("OVS_RUNDIR", "OVS_DBDIR", "OVS_LOGDIR", "OVS_SYSCONFDIR")  # default-path variables


def requirements(*programs: str) -> list[technology.Requirement]:
    return [technology.Requirement("binary", p, f"Debian package {PROGRAMS[p]}") for p in programs]


def datapath_type(implementation: str) -> str:
    """OVS's datapath_type of an implementation: 'system' (kernel datapath) or 'netdev' (userspace)."""
    return "system" if implementation == "kernel" else "netdev"


def version() -> str:
    return client([SWITCH, "--version"]).splitlines()[0]


def client(argv: list[str], input: str | None = None, timeout: float = CLIENT_TIMEOUT_S) -> str:
    """Run an OVS client to completion; its stdout, or an error naming the command and its stderr."""
    try:
        result = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise DeployError(f"'{' '.join(argv[:4])} ...' did not finish within {timeout:g} s") from None
    if result.returncode != 0:
        raise DeployError(f"'{' '.join(argv[:6])}' failed (exit {result.returncode}): "
                          f"{result.stderr.strip() or result.stdout.strip()}")
    return result.stdout


@dataclass(frozen=True)
class OvsHost:
    """The Open vSwitch instance of one host namespace. Stateless: every path derives from the
    prefix and the host name, so another process (a later Snakemake job) finds the same daemons."""

    prefix: str
    host: str  # "h1"
    netns: str

    @classmethod
    def of(cls, deployment: Deployment, host: Host) -> OvsHost:
        return cls(deployment.prefix, host.name, host.netns)

    @property
    def run_dir(self) -> Path:
        return cleanup.state_dir(self.prefix) / f"ovs-{self.host}"

    @property
    def registry(self) -> proc.Registry:
        # The deployment's registry (the one NetnsBackend keeps), so cleanup.remove ends the daemons.
        return cleanup.registry(self.prefix)

    @property
    def db_socket(self) -> Path:
        return self.run_dir / "db.sock"

    def control_socket(self, daemon: str) -> Path:
        return self.run_dir / f"{daemon}.ctl"

    def pid_file(self, daemon: str) -> Path:
        return self.run_dir / f"{daemon}.pid"

    def switch(self, bridge: str) -> str:
        """ovs-ofctl's target for *bridge*: the management socket ovs-vswitchd opens in its run dir."""
        return f"unix:{self.run_dir / bridge}.mgmt"

    # ------------------------------------------------------------------ daemons
    def start(self, datapath: str) -> None:
        """Create an empty database and start ovsdb-server and ovs-vswitchd in the host namespace."""
        if not SCHEMA.exists():
            raise DeployError(f"{SCHEMA} is missing: install the Debian package openvswitch-common")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        database = self.run_dir / "conf.db"
        client(["ovsdb-tool", "create", str(database), str(SCHEMA)])
        server = self._spawn(SERVER, str(database), f"--remote=punix:{self.db_socket}")
        self._wait_for(self.db_socket, server, SERVER)
        self.vsctl("--no-wait", "init")
        # Without a kernel datapath, keep ovs-vswitchd from probing for one.
        switch = self._spawn(SWITCH, f"unix:{self.db_socket}",
                             *(["--disable-system"] if datapath == "netdev" else []))
        self._wait_for(self.control_socket(SWITCH), switch, SWITCH)

    def stop(self) -> None:
        """End both daemons by pid (only if they are the processes we recorded) and delete the
        run directory. Idempotent."""
        pids = set()
        for daemon in (SWITCH, SERVER):
            try:
                pids.add(int(self.pid_file(daemon).read_text().strip()))
            except (FileNotFoundError, ValueError):
                pass
        registry = self.registry
        daemons = [p for p in registry.recorded() if p.pid in pids]
        proc.terminate(daemons)
        for process in daemons:
            registry.forget(process.pid)
        shutil.rmtree(self.run_dir, ignore_errors=True)

    def _spawn(self, daemon: str, *args: str) -> subprocess.Popen:
        # OVS_* point every default path (run, db, log, sysconf dir) at our directory; `env` and
        # `ip netns exec` both exec, so the recorded pid is the daemon's own.
        environment = [f"{var}={self.run_dir}" for var in OVS_DIRECTORIES]
        argv = ["env", *environment, daemon, *args, f"--unixctl={self.control_socket(daemon)}",
                f"--pidfile={self.pid_file(daemon)}", f"--log-file={self.run_dir / daemon}.log", "--no-chdir"]
        return proc.spawn_in(self.netns, argv, stdout=self.run_dir / f"{daemon}.out",
                             stderr=self.run_dir / f"{daemon}.err", registry=self.registry)

    def _wait_for(self, socket: Path, process: subprocess.Popen, daemon: str) -> None:
        """Wait until *daemon* listens on *socket*; fail with its own last words if it exits."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while not socket.exists():
            if process.poll() is not None:
                raise DeployError(f"{daemon} in {self.netns} exited with {process.returncode}: "
                                  f"{self._last_words(daemon)}")
            if time.monotonic() > deadline:
                raise DeployError(f"{daemon} in {self.netns} did not open {socket} within "
                                  f"{START_TIMEOUT_S:g} s: {self._last_words(daemon)}")
            time.sleep(0.01)

    def _last_words(self, daemon: str) -> str:
        lines = []
        for suffix in ("err", "log"):
            path = self.run_dir / f"{daemon}.{suffix}"
            if path.exists():
                lines += path.read_text(errors="replace").strip().splitlines()[-3:]
        return " | ".join(lines) or f"no output (see {self.run_dir})"

    # ------------------------------------------------------------------ clients
    def vsctl(self, *args: str) -> str:
        return client(["ovs-vsctl", f"--db=unix:{self.db_socket}", "--timeout=10", *args])

    def ofctl(self, *args: str, input: str | None = None) -> str:
        return client(["ovs-ofctl", *args], input=input)

    def appctl(self, *args: str, daemon: str = SWITCH) -> str:
        return client(["ovs-appctl", "-t", str(self.control_socket(daemon)), *args])
