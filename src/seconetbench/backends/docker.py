"""The docker backend: the containers are real Docker containers, wired by the framework.

Hosts stay network namespaces, as in the netns backend (a host is the emulated machine). Each
container of the plan is ``docker run -d --network none ... sleep infinity`` on the run's engine
(engines/dockerd.py, or testbed.docker.host), and its network namespace is then attached under
the planned name (/run/netns/<prefix>-c01, a bind mount of /proc/<pid>/ns/net, as
``ip netns attach`` does). From there on every solution, filter, tunnel, monitor and the
isolation check work unchanged on ``container.netns``: this module only replaces how container
namespaces come to be, and the generators run inside the containers through their
:class:`NsenterAccess` (nsenter into the container's net, mount, uts and ipc namespaces, so
they use the image's binaries; without --pid nsenter execs, so the registered pid is the
generator itself). The results directory is bind-mounted at the same absolute path, so the
paths of raw outputs mean the same inside and outside.

The engine must be local (same kernel): namespaces are entered by pid.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any


from seconetbench.backends.base import Container, Deployment
from seconetbench.backends.netns import NO_IPV6, NamespaceAccess, NetnsBackend
from seconetbench.engines import dockerd
from seconetbench.engines import image as base_image
from seconetbench.errors import DeployError
from seconetbench.spec import SetupSpec
from seconetbench.testbed import cleanup, netlink

if TYPE_CHECKING:
    import docker

ENGINE_HOOK = "docker-engine"  # cleanup.HOOKS: the engine survives deploys, not teardowns
# Containers are created this many at a time: dockerd handles concurrent creates, and most of
# a `docker run` (0.3-0.5 s) is waiting for containerd and runc.
START_WORKERS = 4
CAPABILITIES = ["NET_ADMIN", "NET_RAW"]  # a person debugging inside may change routes, ping


@dataclasses.dataclass(frozen=True)
class NsenterAccess(NamespaceAccess):
    """A Docker container whose network namespace is attached here as *netns*: commands run in
    its net, mount, UTS and IPC namespaces (the image's binaries), entered through its init *pid*."""

    kind = "nsenter"
    pid: int

    def argv(self, argv: Sequence[str]) -> list[str]:
        return ["nsenter", "--target", str(self.pid), "--net", "--mount", "--uts", "--ipc", "--", *argv]


class DockerBackend(NetnsBackend):
    """The netns backend's capabilities: the containers' namespaces are this machine's, and the
    results directory is mounted at the same path (shared_files)."""

    name = "docker"

    def __init__(self, prefix: str, testbed: dict[str, Any] | None = None, results_dir: Path | None = None):
        super().__init__(prefix)
        settings = (testbed or {}).get("docker") or {}
        self.host: str | None = settings.get("host")  # None: the engine we start ourselves
        self.image: str | None = settings.get("image")  # None: the image we build
        self.results_dir = Path(results_dir).resolve() if results_dir else None
        self.engine = None if self.host else dockerd.DockerEngine(prefix)
        self._client: docker.DockerClient | None = None

    # ------------------------------------------------------------------ engine
    @property
    def url(self) -> str:
        return self.engine.url if self.engine is not None else self.host

    def client(self, start: bool = True) -> docker.DockerClient:
        """The engine's client; with *start*, the managed engine is started when it is not
        running (never an engine given by testbed.docker.host)."""
        if self.engine is not None:
            if start:
                self.engine.ensure()
            elif not self.engine.running():
                raise DeployError(f"the docker engine of run {self.prefix} is not running "
                                  f"(log: {self.engine.log})")
        if self._client is None:
            self._client = dockerd.connect(self.url)
        return self._client

    # ------------------------------------------------------------------ deploy
    def deploy(self, setup: SetupSpec, verify: bool = True, keep: Path | None = None,
               measures_enforcement: bool = False) -> Deployment:
        # The engine first, so its start is not counted as deploy time; then the previous
        # setup's containers through the API (the generic cleanup would have to kill their
        # `sleep`, which ignores SIGTERM as a pid 1, one grace period at a time). The generic
        # cleanup that NetnsBackend.deploy starts with must leave the engine running.
        dockerd.remove_objects(self.client(), self.prefix)
        with cleanup.keeping(ENGINE_HOOK):
            return super().deploy(setup, verify=verify, keep=keep, measures_enforcement=measures_enforcement)

    def _namespaces(self, deployment: Deployment) -> None:
        # The hosts exactly as the netns backend makes them; the containers below.
        super()._namespaces(dataclasses.replace(deployment, containers=[]))
        client = self.client()
        started = time.monotonic()
        image = base_image.ensure(client, self.image)
        image_s = time.monotonic() - started
        if self.results_dir is not None:
            self.results_dir.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        with ThreadPoolExecutor(START_WORKERS) as pool:
            records = list(pool.map(lambda c: self._run(client, image["tag"], c), deployment.containers))
        from pyroute2 import netns as pyroute2_netns  # here: validating a docker config needs no pyroute2

        for container, record in zip(deployment.containers, records):
            pyroute2_netns.attach(container.netns, record["pid"])
            netlink.set_sysctls(container.netns, NO_IPV6, optional=True)
            with netlink.route(container.netns) as sock:
                sock.link("set", index=netlink.index(sock, "lo"), state="up")
            container.access = NsenterAccess(container.netns, record["pid"])
        containers_s = time.monotonic() - started
        engine = dockerd.describe_engine(client, self.url, managed=self.engine is not None)
        deployment.facts["docker"] = {
            "engine": engine,
            "runtime": engine["default_runtime"],
            "image": image,
            "containers": {c.name: r for c, r in zip(deployment.containers, records)},
            "results_mount": str(self.results_dir) if self.results_dir else None,
            "timings": {"image_s": round(image_s, 3), "containers_s": round(containers_s, 3)},
        }

    def _run(self, client: docker.DockerClient, image: str, container: Container) -> dict[str, Any]:
        """Start one container with no network of Docker's; its id and init pid."""
        volumes = {str(self.results_dir): {"bind": str(self.results_dir), "mode": "rw"}} if self.results_dir else {}
        started = client.containers.run(
            image, ["sleep", "infinity"], detach=True, network_mode="none", name=f"{self.prefix}-{container.name}",
            hostname=container.name, labels={dockerd.LABEL: self.prefix, "seconetbench.container": container.name},
            cap_add=CAPABILITIES, volumes=volumes)
        started.reload()
        state = started.attrs["State"]
        if not state.get("Running") or not state.get("Pid"):
            raise DeployError(f"container {started.name} is not running after start: {state.get('Error') or state}")
        return {"id": started.id, "pid": state["Pid"], "name": started.name}

    # ------------------------------------------------------------------ reuse
    def healthy(self, deployment: Deployment) -> str | None:
        """The netns backend's checks, and that the engine answers and every container still
        runs with the same id and init pid (a restarted container has a new namespace)."""
        import docker

        try:
            client = self.client(start=False)
            for name, record in deployment.facts.get("docker", {}).get("containers", {}).items():
                state = client.containers.get(record["id"]).attrs["State"]
                if not state.get("Running") or state.get("Pid") != record["pid"]:
                    return f"container {record['name']} is not running with pid {record['pid']}"
        except docker.errors.NotFound as error:
            return f"a container is gone: {error}"
        except (DeployError, docker.errors.DockerException) as error:
            return f"the docker engine at {self.url} does not answer: {error}"
        return super().healthy(deployment)

    def close(self) -> None:
        """Close the engine client's connections: targets are measured one after another in the
        Snakemake process, each with a backend object of its own."""
        if self._client is not None:
            self._client.close()
            self._client = None

    # ------------------------------------------------------------------ teardown
    def teardown(self) -> dict[str, list[str]]:
        """Remove the run's containers, then what the netns backend removes; outside a deploy
        that includes the managed engine (cleanup's docker-engine hook stops it)."""
        removed: list[str] = []
        if self.engine is None or self.engine.running():
            try:
                removed = dockerd.remove_objects(self.client(start=False), self.prefix)
            except Exception:  # noqa: BLE001 - cleanup.remove below still ends what is left
                pass
        result = super().teardown()
        self.close()
        result["docker"] = removed + result.get("docker", [])
        return result
