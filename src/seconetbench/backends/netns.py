"""The embedded backend: hosts and containers are network namespaces on this machine.

A deployment is described by a state file under /run/seconetbench/<prefix>/ so that the next
target (another process: Snakemake runs each job in its own) can reuse it when the fingerprint
matches and a health check passes, instead of deploying again.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from seconetbench import preflight, probes, proc, security
from seconetbench.backends.base import (UNDERLAY_MTU, BaseBackend, Capabilities, Container, ContainerAccess,
                                        Deployment, Host, Underlay)
from seconetbench.errors import DeployError
from seconetbench.spec import SetupSpec
from seconetbench.testbed import cleanup, netlink

CONTAINER_SUBNET = "198.19.{host}.0/24"  # containers of host h (RFC 2544 range, see DESIGN.md)
UNDERLAY_SUBNET = "198.18.0.0/24"
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


def switch_port(prefix: str, host: int) -> str:
    """The underlay switch's port towards host *host* (the peer of its underlay interface)."""
    return f"{prefix}-s{host}"


def build_namespaces(deployment: Deployment) -> None:
    """The namespaces of the hosts this process builds (Deployment.local_hosts) and of their
    containers, IPv6 off, forwarding on in the hosts, loopback up. The ssh backend's host
    agents build their host's part with this too."""
    hosts = deployment.local_hosts()
    containers = deployment.local_containers()
    for host in hosts:
        netlink.create_netns(host.netns)
        netlink.set_sysctls(host.netns, HOST_SYSCTLS)
        netlink.set_sysctls(host.netns, NO_IPV6, optional=True)
    for container in containers:
        netlink.create_netns(container.netns)
        netlink.set_sysctls(container.netns, NO_IPV6, optional=True)
    for netns in [h.netns for h in hosts] + [c.netns for c in containers]:
        with netlink.route(netns) as sock:
            sock.link("set", index=netlink.index(sock, "lo"), state="up")


def missing_parts(namespaces: list[str], daemons: list[dict[str, Any]]) -> str | None:
    """What is gone of a deployment on this machine: one of *namespaces*, or one of *daemons*
    (recorded pid and start time: a pid reused by another process does not count); None when
    all are there."""
    import psutil  # here: validating a config reads the backends' capabilities only

    live = set(netlink.list_netns())
    missing = [n for n in namespaces if n not in live]
    if missing:
        return f"namespaces missing: {missing[:5]}"
    for daemon in daemons:
        try:
            alive = abs(psutil.Process(daemon["pid"]).create_time() - daemon["create_time"]) < 0.01
        except psutil.NoSuchProcess:
            alive = False
        if not alive:
            return f"daemon {daemon['name']} (pid {daemon['pid']}) is gone"
    return None


@dataclass(frozen=True)
class NamespaceAccess(ContainerAccess):
    """A container that is a network namespace on this machine: `ip netns exec` runs a command
    there with this machine's binaries (it execs, so the pid is the command's own)."""

    kind = "netns"
    netns: str

    def argv(self, argv: Sequence[str]) -> list[str]:
        return proc.in_netns(self.netns, argv)

    @property
    def local_netns(self) -> str:
        return self.netns


class NetnsBackend(BaseBackend):
    name = "netns"
    capabilities = Capabilities(observe_hosts=True, security_workloads=True, isolation_from_inside=False,
                                technologies_by_framework=True, shared_files=True, local_generators=True)

    # ------------------------------------------------------------------ planning
    def plan_host(self, setup: SetupSpec, index: int) -> Host:
        netns = self.names.host_netns(index)
        return Host(name=f"h{index}", index=index, netns=netns, access=NamespaceAccess(netns))

    def plan_container(self, setup: SetupSpec, host: Host, name: str, index: int, on_host: int) -> Container:
        netns = self.names.container_netns(name)
        return Container(name=name, index=index, host=host.name, netns=netns, ifname=self.names.container_if(),
                         ip=container_ip(host.index, on_host), access=NamespaceAccess(netns))

    def plan_underlay(self, setup: SetupSpec, hosts: list[Host]) -> Underlay | None:
        if setup.scenario != "multi":
            return None
        return Underlay(switch_netns=underlay_switch(self.prefix),
                        ports={h.name: switch_port(self.prefix, h.index) for h in hosts})

    # ------------------------------------------------------------------ deploy
    def prepare(self, setup: SetupSpec) -> Deployment:
        """Refuse what this machine cannot build, then remove the leftovers of this prefix."""
        probes.results(self.prefix)  # the run's probes decide the implementations (cached per run)
        for tech in preflight.setup_technologies(setup):
            reason = tech.incompatibility(setup) or "; ".join(
                filter(None, (r.missing() for r in tech.requires(setup))))
            if reason:
                raise DeployError(f"setup {setup.id}: {tech.kind} '{tech.name}' cannot run here: {reason}")
        cleanup.remove(self.prefix)
        return self.plan(setup)

    def build(self, deployment: Deployment) -> None:
        techs = preflight.setup_technologies(deployment.setup)
        started = time.monotonic()
        with netlink.pooled():
            self._build(deployment, techs, started)
            deployment.facts["mtu"] = self.link_mtus(deployment)
        rule_update = self._rule_update_time(deployment, techs[-1])
        if rule_update is not None:
            deployment.facts["timings"]["rule_update_s"] = rule_update
        # Workload processes come and go; what the registry holds now are the setup's daemons
        # (ovs-vswitchd, wireguard-go, charon, ...), which must outlive a reuse. (The isolation
        # check after this registers nothing.)
        deployment.facts["daemons"] = [
            {"pid": p.pid, "name": p.name(), "create_time": p.create_time()} for p in self.registry.recorded()]
        deployment.facts["implementation"] = preflight.implementation_facts(deployment.setup)
        probes.results(self.prefix)  # the cache file again: prepare's cleanup removed the state directory

    def identity(self, setup: SetupSpec) -> dict[str, Any]:
        # `auto` may resolve differently once a module is loaded: reuse only the same implementation
        return {"implementation": preflight.resolved_implementation(setup)}

    def check_isolation(self, deployment: Deployment) -> dict[str, Any]:
        return security.check_whitelist(deployment)

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
        build_namespaces(deployment)  # a method: the docker backend makes the containers itself

    def _underlay(self, deployment: Deployment) -> None:
        """Join the hosts through a switch namespace: bridge <prefix>-ul there, and per host h a veth
        <prefix>-u<h> (198.18.0.h/24) whose peer <prefix>-s<h> is a port of that bridge."""
        switch = deployment.underlay.switch_netns
        netlink.create_netns(switch)
        netlink.set_sysctls(switch, NO_IPV6, optional=True)
        with netlink.route(switch) as sock:
            sock.link("add", ifname=f"{self.prefix}-ul", kind="bridge")
            bridge = netlink.index(sock, f"{self.prefix}-ul")
        for host in deployment.hosts:
            host.underlay_dev = underlay_dev(self.prefix, host.index)
            host.underlay_ip = underlay_ip(host.index)
            port = deployment.underlay.ports[host.name]
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
    def healthy(self, deployment: Deployment) -> str | None:
        """None when the live testbed still matches *deployment*, else what is wrong."""
        wanted = self.observed_namespaces(deployment) + ([deployment.underlay.switch_netns] if deployment.underlay else [])
        problem = missing_parts(wanted, deployment.facts.get("daemons", []))
        if problem:
            return problem
        for container in deployment.containers:
            with netlink.route(container.netns) as sock:
                found = sock.link_lookup(ifname=container.ifname)
                if not found or sock.get_links(found[0])[0].get("state") != "up":
                    return f"{container.name}: interface {container.ifname} missing or down"
        return None

    # A container sees this machine's files (shared_files: BaseBackend's remote_path, push, pull).
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

    # ------------------------------------------------------------------ facts
    def link_mtus(self, deployment: Deployment) -> dict[str, dict[str, int]]:
        return {ns: {k: v for k, v in netlink.link_mtus(ns).items() if k != "lo"}
                for ns in self.observed_namespaces(deployment)}
