"""The backend interface, and what a deployed setup looks like whatever the backend.

A backend (netns, docker, kubernetes; docs/decisions.md "One backend interface") is a
:class:`Backend`: it plans, deploys, reuses, checks and tears down setups, and states its
:class:`Capabilities`, which the config check compares with what a sweep asks for before anything
is deployed. Each container carries a :class:`ContainerAccess` made by its backend: the one way
generic code runs a command inside it. :class:`BaseBackend` holds what every backend shares:
the placement plan, the fingerprint, deploy-or-reuse and the deploy sequence.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import seconetbench
from seconetbench.errors import DeployError, UnknownNameError
from seconetbench.fsutil import write_text_atomic
from seconetbench.registry import Registry
from seconetbench.spec import SetupSpec
from seconetbench.testbed.naming import Names, container_name

# The hosts' underlay is Ethernet with a 1500-byte MTU on every backend that joins hosts itself;
# tunnels size their own MTU from it before any deployment exists (Tunnel.mtu).
UNDERLAY_MTU = 1500


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do, as generic code and the config check ask it."""

    # The hosts' and containers' network namespaces are on this machine: the monitor reads their
    # counters and processes, the runner waits until they are quiet, the underlay can be captured.
    observe_hosts: bool
    # The isolation, confidentiality and spoofing workloads can run: they open sockets inside the
    # containers' namespaces from this machine and capture or inject frames on the underlay.
    security_workloads: bool
    # The isolation proof at deploy runs inside the containers (exec), not from this machine's
    # side of their namespaces; recorded with the proof (facts.verification.from_inside).
    isolation_from_inside: bool
    # Solutions, filters and tunnels are applied by this framework (False: the cluster's CNI
    # wires the containers, and only the technologies that stand for it apply).
    technologies_by_framework: bool
    # Containers see this machine's files at the same paths (False: push/pull copy them).
    shared_files: bool
    # The generators run as processes of this machine (the launched pid is the generator's):
    # they can be pinned to this machine's CPUs (testbed.cpu_pinning).
    local_generators: bool
    # The technologies run on this machine's kernel: its probes resolve implementations and its
    # requirements gate the sweep before any job (False: each remote host checks itself when a
    # setup is deployed there, backends/ssh.py host_problems; this machine's kernel says nothing).
    technologies_here: bool = True

    def lacking(self, needed: Sequence[str]) -> list[str]:
        """The capabilities of *needed* (field names) this backend does not have."""
        return [name for name in needed if not getattr(self, name)]


class ContainerAccess(ABC):
    """A container's way in, made by its backend: how a command started on this machine runs
    inside the container (a namespace here, a pod, a namespace on a remote host).

    Subclasses are dataclasses with a ``kind``; they are saved with the deployment and found
    again by that kind in :data:`ACCESS_KINDS` (a new backend adds its kind there)."""

    kind: ClassVar[str]
    # The command line of argv() ends its remote side when its stdin closes (ssh): whoever
    # starts it keeps a pipe open to it (proc.spawn(stdin_open=...)) instead of /dev/null.
    ends_with_stdin: ClassVar[bool] = False

    @abstractmethod
    def argv(self, argv: Sequence[str]) -> list[str]:
        """The command line that, run on this machine, runs *argv* inside the container with the
        same exit code, stdout and stderr, and ends it when it is ended."""

    @property
    def local_netns(self) -> str | None:
        """The container's network namespace when it is one on this machine (its name under
        /run/netns), else None: code that enters namespaces itself needs it."""
        return None

    def to_state(self) -> dict[str, Any]:
        return {"kind": self.kind, **dataclasses.asdict(self)}

    @staticmethod
    def from_state(state: dict[str, Any]) -> ContainerAccess:
        fields = dict(state)
        return ACCESS_KINDS.get(fields.pop("kind"))(**fields)


# kind -> "module:Class", imported on first use (as the backends are, backends/__init__.py): a
# state file is read without importing the docker or kubernetes clients.
ACCESS_KINDS: Registry[type[ContainerAccess]] = Registry("container access kind")
ACCESS_KINDS.lazy("netns", "seconetbench.backends.netns:NamespaceAccess")
ACCESS_KINDS.lazy("nsenter", "seconetbench.backends.docker:NsenterAccess")
ACCESS_KINDS.lazy("pod", "seconetbench.backends.k8s_exec:PodAccess")
ACCESS_KINDS.lazy("ssh", "seconetbench.backends.ssh:SshAccess")


def state_with_access(item: Any, key: str) -> dict[str, Any]:
    """The fields of dataclass *item* as JSON data, its optional access object *key* included."""
    values = {f.name: getattr(item, f.name) for f in dataclasses.fields(item)}
    return {**values, key: values[key].to_state() if values[key] else None}


def access_from_state(state: dict[str, Any], key: str) -> dict[str, Any]:
    """*state* with its access object *key* made again (None when absent: older state files)."""
    return {**state, key: ContainerAccess.from_state(state[key]) if state.get(key) else None}


@dataclass
class Host:
    name: str  # "h1"
    index: int
    netns: str | None  # its namespace on this machine; None where a host is not one (a node)
    underlay_ip: str | None = None
    underlay_dev: str | None = None
    # How commands run in the host's namespace from this machine (netns: `ip netns exec`; ssh:
    # over the host's connection); None where nothing runs in a host (docker, kubernetes).
    access: ContainerAccess | None = None

    def to_state(self) -> dict[str, Any]:
        return state_with_access(self, "access")

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Host:
        return cls(**access_from_state(state, "access"))


@dataclass
class Container:
    name: str  # "c01"
    index: int  # 1-based across all hosts
    host: str  # host name
    netns: str | None  # its network namespace on its host; None where the runtime names it (a pod)
    ifname: str
    ip: str
    access: ContainerAccess  # how commands run inside it

    def to_state(self) -> dict[str, Any]:
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return {**values, "access": self.access.to_state()}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Container:
        return cls(**{**state, "access": ContainerAccess.from_state(state["access"])})


@dataclass(frozen=True)
class Underlay:
    """The network between the hosts of a multi-host setup, as far as this machine reaches it."""

    switch_netns: str  # the namespace whose bridge joins the hosts: every frame on the wire crosses it
    ports: dict[str, str]  # host name -> the switch's port towards it (where frames for it go out)
    mtu: int = UNDERLAY_MTU
    # Where the underlay capture runs (tcpdump -i capture_ifname) and how commands get there:
    # netns, the switch namespace with "any" (every port, a mirror of the wire); ssh, a host's
    # namespace and its underlay device. None: the switch namespace on this machine.
    capture_ifname: str = "any"
    capture_access: ContainerAccess | None = None

    def __post_init__(self) -> None:
        if self.capture_access is None and self.switch_netns:
            object.__setattr__(self, "capture_access", ACCESS_KINDS.get("netns")(netns=self.switch_netns))

    def to_state(self) -> dict[str, Any]:
        return state_with_access(self, "capture_access")

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Underlay:
        return cls(**access_from_state(state, "capture_access"))


@dataclass
class Deployment:
    setup: SetupSpec
    prefix: str
    hosts: list[Host]
    containers: list[Container]
    pairs: list[tuple[str, str]]  # (sender, sink) container names, measured concurrently
    facts: dict[str, Any] = field(default_factory=dict)  # timings, technology facts, verification
    underlay: Underlay | None = None  # multi-host setups whose hosts this machine joins
    # The one host this process builds (a host agent of the ssh backend); None: every host (netns,
    # docker). Transient: never saved with the state, each process sets its own.
    here: str | None = None

    @property
    def names(self) -> Names:
        return Names(self.prefix)

    def local_hosts(self) -> list[Host]:
        """The hosts whose devices, daemons and routes this process creates: all of them, or the
        one named by :attr:`here` (the others are data: names, indices, underlay addresses)."""
        return list(self.hosts) if self.here is None else [self.host(self.here)]

    def local_containers(self) -> list[Container]:
        """The containers on :meth:`local_hosts`, in the deployment's order."""
        here = {host.name for host in self.local_hosts()}
        return [c for c in self.containers if c.host in here]

    def container(self, name: str) -> Container:
        for container in self.containers:
            if container.name == name:
                return container
        raise UnknownNameError("container", name, [c.name for c in self.containers], where=f" in setup {self.setup.id}")

    def host(self, name: str) -> Host:
        for host in self.hosts:
            if host.name == name:
                return host
        raise UnknownNameError("host", name, [h.name for h in self.hosts], where=f" in setup {self.setup.id}")

    def host_of(self, container: Container) -> Host:
        return self.host(container.host)

    def containers_on(self, host: Host) -> list[Container]:
        return [c for c in self.containers if c.host == host.name]

    def allowed(self, a: str, b: str) -> bool:
        """The whitelist: a pair may talk in both directions."""
        return (a, b) in self.pairs or (b, a) in self.pairs

    @staticmethod
    def pair_name(sender: str, sink: str) -> str:
        return f"{sender}-{sink}"

    def describe(self) -> dict[str, Any]:
        """The JSON printed by `seconetbench deploy` (scripts rely on these keys: extend only)."""
        return {
            "setup": self.setup.id,
            "spec": self.setup.to_dict(),
            "prefix": self.prefix,
            "containers": [{"name": c.name, "netns": c.netns, "ip": c.ip, "host": c.host,
                            "ifname": c.ifname, "access": c.access.to_state()} for c in self.containers],
            "allowed_pairs": [[a, b] for a, b in self.pairs],
            "hosts": [{"name": h.name, "netns": h.netns, "underlay_ip": h.underlay_ip,
                       "underlay_dev": h.underlay_dev, "access": h.access.to_state() if h.access else None}
                      for h in self.hosts],
            "underlay": self.underlay.to_state() if self.underlay else None,
            "facts": self.facts,
        }

    def to_state(self) -> dict[str, Any]:
        return {
            "setup": self.setup.to_dict(),
            "prefix": self.prefix,
            "hosts": [h.to_state() for h in self.hosts],
            "containers": [c.to_state() for c in self.containers],
            "pairs": [list(p) for p in self.pairs],
            "underlay": self.underlay.to_state() if self.underlay else None,
            "facts": self.facts,
        }

    def save(self, path: Path) -> None:
        """Write the state file from which a later target reuses this deployment."""
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, json.dumps(self.to_state(), indent=1))

    @classmethod
    def load(cls, path: Path) -> Deployment | None:
        """The deployment :meth:`save` wrote to *path*; None when there is none or it is unreadable."""
        try:
            return cls.from_state(json.loads(path.read_text()))
        except (FileNotFoundError, json.JSONDecodeError, KeyError, TypeError, ValueError):
            return None

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Deployment:
        return cls(
            setup=SetupSpec.from_dict(state["setup"]),
            prefix=state["prefix"],
            hosts=[Host.from_state(h) for h in state["hosts"]],
            containers=[Container.from_state(c) for c in state["containers"]],
            pairs=[tuple(p) for p in state["pairs"]],
            facts=state.get("facts", {}),
            underlay=Underlay.from_state(state["underlay"]) if state.get("underlay") else None,
        )


# ------------------------------------------------------------------------------------ backends
class PairChanger(Protocol):
    """Allows or denies one pair of a deployment live, as the policy_update workload changes
    the whitelist: a filter technology of the framework (its live update), or the backend's own
    objects (a NetworkPolicy through the kubernetes API). Each call returns how long the change
    took to issue (control plane), in seconds."""

    def update_pair(self, deployment: Deployment, a: str, b: str) -> float:
        """Whitelist the pair (a, b), both directions."""

    def remove_pair(self, deployment: Deployment, a: str, b: str) -> float:
        """Remove the pair (a, b) from the whitelist."""


@runtime_checkable
class Backend(Protocol):
    """What the runner, the CLI and the workloads use of a backend (BaseBackend implements the
    shared part). One object per run prefix; the deployment it makes outlives the object."""

    name: ClassVar[str]
    capabilities: ClassVar[Capabilities]
    prefix: str
    registry: Any  # proc.Registry: the processes cleanup ends by pid
    state_file: Path

    def plan(self, setup: SetupSpec) -> Deployment:
        """Names, places and ways in of every container of *setup*, without creating anything."""

    def deploy(self, setup: SetupSpec, verify: bool = True, keep: Path | None = None,
               measures_enforcement: bool = False) -> Deployment:
        """Remove this prefix's previous deployment, build *setup*, prove its whitelist (on a
        failure, the daemons' logs and configs go to *keep* before the teardown removes them).
        *measures_enforcement*: record a filter that is not enforced instead of refusing it."""

    def deploy_or_reuse(self, setup: SetupSpec, verify: bool = True, keep: Path | None = None,
                        measures_enforcement: bool = False) -> tuple[Deployment, bool]:
        """The recorded deployment when it is *setup*'s and healthy, else a fresh one."""

    def pair_changer(self, deployment: Deployment) -> PairChanger | None:
        """What allows and denies one pair of *deployment* live (policy_update), or None."""

    def clock_offsets(self, deployment: Deployment) -> dict[str, dict[str, float]] | None:
        """Each host's clock minus this machine's, measured now ({host: {"offset_ms",
        "uncertainty_ms", ...}}), or None: the containers read this machine's clock."""

    def current(self) -> Deployment | None:
        """The deployment recorded for this prefix (None: none, or unreadable)."""

    def healthy(self, deployment: Deployment) -> str | None:
        """None when the live testbed still matches *deployment*, else what is wrong."""

    def teardown(self) -> dict[str, list[str]]:
        """Remove everything of this prefix; what was removed."""

    def close(self) -> None:
        """Release what the object holds open (clients), never the deployment."""

    def listening(self, container: Container, pid: int, port: int, udp: bool = False) -> bool:
        """Whether the server *pid* started in *container* listens on *port* yet."""

    def remote_path(self, container: Container, local: Path) -> str:
        """Where *container* sees (or should write) the file *local* of this machine."""

    def push(self, container: Container, local: Path) -> str:
        """Make *local* readable inside *container*; the path to use there."""

    def pull(self, container: Container, remote: str, local: Path) -> Path:
        """Bring the file *remote* written in *container* to *local*."""

    def observed_namespaces(self, deployment: Deployment) -> list[str]:
        """Namespaces on this machine whose counters and processes are the setup's (monitor)."""

    def traffic_namespaces(self, deployment: Deployment) -> list[str]:
        """Namespaces on this machine that every packet of the setup crosses (quiet wait)."""


# What a failed deploy keeps of the files it wrote (BaseBackend.keep_produced).
KEPT_SUFFIXES = {".log", ".err", ".out", ".conf", ".json", ".txt", ".yaml", ".sh"}
KEPT_MAX_BYTES = 4 * 1024 * 1024


# Below the state directory, where a failed deploy keeps only daemon logs, never the tunnels'
# keys and the configs that quote them (tunnels/_common.prepared_dir; charon logs there).
SECRET_DIRS = ("tunnel/prepared",)
LOG_SUFFIXES = {".log", ".err", ".out"}


def produced_files(prefix: str) -> dict[str, bytes]:
    """The text files a deploy of *prefix* wrote under its state directory (KEPT_SUFFIXES, at
    most KEPT_MAX_BYTES each; below SECRET_DIRS only logs), by path relative to that directory. The
    ssh backend's agents call it on their hosts."""
    from seconetbench.testbed import cleanup

    source = cleanup.state_dir(prefix)
    found: dict[str, bytes] = {}
    for path in sorted(source.rglob("*")) if source.is_dir() else []:
        relative = path.relative_to(source)
        secret = any(relative.is_relative_to(directory) for directory in SECRET_DIRS)
        if path.suffix in (LOG_SUFFIXES if secret else KEPT_SUFFIXES) and path.is_file() and not path.is_symlink() \
                and path.stat().st_size <= KEPT_MAX_BYTES:
            try:
                found[str(relative)] = path.read_bytes()
            except OSError:  # a file that vanished or cannot be read: keep the others
                continue
    return found


def fingerprint(setup: SetupSpec, verify: bool, extra: dict[str, Any] | None = None) -> str:
    """The identity of a deployment: a recorded deployment is reused only for the same one.
    *extra* is whatever else decides what gets built (a backend's kube context, the resolved
    implementations of the technologies); it must be JSON data."""
    data = {"setup": setup.to_dict(), "version": seconetbench.__version__, "verify": verify, **(extra or {})}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


class BaseBackend(ABC):
    """What every backend shares: placement, fingerprint, deploy-or-reuse and the deploy sequence
    (prepare, build, prove isolation, record). A backend fills in the abstract steps."""

    name: ClassVar[str]
    capabilities: ClassVar[Capabilities]
    STATE_FILE: ClassVar[str] = "deployment.json"  # under the run's state directory

    def __init__(self, prefix: str):
        from seconetbench.testbed import cleanup

        self.prefix = prefix
        self.names = Names(prefix)
        self.state_dir = cleanup.state_dir(prefix)
        self.registry = cleanup.registry(prefix)

    @property
    def state_file(self) -> Path:
        return self.state_dir / self.STATE_FILE

    # ------------------------------------------------------------------ planning
    def plan(self, setup: SetupSpec) -> Deployment:
        """Every host and container of *setup*, without creating anything: containers go to the
        first host (single) or round-robin over the hosts (multi, so that the two ends of a pair
        are on different hosts); pairs are (c01, c02), (c03, c04), ..."""
        hosts = [self.plan_host(setup, index) for index in range(1, setup.hosts + 1)]
        containers: list[Container] = []
        for index in range(1, setup.containers + 1):
            host = hosts[(index - 1) % len(hosts)] if setup.scenario == "multi" else hosts[0]
            on_host = sum(1 for c in containers if c.host == host.name) + 1
            containers.append(self.plan_container(setup, host, container_name(index), index, on_host))
        pairs = [(containers[i].name, containers[i + 1].name) for i in range(0, len(containers), 2)]
        return Deployment(setup=setup, prefix=self.prefix, hosts=hosts, containers=containers, pairs=pairs,
                          underlay=self.plan_underlay(setup, hosts))

    def plan_host(self, setup: SetupSpec, index: int) -> Host:
        return Host(name=f"h{index}", index=index, netns=None)

    @abstractmethod
    def plan_container(self, setup: SetupSpec, host: Host, name: str, index: int, on_host: int) -> Container:
        """Container *name* (the *index*-th of the setup, the *on_host*-th of *host*)."""

    def plan_underlay(self, setup: SetupSpec, hosts: list[Host]) -> Underlay | None:
        return None

    # ------------------------------------------------------------------ deploy
    def deploy(self, setup: SetupSpec, verify: bool = True, keep: Path | None = None,
               measures_enforcement: bool = False) -> Deployment:
        """Check *setup* and remove this prefix's previous deployment (:meth:`prepare`), build it
        (:meth:`build`), prove its whitelist (:meth:`check_isolation`) and record it for reuse.
        A failure after prepare removes whatever was built, after copying what the deploy wrote
        (daemon logs and configs, :meth:`keep_produced`) to *keep*: nothing is lost.

        A failed isolation check refuses the setup, except for a workload that measures
        enforcement itself (*measures_enforcement*, policy_update) when the backend reads the
        failure as "the filter is not enforced" (:meth:`unenforced`): then the deployment is kept
        with facts["enforcement"] saying so (docs/decisions.md "Unenforced policy is a result")."""
        deployment = self.prepare(setup)
        try:
            self.build(deployment)
            if verify:
                check = {**self.check_isolation(deployment), "from_inside": self.capabilities.isolation_from_inside}
                deployment.facts["verification"] = check
                if not check["passed"]:
                    reason = self.unenforced(deployment, check) if measures_enforcement else None
                    if reason is None:
                        raise DeployError(self.isolation_failure(deployment, check))
                    deployment.facts["enforcement"] = {"enforced": False, "reason": reason}
            deployment.facts["deployed_at"] = time.time()
            deployment.facts["fingerprint"] = self.fingerprint(setup, verify)
            deployment.save(self.state_file)
        except BaseException:
            if keep is not None:
                self.keep_produced(keep)
            self.teardown()
            raise
        return deployment

    def keep_produced(self, keep: Path) -> None:
        """Copy the text files a deploy wrote under this prefix's state directory (daemon logs,
        their configs; not sockets, pinned BPF objects or anything large, never the tunnel's
        keys and the configs that quote them) to *keep*/deploy."""
        for relative, data in produced_files(self.prefix).items():
            target = keep / "deploy" / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)

    @abstractmethod
    def prepare(self, setup: SetupSpec) -> Deployment:
        """Refuse *setup* when it cannot be built, remove the previous deployment; the plan."""

    @abstractmethod
    def build(self, deployment: Deployment) -> None:
        """Create *deployment* and record its facts (timings, technologies, MTUs)."""

    @abstractmethod
    def check_isolation(self, deployment: Deployment) -> dict[str, Any]:
        """Probe security.probe_plan: {"passed", "failures", ...} for meta.json."""

    def isolation_failure(self, deployment: Deployment, check: dict[str, Any]) -> str:
        """The DeployError message of a failed isolation check."""
        return f"setup {deployment.setup.id}: isolation check failed: {check['failures']}"

    def unenforced(self, deployment: Deployment, check: dict[str, Any]) -> str | None:
        """Why the failed isolation *check* means that the setup's filter is not enforced (a
        property of the platform, which policy_update records), or None: the deploy is broken
        (the default: the framework's own filters are enforced when they are applied)."""
        return None

    def pair_changer(self, deployment: Deployment) -> PairChanger | None:
        """The setup's filter technology when it allows and denies one pair live (its
        ``update_pair`` / ``remove_pair``), else None (filter ``none``: no whitelist to change)."""
        from seconetbench import technology

        tech = technology.get("filter", deployment.setup.filter)
        if not getattr(tech, "enforces_whitelist", False):
            return None
        if not (hasattr(tech, "update_pair") and hasattr(tech, "remove_pair")):
            return None
        return tech

    def clock_offsets(self, deployment: Deployment) -> dict[str, dict[str, float]] | None:
        """None: the containers run on this machine's kernel and read its clock (netns, docker,
        kind); a backend whose hosts are other machines measures their offsets (ssh)."""
        return None

    # ------------------------------------------------------------------ reuse
    def identity(self, setup: SetupSpec) -> dict[str, Any]:
        """What besides *setup* and verify decides what a deploy builds (fingerprint's *extra*)."""
        return {}

    def fingerprint(self, setup: SetupSpec, verify: bool) -> str:
        return fingerprint(setup, verify, self.identity(setup))

    def current(self) -> Deployment | None:
        return Deployment.load(self.state_file)

    @abstractmethod
    def healthy(self, deployment: Deployment) -> str | None:
        """None when the live testbed still matches *deployment*, else what is wrong."""

    def deploy_or_reuse(self, setup: SetupSpec, verify: bool = True, keep: Path | None = None,
                        measures_enforcement: bool = False) -> tuple[Deployment, bool]:
        current = self.current()
        if current is not None and current.facts.get("fingerprint") == self.fingerprint(setup, verify):
            # a deployment kept although its filter is not enforced serves only the workloads
            # that measure enforcement; for the others the deploy refuses it afresh
            usable = measures_enforcement or current.facts.get("enforcement", {}).get("enforced", True)
            if usable and self.healthy(current) is None:
                return current, True
        return self.deploy(setup, verify=verify, keep=keep, measures_enforcement=measures_enforcement), False

    @abstractmethod
    def teardown(self) -> dict[str, list[str]]:
        """Remove everything of this prefix; what was removed."""

    def finish(self) -> dict[str, list[str]]:
        """The end of an invocation (the workflow's last step, `seconetbench teardown`): the
        deployment and what the run keeps between targets (the vm backend's VMs)."""
        return self.teardown()

    def close(self) -> None:
        """Release what this object holds open (not the deployment, which outlives it)."""

    @classmethod
    def clean_remote(cls, testbed: dict[str, Any], prefix: str | None) -> dict[str, list[str]]:
        """`seconetbench clean --backend NAME`: remove what runs of *prefix* (every run when
        None) left beyond this machine, then this machine's part. Backends whose testbeds are
        all on this machine do not override it (clean removes their objects by prefix)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ observing
    def observed_namespaces(self, deployment: Deployment) -> list[str]:
        """The hosts' and containers' namespaces when they are on this machine (observe_hosts)."""
        if not self.capabilities.observe_hosts:
            return []
        return [h.netns for h in deployment.hosts if h.netns] + [c.netns for c in deployment.containers if c.netns]

    def traffic_namespaces(self, deployment: Deployment) -> list[str]:
        """The hosts' namespaces, which every packet of the setup crosses, when they are on this
        machine: the runner waits until they are quiet before a target (without them it records
        that it did not wait)."""
        if not self.capabilities.observe_hosts:
            return []
        return [h.netns for h in deployment.hosts if h.netns]

    # ------------------------------------------------------------------ the containers' files
    # Files a generator reads or writes inside a container (D-ITG's script and logs). With
    # shared_files a container sees this machine's files at the same path and nothing is copied;
    # a backend without it overrides these three.
    def remote_path(self, container: Container, local: Path) -> str:
        return str(local)

    def push(self, container: Container, local: Path) -> str:
        return self.remote_path(container, local)

    def pull(self, container: Container, remote: str, local: Path) -> Path:
        return local

    @abstractmethod
    def listening(self, container: Container, pid: int, port: int, udp: bool = False) -> bool:
        """Whether the server *pid* started in *container* listens on *port* yet."""

