"""Namespace "lab machines" for the ssh backend's tests and benchmarks: each a network namespace
running its own real sshd (Debian's openssh-server), reached like a lab host over SSH.

    with LabHosts("scnab12", count=2) as lab:
        lab.testbed_config()   # the `testbed:` section of a config for the ssh backend
        lab.testbed_config(groups=2)  # the same hosts as two testbed groups (testbed.ssh.groups)
        lab.hosts, lab.options # SshHost entries and SshOptions, for remote.ssh.SshChannel

Per lab host i (1-based):

- namespace ``<prefix>-lab<i>``, the machine itself;
- its control interface ``ctl0`` (198.18.3.i/24), a veth into ``<prefix>-ctl``, where a bridge
  joins all control interfaces and holds 198.18.3.254/24. The controller reaches sshd through
  ``ip netns exec <prefix>-ctl socat STDIO TCP:%h:%p`` as ssh's ProxyCommand, so nothing is
  added to this machine's own namespace;
- its data interface ``eth1`` (198.18.4.i/24, the lab's own address), a veth into
  ``<prefix>-lsw``, the data network's switch (a bridge). The ssh backend puts a macvlan child
  of eth1 with the host's ``underlay_ip`` 198.18.5.i into its host namespace;
- an sshd listening on 198.18.3.i:22 with a host key, config, authorized_keys and pid file of
  its own under the run's state directory (``<state>/lab/lab<i>/``), started in the namespace
  and registered by pid, so cleanup ends it even after a crash of this process.

A client key pair and a known_hosts file naming every lab host's key sit in ``<state>/lab/``.
Faults for the tests: :meth:`LabHosts.kill_sshd`, :meth:`LabHosts.control_link`,
:meth:`LabHosts.change_host_key`.

Give the lab a prefix of its own, not the run prefix of the deployment it carries: a cleanup of
the run prefix on this machine would end the lab's sshd too.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import subprocess
from pathlib import Path

from seconetbench import proc
from seconetbench.errors import DeployError, InvalidValueError
from seconetbench.remote.ssh import SshHost, SshOptions
from seconetbench.testbed import cleanup, netlink
from seconetbench.testbed.naming import Names

CONTROL_SUBNET = "198.18.3.{i}"      # control network: sshd's address on lab host i
CONTROL_GATEWAY = "198.18.3.254"     # the control bridge's own address
LAB_SUBNET = "198.18.4.{i}"          # the data network: the lab machine's own address on eth1
UNDERLAY_IP = "198.18.5.{i}"         # what the ssh backend puts on its macvlan child of eth1 (not 198.18.1.0/24: the routing solution's gateway)
CONTROL_IF = "ctl0"
DATA_IF = "eth1"
SSHD = "/usr/sbin/sshd"
SSHD_READY_S = 10.0
PRIVSEP_DIR = Path("/run/sshd")      # Debian's sshd refuses to start without it (a compiled-in path)


def lab_netns(prefix: str, i: int) -> str:
    return f"{prefix}-lab{i}"


def control_netns(prefix: str) -> str:
    return f"{prefix}-ctl"


def switch_netns(prefix: str) -> str:
    return f"{prefix}-lsw"


def lab_name(i: int) -> str:
    return f"lab{i}"


class LabHosts:
    """*count* namespace lab machines with their own sshd; a context manager that tears down
    everything it made (processes by pid, namespaces, files), also when setting up fails."""

    def __init__(self, prefix: str, count: int = 2):
        Names(prefix)  # validates the prefix
        if not 1 <= count <= 250:
            raise InvalidValueError(f"LabHosts count {count}: between 1 and 250 lab hosts (198.18.3.1-250)")
        self.prefix = prefix
        self.count = count
        self.directory = cleanup.state_dir(prefix) / "lab"
        self.registry = cleanup.registry(prefix)
        self.client_key = self.directory / "id_ed25519"
        self.known_hosts = self.directory / "known_hosts"
        self.sshd: dict[int, subprocess.Popen] = {}
        self._namespaces: list[str] = []

    # ------------------------------------------------------------------ what callers use
    @property
    def hosts(self) -> list[SshHost]:
        proxy = f"ip netns exec {control_netns(self.prefix)} socat STDIO TCP:%h:%p"
        return [SshHost(name=lab_name(i), address=CONTROL_SUBNET.format(i=i), port=22, user="root",
                        identity_file=str(self.client_key), underlay_dev=DATA_IF,
                        underlay_ip=UNDERLAY_IP.format(i=i), proxy_command=proxy)
                for i in self.indices]

    @property
    def options(self) -> SshOptions:
        return SshOptions(strict_host_key_checking="yes", known_hosts_file=str(self.known_hosts))

    @property
    def indices(self) -> range:
        return range(1, self.count + 1)

    def testbed_config(self, groups: int = 1) -> dict:
        """The `testbed:` section of a config that runs on these lab hosts; with *groups*, they
        are that many testbed groups of consecutive hosts (testbed.ssh.groups)."""
        testbed = ssh_testbed(self.hosts, self.options)
        if groups > 1:
            if self.count % groups:
                raise InvalidValueError(f"{self.count} lab hosts do not split into {groups} groups of one size")
            hosts, size = testbed["ssh"].pop("hosts"), self.count // groups
            testbed["ssh"]["groups"] = [hosts[i:i + size] for i in range(0, self.count, size)]
        return testbed

    def host_dir(self, i: int) -> Path:
        """Lab host *i*'s sshd files: host key, config, authorized_keys, pid file, log."""
        return self.directory / lab_name(i)

    def sshd_log(self, i: int) -> Path:
        """sshd's standard error (-e: its log), e.g. one 'Accepted publickey' line per connection."""
        return self.host_dir(i) / "sshd.log"

    # ------------------------------------------------------------------ faults
    def kill_sshd(self, i: int) -> None:
        """SIGKILL lab host *i*'s sshd: the listener and its per-connection processes (the
        connections drop, like a crashed host), not the commands running in their sessions."""
        listener = self.sshd.get(i)
        if listener is None or listener.poll() is not None:
            return
        import psutil

        sshd_processes = [c for c in psutil.Process(listener.pid).children(recursive=True) if _is_sshd(c)]
        for process in [listener, *sshd_processes]:
            try:
                os.kill(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        listener.wait()
        self.registry.forget(listener.pid)

    def start_sshd(self, i: int) -> None:
        """Start lab host *i*'s sshd again after :meth:`kill_sshd` (a host back after a crash)."""
        listener = self.sshd.get(i)
        if listener is not None and listener.poll() is None:
            return
        self._start_sshd(i)

    def control_link(self, i: int, up: bool) -> None:
        """Lab host *i*'s control interface (ctl0) up or down: its SSH connection stalls."""
        with netlink.route(lab_netns(self.prefix, i)) as sock:
            sock.link("set", index=netlink.index(sock, CONTROL_IF), state="up" if up else "down")

    def change_host_key(self, i: int) -> None:
        """Give lab host *i* a new host key and restart its sshd; known_hosts keeps the old one."""
        self.kill_sshd(i)
        key = self.host_dir(i) / "ssh_host_ed25519_key"
        key.unlink(missing_ok=True)
        key.with_suffix(".pub").unlink(missing_ok=True)
        _keygen(key, f"{lab_name(i)}-renewed")
        self._start_sshd(i)

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> LabHosts:
        try:
            self._build()
        except BaseException:
            self.teardown()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.teardown()

    def _build(self) -> None:
        from seconetbench.backends.netns import NO_IPV6

        for tool in (SSHD, "ssh-keygen", "socat"):
            if shutil.which(tool) is None:
                raise DeployError(f"lab hosts need {tool}: install openssh-server, openssh-client and socat "
                                  "(tools/setup.sh does)")
        self.directory.mkdir(parents=True, exist_ok=True)
        os.chmod(self.directory, 0o700)
        # Left in place afterwards: it stays empty, and another lab's sshd may be using it.
        PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)
        _keygen(self.client_key, f"seconetbench-{self.prefix}-client")
        control, switch = control_netns(self.prefix), switch_netns(self.prefix)
        for name in (control, switch, *(lab_netns(self.prefix, i) for i in self.indices)):
            netlink.create_netns(name)
            self._namespaces.append(name)
            netlink.set_sysctls(name, NO_IPV6, optional=True)
            with netlink.route(name) as sock:
                sock.link("set", index=netlink.index(sock, "lo"), state="up")
        for bridge_ns, address in ((control, CONTROL_GATEWAY), (switch, None)):
            with netlink.route(bridge_ns) as sock:
                sock.link("add", ifname="br0", kind="bridge")
                index = netlink.index(sock, "br0")
                if address:
                    sock.addr("add", index=index, address=address, prefixlen=24)
                sock.link("set", index=index, state="up")
        for i in self.indices:
            lab = lab_netns(self.prefix, i)
            self._wire(lab, CONTROL_IF, CONTROL_SUBNET.format(i=i), control, f"p{i}")
            self._wire(lab, DATA_IF, LAB_SUBNET.format(i=i), switch, f"p{i}")
        known = []
        for i in self.indices:
            directory = self.host_dir(i)
            directory.mkdir(mode=0o700, exist_ok=True)
            key = directory / "ssh_host_ed25519_key"
            _keygen(key, lab_name(i))
            known.append(f"{CONTROL_SUBNET.format(i=i)} {_public_key(key)}\n")
            (directory / "authorized_keys").write_text(self.client_key.with_suffix(".pub").read_text())
            (directory / "sshd_config").write_text(self._sshd_config(i))
        self.known_hosts.write_text("".join(known))
        for i in self.indices:
            self._start_sshd(i)

    def _wire(self, lab: str, ifname: str, address: str, bridge_ns: str, port: str) -> None:
        """A veth *ifname* in *lab* with *address*/24, its peer *port* a port of br0 in *bridge_ns*."""
        with netlink.route(lab) as sock:
            sock.link("add", ifname=ifname, kind="veth", peer={"ifname": port, "net_ns_fd": bridge_ns})
            index = netlink.index(sock, ifname)
            sock.addr("add", index=index, address=address, prefixlen=24)
            sock.link("set", index=index, state="up")
        with netlink.route(bridge_ns) as sock:
            sock.link("set", index=netlink.index(sock, port), master=netlink.index(sock, "br0"), state="up")

    def _sshd_config(self, i: int) -> str:
        directory = self.host_dir(i)
        return "\n".join([
            f"ListenAddress {CONTROL_SUBNET.format(i=i)}",
            "Port 22",
            f"HostKey {directory / 'ssh_host_ed25519_key'}",
            f"AuthorizedKeysFile {directory / 'authorized_keys'}",
            f"PidFile {directory / 'sshd.pid'}",
            "PermitRootLogin prohibit-password",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "UsePAM no",
            "PrintMotd no",
            "X11Forwarding no",
            "PermitUserRC no",
            # A lab host shares this machine's /root, whose .bashrc is not a lab machine's: bash
            # sources ~/.bashrc for every command sshd runs, unless it is not the top-level shell
            # (SHLVL set). Without this a .bashrc doing work (pyenv init: 150 ms) is in every
            # command's cost.
            "SetEnv SHLVL=1",
            # Every command of the ssh backend is a session of the host's one connection, and a
            # deploy's isolation probes run one per container at once (docs/ssh.md: lab hosts
            # need this too; OpenSSH's default is 10).
            "MaxSessions 100",
            "",
        ])

    def _start_sshd(self, i: int) -> None:
        directory = self.host_dir(i)
        argv = [SSHD, "-D", "-e", "-f", str(directory / "sshd_config")]
        log = self.sshd_log(i)
        log.write_bytes(b"")
        process = proc.spawn(proc.in_netns(lab_netns(self.prefix, i), argv), directory / "sshd.out", log,
                             self.registry, argv)
        self.sshd[i] = process
        from seconetbench.tunnels._common import wait_for

        wait_for(f"sshd of lab host {i} listening", lambda: b"Server listening" in log.read_bytes()
                 or process.poll() is not None, SSHD_READY_S, hint=f"see {log}")
        if process.poll() is not None:
            raise DeployError(f"sshd of lab host {i} exited ({process.returncode}): "
                              + log.read_text(errors="replace").strip()[-2000:])

    def teardown(self) -> None:
        """End what this lab started (by pid), delete its namespaces and files. Idempotent."""
        for i in list(self.sshd):
            process = self.sshd.pop(i)
            if process.poll() is None:
                proc.terminate([process])
            self.registry.forget(process.pid)
        for name in reversed(self._namespaces):
            inode = netlink.netns_inode(name)
            if inode is not None:  # sessions still open in a lab host (their sshd is gone)
                proc.terminate(proc.processes_in_netns(inode))
            netlink.delete_netns(name)
        self._namespaces.clear()
        shutil.rmtree(self.directory, ignore_errors=True)


def ssh_testbed(hosts: list[SshHost], options: SshOptions) -> dict:
    """The `testbed:` section of an ssh-backend config for *hosts* reached with *options*."""
    return {"backend": "ssh", "ssh": {"hosts": [dataclasses.asdict(host) for host in hosts],  # fields = keys
                                      "strict_host_key_checking": options.strict_host_key_checking,
                                      "known_hosts_file": options.known_hosts_file, "jump_host": options.jump_host}}


def _is_sshd(process) -> bool:
    import psutil

    try:
        return os.path.basename(process.exe()) == "sshd" or process.name() == "sshd"
    except psutil.Error:
        return False


def _keygen(path: Path, comment: str) -> None:
    proc.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)])


def _public_key(private_key: Path) -> str:
    """'ssh-ed25519 AAAA...' of a key pair (without the comment)."""
    return " ".join(private_key.with_suffix(".pub").read_text().split()[:2])
