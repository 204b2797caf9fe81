"""The ssh backend: hosts are real machines (lab servers, cloud VMs) reached over SSH.

On each host the backend builds what the netns backend builds on this machine: a host namespace
``<prefix>-h<i>`` and container namespaces ``<prefix>-c<NN>``. The host namespace reaches the
lab's data network through a macvlan child of the host's ``underlay_dev`` that holds
``underlay_ip``; nothing of ours is put in a host's root namespace (docs/ssh.md).

The per-host part of a build runs in the host's agent (remote/agent.py: the same package, one
process per host, JSON lines over the host's SSH master connection), with ``Deployment.here``
naming that host, so that the technologies' build loops touch only what is on that machine.
What spans hosts (a tunnel's first packet and underlay capture, the isolation probes, the
workloads) runs here and reaches the hosts only through access objects: ``ssh`` over the
host's master connection, then ``ip netns exec``.
"""

from __future__ import annotations

import base64
import concurrent.futures
import shlex
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from seconetbench import preflight, security
from seconetbench.backends.base import (UNDERLAY_MTU, BaseBackend, Capabilities, Container, ContainerAccess,
                                        Deployment, Host, Underlay)
from seconetbench.errors import DeployError, HostError, WorkloadError
from seconetbench.spec import SetupSpec
from seconetbench.testbed import cleanup

# A command started over SSH does not end when its local ssh client is ended (no terminal, no
# hangup). The wrapper runs it in the background and ends it, by pid, when the channel's stdin
# reaches end of file: when the local client is ended, or the connection is lost. (The watcher
# reads that stdin through fd 3: sh gives a background list /dev/null as its stdin.)
ENDS_WITH_STDIN = r'''exec 3<&0
"$@" </dev/null 3<&- & child=$!
(while read -r _ <&3; do :; done; kill -TERM "$child" 2>/dev/null) & watcher=$!
exec 3<&-
wait "$child"; code=$?
exec 2>/dev/null  # no "Terminated" of the watcher in the command's stderr
kill "$watcher"
exit "$code"'''
# Where the generators' files live on a host (D-ITG's scripts and logs), per run prefix.
HOST_FILES_DIR = "/var/tmp/seconetbench"
PULL_TIMEOUT_S = 120
# A host's part of a deploy starts daemons and waits for them (OVS, charon): minutes at most.
AGENT_CALL_TIMEOUT_S = 300


@dataclass(frozen=True)
class SshAccess(ContainerAccess):
    """A namespace on a remote host: the host's master connection runs ``ip netns exec`` there.
    *ssh* is the local command line that reaches the host (SshChannel.argv of nothing)."""

    kind: ClassVar[str] = "ssh"
    ends_with_stdin: ClassVar[bool] = True  # proc.spawn keeps the client's stdin open (the wrapper above)
    host: str
    ssh: tuple[str, ...]
    netns: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "ssh", tuple(self.ssh))  # a list when read from a state file

    def remote(self, argv: Sequence[str]) -> list[str]:
        """The command, as run on the host, that runs *argv* in this namespace until the
        channel's stdin closes."""
        return ["ip", "netns", "exec", self.netns, "sh", "-c", ENDS_WITH_STDIN, "sh", *argv]

    def argv(self, argv: Sequence[str]) -> list[str]:
        return [*self.ssh, shlex.join(self.remote(argv))]

    def run_argv(self, argv: Sequence[str]) -> list[str]:
        """*argv* in this namespace for a short command whose stdin is not kept open."""
        return [*self.ssh, shlex.join(["ip", "netns", "exec", self.netns, *argv])]


class SshBackend(BaseBackend):
    """Namespaces on real hosts over SSH (docs/ssh.md)."""

    name = "ssh"
    # Nothing of the hosts is on this machine to observe or enter: the security workloads open
    # sockets in the containers' namespaces from here, so they do not run; the isolation proof
    # runs inside the containers.
    capabilities = Capabilities(observe_hosts=False, security_workloads=False, isolation_from_inside=True,
                                technologies_by_framework=True, shared_files=False, local_generators=False,
                                technologies_here=False)
    STATE_FILE = "ssh-deployment.json"

    def __init__(self, prefix: str, testbed: dict[str, Any] | None = None):
        super().__init__(prefix)
        from seconetbench.remote.hosts import max_clock_offset_ms, parse_ssh_testbed

        self._use_hosts(*parse_ssh_testbed(testbed or {}), max_clock_offset_ms(testbed or {}))

    def _use_hosts(self, hosts: list[Any], options: Any, max_clock_offset: float) -> None:
        """The hosts (remote.ssh.SshHost) this backend deploys on and how ssh reaches them."""
        self.config_hosts, self.options = hosts, options
        self.max_clock_offset_ms = max_clock_offset
        self._channels: dict[str, Any] = {}
        self._agents: dict[str, Any] = {}

    # ------------------------------------------------------------------ connections
    def channel(self, name: str):
        """The host's master connection (opened on first use; ControlPersist keeps it for the
        next target's process, which finds it by its socket)."""
        if name not in self._channels:
            channel = self._new_channel(name)
            channel.open()
            self._channels[name] = channel
        return self._channels[name]

    def agent(self, name: str):
        """The host's agent (shipped and started on first use)."""
        from seconetbench.remote.agent import AgentClient, ship

        known = self._agents.get(name)
        if known is not None and known.process.poll() is not None:
            # its connection was lost since (a host back after a fault): connect again
            del self._agents[name]
            self._channels.pop(name, None)
        if name not in self._agents:
            channel = self.channel(name)
            # each host's agent has a state root of its own (namespace lab hosts share one file system)
            self._agents[name] = AgentClient(name, channel.argv(ship(channel)), address=channel.host.address)
        return self._agents[name]

    def on_host(self, name: str, function: str, timeout_s: float = AGENT_CALL_TIMEOUT_S, **args: Any) -> Any:
        """The package function *function* (this module's, by name) run on host *name*."""
        return self.agent(name).call("call", reply_timeout_s=timeout_s,
                                     function=f"seconetbench.backends.ssh:{function}", args=args)

    def on_hosts(self, names: Sequence[str], call) -> dict[str, Any]:
        """*call(name)* for every host at once; the first failure is raised, naming its host."""
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, len(names))) as pool:
            futures = {name: pool.submit(call, name) for name in names}
            return {name: future.result() for name, future in futures.items()}

    def used_hosts(self, count: int) -> list[str]:
        if count > len(self.config_hosts):
            raise DeployError(f"the setup needs {count} hosts; testbed.ssh.hosts lists {len(self.config_hosts)}: "
                              "add hosts or measure fewer")
        return [h.name for h in self.config_hosts[:count]]

    # ------------------------------------------------------------------ planning
    def plan_host(self, setup: SetupSpec, index: int) -> Host:
        configured = self.config_hosts[index - 1] if index <= len(self.config_hosts) else None
        name = configured.name if configured else f"h{index}"
        netns = self.names.host_netns(index)
        return Host(name=name, index=index, netns=netns,
                    underlay_ip=configured.underlay_ip.split("/")[0] if configured else None,
                    underlay_dev=underlay_dev(self.prefix, index),
                    access=SshAccess(name, tuple(self._ssh_argv(name)), netns))

    def plan_container(self, setup: SetupSpec, host: Host, name: str, index: int, on_host: int) -> Container:
        from seconetbench.backends.netns import container_ip

        netns = self.names.container_netns(name)
        return Container(name=name, index=index, host=host.name, netns=netns, ifname=self.names.container_if(),
                         ip=container_ip(host.index, on_host), access=SshAccess(host.name, host.access.ssh, netns))

    def plan_underlay(self, setup: SetupSpec, hosts: list[Host]) -> Underlay | None:
        if setup.scenario != "multi":
            return None
        # the capture of the tunnel checks: the first host's underlay device sees every packet
        # between two hosts (the only place of ours on the data network)
        return Underlay(switch_netns=hosts[0].netns, ports={h.name: h.underlay_dev for h in hosts},
                        capture_ifname=hosts[0].underlay_dev, capture_access=hosts[0].access)

    def _new_channel(self, name: str):
        """An unopened channel to the configured host *name*."""
        from seconetbench.remote.ssh import SshChannel, control_dir

        host = next(h for h in self.config_hosts if h.name == name)
        return SshChannel(host, self.options, control_dir(self.prefix))

    def _ssh_argv(self, name: str) -> list[str]:
        if not any(h.name == name for h in self.config_hosts):
            return []
        return self._new_channel(name).argv([])

    # ------------------------------------------------------------------ deploy
    def prepare(self, setup: SetupSpec) -> Deployment:
        names = self.used_hosts(setup.hosts)
        # this machine's leftovers of the prefix first: they include the master connections
        # (registered by pid), which the calls below open again
        self.close()
        cleanup.remove(self.prefix)
        problems = self.on_hosts(names, lambda name: self.on_host(name, "host_problems", setup=setup.to_dict()))
        found = [f"host {name}: {problem}" for name, said in problems.items() for problem in said]
        if found:
            raise DeployError(f"setup {setup.id} cannot run on the ssh hosts: {'; '.join(found)}")
        self.on_hosts(names, lambda name: self.on_host(name, "host_teardown", prefix=self.prefix))
        return self.plan(setup)

    def build(self, deployment: Deployment) -> None:
        started = time.monotonic()
        techs = preflight.setup_technologies(deployment.setup)
        tunnel = next((t for t in techs if t.kind == "tunnel"), None)
        state = deployment.to_state()
        # keys and configs once, on the first host (which has the tunnel's tools: hosts install),
        # then to every host: a host's part reads them from files (Tunnel.prepare)
        prepared = self.on_host(deployment.hosts[0].name, "host_prepare", state=state) if tunnel else {}
        configured = {h.name: h for h in self.config_hosts}
        built = self.on_hosts([h.name for h in deployment.hosts], lambda name: self.on_host(
            name, "host_build", state=state, host=name, lab_device=configured[name].underlay_dev,
            prefixlen=prefixlen(configured[name].underlay_ip), prepared=prepared))
        resolved = {name: facts["implementation"]["resolved"] for name, facts in built.items()}
        if len(set(resolved.values())) > 1:
            raise DeployError(f"setup {deployment.setup.id}: the hosts resolved different implementations "
                              f"{resolved}; pin one in sweep.multi.implementations")
        timings = {}
        for name, facts in built.items():
            for key, value in facts["timings"].items():
                timings[key] = max(timings.get(key, 0.0), value)
        # the clocks meanwhile (each sample's uncertainty is its own round trip, load or not)
        clocks = concurrent.futures.ThreadPoolExecutor(max_workers=1)
        measured_clocks = clocks.submit(self.clocks, [h.name for h in deployment.hosts])
        clocks.shutdown(wait=False)
        if tunnel is not None:
            t0 = time.monotonic()
            first = deployment.hosts[0].name
            # the hosts' implementation, not what this machine's probes and binaries would say
            tunnel.requested_implementation = built[first]["implementation"]["resolved"]
            tunnel.verify(deployment, implementation=built[first]["tunnel_implementation"])
            timings["tunnel_verify_s"] = round(time.monotonic() - t0, 6)
            deployment.facts["tunnel"] = {"name": tunnel.name, **tunnel.describe(deployment),
                                          **self.on_host(first, "host_tunnel_facts", state=deployment.to_state(),
                                                         host=first)}
        for tech in techs:
            if tech.kind != "tunnel":
                deployment.facts[tech.kind] = {"name": tech.name, **built[deployment.hosts[0].name]["facts"][tech.kind]}
        deployment.facts["timings"] = {**timings, "deploy_s": round(time.monotonic() - started, 6)}
        deployment.facts["clocks"] = measured_clocks.result()
        deployment.facts["hosts"] = {name: facts["host"] for name, facts in built.items()}
        deployment.facts["mtu"] = {ns: links for facts in built.values() for ns, links in facts["mtu"].items()}
        deployment.facts["daemons"] = {name: facts["daemons"] for name, facts in built.items()}
        deployment.facts["implementation"] = built[deployment.hosts[0].name]["implementation"]

    def clocks(self, names: list[str]) -> dict[str, Any]:
        """Each host's clock against this machine's and each pair's verdict against
        testbed.ssh.max_clock_offset_ms (remote/hosts.py): one-way delays between two hosts
        are measured only when their pair is within it (D-ITG refuses otherwise)."""
        from seconetbench.remote import hosts as lab

        offsets = self.on_hosts(names, lambda name: lab.clock_offset(lab.sample_clock(self.channel(name).argv(
            ["python3", "-c", lab.CLOCK_ANSWER_PYTHON]))))
        pairs = [lab.pair_verdict(a, offsets[a], b, offsets[b], self.max_clock_offset_ms)
                 for i, a in enumerate(names) for b in names[i + 1:]]
        return {"bound_ms": self.max_clock_offset_ms, "hosts": {n: o.to_dict() for n, o in offsets.items()},
                "pairs": pairs}

    def clock_offsets(self, deployment: Deployment) -> dict[str, dict[str, float]]:
        """Each host's clock minus this machine's, measured now (remote/hosts.py clock_offset)."""
        return self.clocks([h.name for h in deployment.hosts])["hosts"]

    def pair_changer(self, deployment: Deployment) -> SshPairChanger | None:
        """The setup's filter, changed by every host's agent on that host's enforcement points."""
        tech = super().pair_changer(deployment)
        return None if tech is None else SshPairChanger(self)

    def keep_produced(self, keep: Path) -> None:
        """This machine's files of the failed deploy, and each reachable host's (daemon logs and
        configs, never keys) under *keep*/deploy/hosts/<host>."""
        super().keep_produced(keep)
        for name in list(self._agents):
            try:
                files = self.on_host(name, "host_produced", prefix=self.prefix)
            except HostError:  # the host is what failed: its files stay there, for clean
                continue
            for relative, data in files.items():
                target = keep / "deploy" / "hosts" / name / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(base64.b64decode(data))

    def identity(self, setup: SetupSpec) -> dict[str, Any]:
        return {"hosts": [(h.name, h.address, h.port, h.underlay_dev, h.underlay_ip) for h in self.config_hosts]}

    def check_isolation(self, deployment: Deployment) -> dict[str, Any]:
        return security.check_whitelist_by_exec(deployment, self.exec_in, self.start_in)

    @staticmethod
    def start_in(container: Container, argv: list[str]) -> subprocess.Popen:
        """*argv* in *container*, its output streaming here; it ends when its stdin is closed."""
        return subprocess.Popen(container.access.argv(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

    def exec_in(self, container: Container, argv: list[str], timeout_s: float = 30) -> tuple[int, str, str]:
        access = container.access
        result = subprocess.run(access.run_argv(argv), capture_output=True, text=True, timeout=timeout_s)
        if result.returncode == 255:
            raise HostError(access.host, f"ssh failed running {argv[0]} in {access.netns}: {result.stderr.strip()[-300:]}")
        return result.returncode, result.stdout, result.stderr

    # ------------------------------------------------------------------ reuse
    def healthy(self, deployment: Deployment) -> str | None:
        try:
            said = self.on_hosts([h.name for h in deployment.hosts], lambda name: self.on_host(
                name, "host_healthy", state=deployment.to_state(), host=name,
                daemons=deployment.facts.get("daemons", {}).get(name, [])))
        except HostError as error:
            return str(error)
        problems = [f"host {name}: {problem}" for name, problem in said.items() if problem]
        return "; ".join(problems) or None

    def listening(self, container: Container, pid: int, port: int, udp: bool = False) -> bool:
        code, out, _ = self.exec_in(container, ["ss", "-H", "-ln" + ("u" if udp else "t"), f"sport = :{port}"], 10)
        return code == 0 and bool(out.strip())

    # Files of the generators: a host has a file system of its own, so they are copied over
    # the master connection (D-ITG's scripts in, its logs out before the target is complete).
    def remote_path(self, container: Container, local: Path) -> str:
        return f"{HOST_FILES_DIR}/{self.prefix}/{container.name}-{local.name}"

    def push(self, container: Container, local: Path) -> str:
        remote = self.remote_path(container, local)
        channel = self.channel(container.access.host)
        channel.run(["mkdir", "-p", str(Path(remote).parent)])
        channel.put(local, remote, mode=0o644)
        return remote

    def pull(self, container: Container, remote: str, local: Path) -> Path:
        channel = self.channel(container.access.host)
        try:
            channel.get(remote, local)
        except Exception as error:  # noqa: BLE001 - a target whose copy fails is not complete
            raise WorkloadError(f"copying {remote} back from host {container.access.host} failed: {error}") from error
        channel.run(["rm", "-f", remote])
        return local

    # ------------------------------------------------------------------ teardown
    def teardown(self) -> dict[str, list[str]]:
        return self.clean_hosts(self.prefix)

    @classmethod
    def clean_remote(cls, testbed: dict[str, Any], prefix: str | None) -> dict[str, list[str]]:
        return cls(prefix or "scn", testbed).clean_hosts(prefix)

    def clean_hosts(self, prefix: str | None) -> dict[str, list[str]]:
        """Every host's namespaces, daemons and files of run *prefix* (every run when None),
        then this machine's state of it (the master connections too). Unreachable hosts do not
        stop the others; they are named afterwards."""
        removed: dict[str, list[str]] = {}
        errors = []
        for host in self.config_hosts:
            try:
                said = self.on_host(host.name, "host_teardown", prefix=prefix)
                self.channel(host.name).run(["rm", "-rf", f"{HOST_FILES_DIR}/{prefix}" if prefix else HOST_FILES_DIR])
            except HostError as error:
                errors.append(str(error))
                continue
            for key, values in said.items():
                removed.setdefault(key, []).extend(f"{host.name}:{v}" for v in values)
        self.close()
        local = cleanup.remove(prefix)  # ends the master connections too (registered by pid)
        if errors:
            raise DeployError(f"hosts left uncleaned: {'; '.join(errors)}; run `seconetbench clean --backend ssh "
                              "--config F` again when they are reachable")
        return {**removed, **local}

    def close(self) -> None:
        for agent in self._agents.values():
            agent.close()
        self._agents.clear()
        self._channels.clear()  # the master connections persist (ControlPersist) for the next target's process


class SshPairChanger:
    """Allows or denies one pair live (policy_update) on the ssh backend: every host's agent
    runs the filter's own ``update_pair`` / ``remove_pair`` on its enforcement points
    (:func:`host_change_pair`), all hosts at once. The seconds returned are the slowest host's
    own timing of its command (as the netns backend times it, without the way over SSH);
    :attr:`made_ns` says when each host began the last change, on that host's clock."""

    def __init__(self, backend: SshBackend):
        self.backend = backend
        self.made_ns: dict[str, int] = {}

    def update_pair(self, deployment: Deployment, a: str, b: str) -> float:
        return self._change(deployment, a, b, "update_pair")

    def remove_pair(self, deployment: Deployment, a: str, b: str) -> float:
        return self._change(deployment, a, b, "remove_pair")

    def _change(self, deployment: Deployment, a: str, b: str, method: str) -> float:
        state = deployment.to_state()
        said = self.backend.on_hosts([h.name for h in deployment.hosts], lambda name: self.backend.on_host(
            name, "host_change_pair", state=state, host=name, a=a, b=b, method=method))
        self.made_ns = {name: int(result["started_ns"]) for name, result in said.items()}
        return max(float(result["control_s"]) for result in said.values())


def underlay_dev(prefix: str, index: int) -> str:
    """The host namespace's underlay device: a macvlan child of the host's underlay_dev."""
    from seconetbench.backends.netns import underlay_dev as netns_underlay_dev

    return netns_underlay_dev(prefix, index)


def prefixlen(address: str) -> int:
    return int(address.split("/")[1]) if "/" in address else 24


# ---------------------------------------------------------------------- on the host (agent)
# These run in the host's agent (remote/agent.py `call`), with this package, on the host.
def host_problems(setup: dict[str, Any]) -> list[str]:
    """What this host lacks for *setup*: each technology's requirements, probed here."""
    spec = SetupSpec.from_dict(setup)
    # a pinned kernel implementation is a requirement of its technology (a probe's): a host whose
    # kernel lacks it is refused below, with the probe's words
    problems = []
    for tech in preflight.setup_technologies(spec):
        reason = tech.incompatibility(spec) or "; ".join(filter(None, (r.missing() for r in tech.requires(spec))))
        if reason:
            problems.append(f"{tech.kind} '{tech.name}' cannot run: {reason}")
    return problems


def host_prepare(state: dict[str, Any]) -> dict[str, str]:
    """The tunnel's keys and configuration files (Tunnel.prepare) by path below its prepared
    directory, as [base64 content, mode], for every host's part of the build."""
    from seconetbench.tunnels._common import prepared_dir

    deployment = Deployment.from_state(state)
    tunnel = next(t for t in preflight.setup_technologies(deployment.setup) if t.kind == "tunnel")
    tunnel.prepare(deployment)
    directory = prepared_dir(deployment)
    return {str(p.relative_to(directory)): [base64.b64encode(p.read_bytes()).decode(), p.stat().st_mode & 0o777]
            for p in sorted(directory.rglob("*")) if p.is_file()}


def host_produced(prefix: str) -> dict[str, str]:
    """What a failed deploy keeps of this host's files (base.produced_files), base64."""
    from seconetbench.backends.base import produced_files

    return {relative: base64.b64encode(data).decode() for relative, data in produced_files(prefix).items()}


def host_teardown(prefix: str | None) -> dict[str, list[str]]:
    """Remove everything of *prefix* (every run when None) on this host: its daemons by pid, its
    namespaces (and the macvlan in them), its state."""
    return cleanup.remove(prefix)


def host_build(state: dict[str, Any], host: str, lab_device: str, prefixlen: int,
               prepared: dict[str, str]) -> dict[str, Any]:
    """Build this host's part of the deployment *state*: namespaces, the underlay macvlan, the
    solution, the tunnel's local part and the filter; return the facts the controller records."""
    from seconetbench import probes, proc
    from seconetbench.backends import netns as local
    from seconetbench.testbed import netlink

    from seconetbench import meta

    deployment = Deployment.from_state(state)
    deployment.here = host
    me = next(h for h in deployment.hosts if h.name == host)
    started = time.monotonic()
    probes.results(deployment.prefix)
    techs = preflight.setup_technologies(deployment.setup)
    tunnel = next((t for t in techs if t.kind == "tunnel"), None)
    if tunnel is not None:
        from seconetbench.tunnels._common import prepared_dir

        directory = prepared_dir(deployment)
        for relative, (data, mode) in prepared.items():
            path = directory / relative
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            path.write_bytes(base64.b64decode(data))
            path.chmod(mode)  # scripts stay executable (tinc-up), keys private
    registry = cleanup.registry(deployment.prefix)
    with netlink.pooled():
        local.build_namespaces(deployment)
        # the data network: a macvlan child of the lab's device, moved into our host namespace
        proc.run(["ip", "link", "add", me.underlay_dev, "link", lab_device, "type", "macvlan", "mode", "bridge"])
        proc.run(["ip", "link", "set", me.underlay_dev, "netns", me.netns])
        proc.run_in(me.netns, ["ip", "addr", "add", f"{me.underlay_ip}/{prefixlen}", "dev", me.underlay_dev])
        proc.run_in(me.netns, ["ip", "link", "set", me.underlay_dev, "mtu", str(UNDERLAY_MTU), "up"])
        netlink.set_sysctls(me.netns, local.MULTI_HOST_SYSCTLS)
        timings, facts = {}, {}
        for tech in techs:
            t0 = time.monotonic()
            if tech.kind == "tunnel":
                tech.apply_local(deployment)
            else:
                tech.apply(deployment)
                facts[tech.kind] = tech.describe(deployment)
            timings[f"{tech.kind}_apply_s"] = round(time.monotonic() - t0, 6)
    timings["host_build_s"] = round(time.monotonic() - started, 6)
    # what ran on this host, for meta.json (the controller's own versions say nothing of it)
    tools = sorted({"ip", *(r.name for t in techs for r in t.requires(deployment.setup) if r.kind == "binary")})
    here = [n.netns for n in deployment.local_hosts() + deployment.local_containers()]
    mtus = {ns: {k: v for k, v in netlink.link_mtus(ns).items() if k != "lo"} for ns in here}
    return {"timings": timings, "mtu": mtus, "facts": facts, "implementation": preflight.implementation_facts(deployment.setup),
            "tunnel_implementation": tunnel.implementation() if tunnel is not None else None,
            "host": {**meta.machine(), "tools": {tool: meta.tool_version(tool) for tool in tools}},
            "daemons": [{"pid": p.pid, "name": p.name(), "create_time": p.create_time()} for p in registry.recorded()]}


def host_change_pair(state: dict[str, Any], host: str, a: str, b: str, method: str) -> dict[str, Any]:
    """The filter's *method* (update_pair or remove_pair) for the pair (a, b) on this host's
    enforcement points; when it began on this host's clock (ns) and the seconds it took."""
    from seconetbench import technology

    if method not in ("update_pair", "remove_pair"):
        raise ValueError(f"host_change_pair: method {method!r} is not update_pair or remove_pair")
    deployment = Deployment.from_state(state)
    deployment.here = host
    tech = technology.get("filter", deployment.setup.filter)
    started = time.time_ns()
    control_s = getattr(tech, method)(deployment, a, b)
    return {"started_ns": started, "control_s": control_s}


def host_tunnel_facts(state: dict[str, Any], host: str) -> dict[str, Any]:
    """What only this host can tell of the tunnel (its daemon's security associations, the data
    channel it negotiated: Tunnel.host_facts), once the deployment is verified."""
    deployment = Deployment.from_state(state)
    deployment.here = host
    tunnel = next(t for t in preflight.setup_technologies(deployment.setup) if t.kind == "tunnel")
    return tunnel.host_facts(deployment, next(h for h in deployment.hosts if h.name == host))


def host_healthy(state: dict[str, Any], host: str, daemons: list[dict[str, Any]]) -> str | None:
    """None when this host's part of the deployment is still there, else what is missing."""
    from seconetbench.backends.netns import missing_parts

    deployment = Deployment.from_state(state)
    deployment.here = host
    return missing_parts([n.netns for n in deployment.local_hosts() + deployment.local_containers()], daemons)
