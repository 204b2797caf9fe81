"""The embedded backend: hosts and containers are network namespaces on this machine.

A deployment is described by a state file under /run/seconetbench/<prefix>/ so that the next
target (another process: Snakemake runs each job in its own) can reuse it when the fingerprint
matches and a health check passes, instead of deploying again.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import psutil

import seconetbench
from seconetbench import preflight, security
from seconetbench.backends.base import Container, Deployment, Host
from seconetbench.errors import DeployError
from seconetbench.spec import SetupSpec
from seconetbench.testbed import cleanup, netlink
from seconetbench.testbed.naming import Names, container_name

CONTAINER_SUBNET = "198.19.{host}.0/24"  # containers of host h (RFC 2544 range, see DESIGN.md)
UNDERLAY_SUBNET = "198.18.0.0/24"
UNDERLAY_MTU = 1500
# Multi-host: the hosts' routing must not drop packets that arrive on a tunnel device and leave
# on another (decapsulated traffic); loose/strict reverse-path filtering would, for some tunnels.
MULTI_HOST_SYSCTLS = {"net.ipv4.conf.all.rp_filter": 0, "net.ipv4.conf.default.rp_filter": 0}

HOST_SYSCTLS = {"net.ipv4.ip_forward": 1}
# IPv6 off in every namespace: no router solicitations or MLD reports in the measurements.
NO_IPV6 = {"net.ipv6.conf.all.disable_ipv6": 1, "net.ipv6.conf.default.disable_ipv6": 1}


def container_ip(host: int, index_on_host: int) -> str:
    return f"198.19.{host}.{index_on_host}"


def underlay_ip(host: int) -> str:
    return f"198.18.0.{host}"


def underlay_switch(prefix: str) -> str:
    """The namespace that plays the switch between the hosts of a multi-host setup: one bridge,
    one port per host. A capture there sees every packet on the wire, like a mirror port."""
    return f"{prefix}-ul"


def underlay_dev(prefix: str, host: int) -> str:
    """Host *host*'s underlay interface ('scnab12-u1'; at most 12 characters, hosts <= 16)."""
    return f"{prefix}-u{host}"


def fingerprint(setup: SetupSpec, verify: bool) -> str:
    data = {"setup": setup.to_dict(), "version": seconetbench.__version__, "verify": verify}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


class NetnsBackend:
    name = "netns"

    def __init__(self, prefix: str):
        self.prefix = prefix
        self.names = Names(prefix)
        self.state_dir = cleanup.state_dir(prefix)
        self.registry = cleanup.registry(prefix)

    @property
    def state_file(self) -> Path:
        return self.state_dir / "deployment.json"

    # ------------------------------------------------------------------ planning
    def plan(self, setup: SetupSpec) -> Deployment:
        """Names and addresses of every object of *setup*, without creating anything."""
        hosts = [Host(name=f"h{h}", index=h, netns=self.names.host_netns(h)) for h in range(1, setup.hosts + 1)]
        containers = []
        for index in range(1, setup.containers + 1):
            host = hosts[(index - 1) % len(hosts)] if setup.scenario == "multi" else hosts[0]
            on_host = sum(1 for c in containers if c.host == host.name) + 1
            name = container_name(index)
            containers.append(Container(
                name=name, index=index, host=host.name, netns=self.names.container_netns(name),
                ifname=self.names.container_if(), ip=container_ip(host.index, on_host)))
        pairs = [(containers[i].name, containers[i + 1].name) for i in range(0, len(containers), 2)]
        return Deployment(setup=setup, prefix=self.prefix, hosts=hosts, containers=containers, pairs=pairs)

    # ------------------------------------------------------------------ deploy
    def deploy(self, setup: SetupSpec, verify: bool = True) -> Deployment:
        """Remove leftovers of this prefix, build *setup* and prove its whitelist."""
        techs = preflight.setup_technologies(setup)
        for tech in techs:
            reason = tech.incompatibility(setup) or "; ".join(
                filter(None, (r.missing() for r in tech.requires(setup))))
            if reason:
                raise DeployError(f"setup {setup.id}: {tech.kind} '{tech.name}' cannot run here: {reason}")
        cleanup.remove(self.prefix)
        deployment = self.plan(setup)
        started = time.monotonic()
        try:
            with netlink.pooled():
                self._build(deployment, techs, started)
                deployment.facts["mtu"] = self.link_mtus(deployment)
            rule_update = self._rule_update_time(deployment, techs[-1])
            if rule_update is not None:
                deployment.facts["timings"]["rule_update_s"] = rule_update
            if verify:
                check = security.check_whitelist(deployment)
                deployment.facts["verification"] = check
                if not check["passed"]:
                    raise DeployError(f"setup {setup.id}: isolation check failed: {check['failures']}")
            # Workload processes come and go; what the registry holds now are the setup's
            # daemons (ovs-vswitchd, wireguard-go, charon, ...), which must outlive a reuse.
            deployment.facts["daemons"] = [
                {"pid": p.pid, "name": p.name(), "create_time": p.create_time()} for p in self.registry.recorded()]
            deployment.facts["deployed_at"] = time.time()
            deployment.facts["fingerprint"] = fingerprint(setup, verify)
            deployment.save(self.state_file)
        except BaseException:
            self.teardown()
            raise
        return deployment

    @staticmethod
    def _rule_update_time(deployment: Deployment, filter_tech) -> float | None:
        """The ephemeral-container case: seconds to whitelist one more pair live. A pair that is
        not whitelisted is admitted, timed, and taken out again before the isolation check,
        which then proves that the whitelist is back as it was (it probes that very pair)."""
        if not (hasattr(filter_tech, "update_pair") and hasattr(filter_tech, "remove_pair")):
            return None
        outsiders = [(s, d) for s, d, _ in security.probe_plan(deployment) if not deployment.allowed(s, d)]
        if not outsiders:
            return None  # two containers: every pair is whitelisted
        a, b = outsiders[0]
        seconds = filter_tech.update_pair(deployment, a, b)
        filter_tech.remove_pair(deployment, a, b)
        return round(seconds, 6)

    def _build(self, deployment: Deployment, techs: list, started: float) -> None:
        self._namespaces(deployment)
        if deployment.setup.scenario == "multi":
            self._underlay(deployment)
        timings = {}
        for tech in techs:
            t0 = time.monotonic()
            tech.apply(deployment)
            timings[f"{tech.kind}_apply_s"] = round(time.monotonic() - t0, 6)
            deployment.facts[tech.kind] = {"name": tech.name, **tech.describe(deployment)}
        deployment.facts["timings"] = {**timings, "deploy_s": round(time.monotonic() - started, 6)}

    def _namespaces(self, deployment: Deployment) -> None:
        for host in deployment.hosts:
            netlink.create_netns(host.netns)
            netlink.set_sysctls(host.netns, HOST_SYSCTLS)
            netlink.set_sysctls(host.netns, NO_IPV6, optional=True)
        for container in deployment.containers:
            netlink.create_netns(container.netns)
            netlink.set_sysctls(container.netns, NO_IPV6, optional=True)
        for netns in [h.netns for h in deployment.hosts] + [c.netns for c in deployment.containers]:
            with netlink.route(netns) as sock:
                sock.link("set", index=netlink.index(sock, "lo"), state="up")

    def _underlay(self, deployment: Deployment) -> None:
        """Join the hosts through a switch namespace: bridge <prefix>-ul there, and per host h a veth
        <prefix>-u<h> (198.18.0.h/24) whose peer <prefix>-s<h> is a port of that bridge."""
        switch = underlay_switch(self.prefix)
        netlink.create_netns(switch)
        netlink.set_sysctls(switch, NO_IPV6, optional=True)
        with netlink.route(switch) as sock:
            sock.link("add", ifname=f"{self.prefix}-ul", kind="bridge")
            bridge = netlink.index(sock, f"{self.prefix}-ul")
        for host in deployment.hosts:
            host.underlay_dev = underlay_dev(self.prefix, host.index)
            host.underlay_ip = underlay_ip(host.index)
            port = f"{self.prefix}-s{host.index}"  # its switch port
            with netlink.route(host.netns) as sock:
                sock.link("add", ifname=host.underlay_dev, kind="veth", peer={"ifname": port, "net_ns_fd": switch})
                index = netlink.index(sock, host.underlay_dev)
                sock.addr("add", index=index, address=host.underlay_ip, prefixlen=24)
                sock.link("set", index=index, mtu=UNDERLAY_MTU, state="up")
            with netlink.route(switch) as sock:
                sock.link("set", index=netlink.index(sock, port), master=bridge, state="up")
            netlink.set_sysctls(host.netns, MULTI_HOST_SYSCTLS)
        with netlink.route(switch) as sock:
            sock.link("set", index=bridge, state="up")

    # ------------------------------------------------------------------ reuse
    def current(self) -> Deployment | None:
        return Deployment.load(self.state_file)

    def healthy(self, deployment: Deployment) -> str | None:
        """None when the live testbed still matches *deployment*, else what is wrong."""
        live = set(netlink.list_netns())
        wanted = [h.netns for h in deployment.hosts] + [c.netns for c in deployment.containers]
        if deployment.setup.scenario == "multi":
            wanted.append(underlay_switch(self.prefix))
        missing = [n for n in wanted if n not in live]
        if missing:
            return f"namespaces missing: {missing[:5]}"
        for daemon in deployment.facts.get("daemons", []):
            try:
                alive = abs(psutil.Process(daemon["pid"]).create_time() - daemon["create_time"]) < 0.01
            except psutil.NoSuchProcess:
                alive = False
            if not alive:
                return f"daemon {daemon['name']} (pid {daemon['pid']}) is gone"
        for container in deployment.containers:
            with netlink.route(container.netns) as sock:
                found = sock.link_lookup(ifname=container.ifname)
                if not found or sock.get_links(found[0])[0].get("state") != "up":
                    return f"{container.name}: interface {container.ifname} missing or down"
        return None

    def deploy_or_reuse(self, setup: SetupSpec, verify: bool = True) -> tuple[Deployment, bool]:
        current = self.current()
        if current is not None and current.facts.get("fingerprint") == fingerprint(setup, verify):
            if self.healthy(current) is None:
                return current, True
        return self.deploy(setup, verify=verify), False

    # Files a generator reads or writes inside a container. Here (and in the docker backend,
    # which mounts the results directory at the same path) a container sees this machine's
    # files, so nothing is copied; a pod has a file system of its own (backends/kubernetes.py).
    @staticmethod
    def remote_path(container: Container, local: Path) -> str:
        """Where *container* sees (or should write) the file *local* of this machine."""
        return str(local)

    @staticmethod
    def push(container: Container, local: Path) -> str:
        """Make *local* readable inside *container*; returns the path to use there."""
        return str(local)

    @staticmethod
    def pull(container: Container, remote: str, local: Path) -> Path:
        """Bring the file *remote* that a generator wrote in *container* to *local*."""
        return local

    @staticmethod
    def listening(container: Container, pid: int, port: int, udp: bool = False) -> bool:
        """Whether the server *pid* started in *container* listens on *port* yet (its namespace's
        socket table, read from /proc: the process is local)."""
        from seconetbench.workloads.base import listening

        return listening(pid, port, udp)

    # ------------------------------------------------------------------ teardown
    def teardown(self) -> dict[str, list[str]]:
        current = self.current()
        if current is not None:
            for tech in reversed(preflight.setup_technologies(current.setup)):
                try:
                    tech.remove(current)
                except Exception:  # noqa: BLE001 - removing the namespaces below is what counts
                    pass
        return cleanup.remove(self.prefix)

    def traffic_namespaces(self, deployment: Deployment) -> list[str]:
        """Local namespaces that every packet of the setup crosses (its hosts): the runner waits
        until they are quiet before a target."""
        return [host.netns for host in deployment.hosts]

    def close(self) -> None:
        """Release what this object holds open (not the deployment, which outlives it). The
        netns backend holds nothing between calls."""

    # ------------------------------------------------------------------ facts
    def link_mtus(self, deployment: Deployment) -> dict[str, dict[str, int]]:
        namespaces = [h.netns for h in deployment.hosts] + [c.netns for c in deployment.containers]
        return {ns: {k: v for k, v in netlink.link_mtus(ns).items() if k != "lo"} for ns in namespaces}
