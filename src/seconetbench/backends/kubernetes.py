"""The kubernetes backend: sender/sink pods and NetworkPolicies on a cluster, whose CNI is the
network solution under test (docs/kubernetes.md).

A deployment is one namespace ``<namespace_prefix><run prefix>`` holding the pods (one per
container: c01, c02, ...) and, for filter ``networkpolicy``, default deny plus the whitelist as
NetworkPolicy objects (k8s_manifests.py). Pods are placed explicitly: all on one node for
``single``, the two ends of every pair on different nodes for ``multi``. Workloads run in the pods
through the API server's exec (every container's access is a k8s_exec.PodAccess). Teardown
deletes the namespaces of the run prefix by label selector and waits until they are gone;
``clean()`` does the same for every run (``seconetbench clean --backend kubernetes``).

The CNI is detected (k8s_cluster_facts.py) and recorded; a setup whose solution names a CNI
(``calico``, ``cilium``, ...) runs only on a cluster that runs that CNI, so a results directory
never mixes up which cluster produced a number. Several clusters in one sweep: map solution names
to kube contexts in ``testbed.kubernetes.contexts``.

At every deploy the isolation check probes the same plan as the netns backend's
(security.probe_plan), over ICMP, TCP and UDP, from inside the pods. A cluster whose CNI does not
enforce NetworkPolicy fails it for filter ``networkpolicy``, and the setup is not measured, except
by a workload that measures enforcement (policy_update: :meth:`KubernetesBackend.unenforced`,
:class:`NetworkPolicyChanger`).
"""

from __future__ import annotations

import base64
import concurrent.futures
import json
import os
import secrets
import time
from pathlib import Path
from typing import Any

from seconetbench import preflight, security
from seconetbench.backends import k8s_cluster_facts as facts_of
from seconetbench.backends import k8s_exec
from seconetbench.backends import k8s_manifests as manifests
from seconetbench.backends.base import BaseBackend, Capabilities, Container, Deployment, Host
from seconetbench.errors import DeployError, InvalidValueError, ToolFailed, WorkloadError
from seconetbench.spec import SetupSpec
from seconetbench.testbed import cleanup

DEFAULTS: dict[str, Any] = {
    "kubeconfig": None,  # null = $KUBECONFIG, else ~/.kube/config
    "context": None,  # null = the kubeconfig's current context
    "contexts": {},  # solution name -> context (several clusters = several CNIs in one sweep)
    "namespace_prefix": "seconetbench-",
    "image": None,  # null = the image engines/image.py builds (local clusters)
    "image_pull_policy": "IfNotPresent",
    "nodes": [],  # node names to use, in order; empty = every Ready, schedulable node
    "ready_timeout_s": 120,
}
# Where the generators' files live in a pod (D-ITG scripts and logs, copied in and out by exec):
# a directory every image has, because ITGRecv does not create one for its log (it then drops
# the signalling connection: "Receiver has shut down the connection gracefully").
POD_FILES_DIR = "/tmp"
# A 100-flow D-ITG log is ~14 MB, ~19 MB as base64 through the exec stream.
PULL_TIMEOUT_S = 120


def settings(testbed: dict[str, Any] | None) -> dict[str, Any]:
    return {**DEFAULTS, **((testbed or {}).get("kubernetes") or {})}


def default_image() -> str:
    from seconetbench.engines import image

    return image.tag()


def _plain(api_client, obj: Any) -> Any:
    """An API object in its JSON shape (camelCase), as k8s_cluster_facts expects."""
    return api_client.sanitize_for_serialization(obj)


class KubernetesBackend(BaseBackend):
    """Pods on a cluster: nothing of them is on this machine to observe or to enter, the CNI
    wires them, and files are copied through exec."""

    name = "kubernetes"
    capabilities = Capabilities(observe_hosts=False, security_workloads=False, isolation_from_inside=True,
                                technologies_by_framework=False, shared_files=False, local_generators=False)
    STATE_FILE = "kubernetes-deployment.json"

    def __init__(self, prefix: str, testbed: dict[str, Any] | None = None, results_dir: Path | None = None):
        super().__init__(prefix)
        self.settings = settings(testbed)
        self.results_dir = results_dir
        self.kubeconfig = self.settings["kubeconfig"] or os.environ.get("KUBECONFIG") or str(Path.home() / ".kube" / "config")
        # The namespace of the current deployment. Each deploy gets a fresh name: reusing the
        # name of a namespace just deleted lets the kubelet route an exec to the old pod of the
        # same name ('container not found'), seen with 1.20.
        self.namespace = manifests.namespace_name(self.settings["namespace_prefix"], prefix)
        self.context = ""  # the kube context of the current deployment ("": the kubeconfig's current one)
        self._clients: dict[str, Any] = {}

    # ------------------------------------------------------------------ cluster access
    def context_for(self, setup: SetupSpec | None) -> str:
        """The kube context of *setup*: testbed.kubernetes.contexts[solution], else
        testbed.kubernetes.context, else the kubeconfig's current context."""
        if setup is not None and setup.solution in self.settings["contexts"]:
            return self.settings["contexts"][setup.solution]
        if self.settings["context"]:
            return self.settings["context"]
        from kubernetes import config

        try:
            _, current = config.list_kube_config_contexts(config_file=self.kubeconfig)
        except (config.ConfigException, FileNotFoundError, OSError) as error:
            raise DeployError(f"no usable kubeconfig at {self.kubeconfig} ({error}); set testbed.kubernetes.kubeconfig "
                              "or KUBECONFIG (for the local cluster: `python -m seconetbench.engines.localk8s up`)") from None
        if not current:
            raise DeployError(f"kubeconfig {self.kubeconfig} has no current context; set testbed.kubernetes.context")
        return current["name"]

    def clients(self, context: str) -> dict[str, Any]:
        if context not in self._clients:
            from kubernetes import client, config

            try:
                api_client = config.new_client_from_config(config_file=self.kubeconfig, context=context)
            except (config.ConfigException, FileNotFoundError, OSError) as error:
                raise DeployError(f"kube context '{context}' in {self.kubeconfig}: {error}") from None
            self._clients[context] = {"api": api_client, "core": client.CoreV1Api(api_client),
                                      "apps": client.AppsV1Api(api_client), "net": client.NetworkingV1Api(api_client),
                                      "version": client.VersionApi(api_client)}
        return self._clients[context]

    # ------------------------------------------------------------------ facts
    def cluster_facts(self, context: str) -> dict[str, Any]:
        """Server version, CNI (name, images, tunnel/encryption mode) and nodes of *context*."""
        from kubernetes.client.exceptions import ApiException

        c = self.clients(context)
        try:
            version = c["version"].get_code()
            nodes = [_plain(c["api"], n) for n in c["core"].list_node().items]
            daemonsets = [_plain(c["api"], d) for d in c["apps"].list_daemon_set_for_all_namespaces().items]
            namespaces = {"kube-system"} | {d["metadata"]["namespace"] for d in daemonsets}
            configmaps = [_plain(c["api"], m) for ns in sorted(namespaces)
                          for m in c["core"].list_namespaced_config_map(ns).items]
        except ApiException as error:
            raise DeployError(f"kube context '{context}': reading the cluster failed: {error.status} {error.reason}: "
                              f"{error.body[:300] if error.body else ''}") from None
        except Exception as error:  # connection refused, TLS, DNS: name the context and the cause
            raise DeployError(f"kube context '{context}' ({self.kubeconfig}) unreachable: {error}") from None
        cni = facts_of.detect_cni(daemonsets, configmaps, nodes)
        local = facts_of._configmap(configmaps, *facts_of.LOCAL_CNI_CONFIGMAP[:1], rf"^{facts_of.LOCAL_CNI_CONFIGMAP[1]}$")
        return {"context": context, "server_version": version.git_version, "cni": cni,
                "nodes": facts_of.node_facts(nodes),
                "cluster_kind": local.get("cluster_kind", "user-cluster")}

    # ------------------------------------------------------------------ planning
    def plan(self, setup: SetupSpec, context: str = "") -> Deployment:
        """Pods of *setup* in the current namespace of kube *context*; hosts h1, h2, ... stand for
        the nodes chosen at deploy (facts.kubernetes.host_nodes). Pod IPs come at deploy."""
        self.context = context
        return super().plan(setup)

    def plan_container(self, setup: SetupSpec, host: Host, name: str, index: int, on_host: int) -> Container:
        return Container(name=name, index=index, host=host.name, netns=None, ifname="eth0", ip="",
                         access=k8s_exec.PodAccess(self.kubeconfig, self.context, self.namespace, name))

    def objects(self, deployment: Deployment, nodes: list[str], image: str) -> list[dict[str, Any]]:
        """Every object of *deployment* in creation order: namespace, policies, pods."""
        setup = deployment.setup
        ns = self.namespace
        objects = [manifests.namespace(ns, self.prefix, setup.id)]
        if setup.filter == "networkpolicy":
            objects += manifests.whitelist_policies(ns, self.prefix, setup.id, [c.name for c in deployment.containers],
                                                    deployment.pairs)
        partner = {a: b for a, b in deployment.pairs} | {b: a for a, b in deployment.pairs}
        for c in deployment.containers:
            sender = any(c.name == a for a, _ in deployment.pairs)
            objects.append(manifests.pod(
                name=c.name, namespace=ns, prefix=self.prefix, setup_id=setup.id, image=image,
                pull_policy=self.settings["image_pull_policy"], node=nodes[deployment.host(c.host).index - 1],
                pair=Deployment.pair_name(*(sorted((c.name, partner[c.name])))), role="sender" if sender else "sink",
                partner=partner[c.name] if setup.scenario == "multi" else None))
        return objects

    def choose_nodes(self, setup: SetupSpec, cluster: dict[str, Any]) -> list[str]:
        usable = [n["name"] for n in cluster["nodes"] if n["ready"] and n["schedulable"]]
        wanted = self.settings["nodes"]
        if wanted:
            missing = [n for n in wanted if n not in usable]
            if missing:
                raise DeployError(f"testbed.kubernetes.nodes {missing} are not Ready and schedulable in context "
                                  f"'{cluster['context']}' (usable: {usable})")
            usable = list(wanted)
        if len(usable) < setup.hosts:
            raise DeployError(
                f"setup {setup.id} needs {setup.hosts} Ready, schedulable nodes (pairs across nodes); context "
                f"'{cluster['context']}' has {len(usable)}: {usable}. Run multi setups on a multi-node cluster, "
                "or only single setups here")
        return usable[:setup.hosts]

    # ------------------------------------------------------------------ deploy
    def prepare(self, setup: SetupSpec) -> Deployment:
        """Refuse a setup the cluster cannot run (technology, CNI, nodes), then delete the run's
        previous namespaces and plan the pods in a fresh one. What build needs from the cluster
        goes into facts.kubernetes."""
        reason = preflight.incompatibility(setup)
        if reason:
            raise DeployError(f"setup {setup.id} cannot run on a cluster: {reason}; use solution 'cni' "
                              "(or a CNI name mapped in testbed.kubernetes.contexts)")
        context = self.context_for(setup)
        cluster = self.cluster_facts(context)
        cni = cluster["cni"]
        if setup.solution != "cni" and cni["name"].replace("-", "_") != setup.solution:
            raise DeployError(f"setup {setup.id}: context '{context}' runs CNI '{cni['name']}' "
                              f"({cni['source']}), not '{setup.solution}'; fix testbed.kubernetes.contexts")
        nodes = self.choose_nodes(setup, cluster)
        self.teardown()
        self.namespace = manifests.namespace_name(self.settings["namespace_prefix"], f"{self.prefix}-{secrets.token_hex(3)}")
        deployment = self.plan(setup, context)
        deployment.facts["solution"] = {"name": setup.solution, "cni": cni}
        deployment.facts["kubernetes"] = {**cluster, "namespace": self.namespace, "kubeconfig": self.kubeconfig,
                                          "image": self.settings["image"] or default_image(), "host_nodes": nodes}
        return deployment

    def build(self, deployment: Deployment) -> None:
        """Create the namespace, policies and pods; wait until every pod runs; record its IP,
        node and MTU."""
        facts = deployment.facts["kubernetes"]
        context, nodes, image = facts["context"], facts["host_nodes"], facts["image"]
        started = time.monotonic()
        objects = self.objects(deployment, nodes, image)
        self._create(context, objects)
        created = time.monotonic()
        pods = self._wait_running(context, deployment)
        running = time.monotonic()
        for c in deployment.containers:
            c.ip = pods[c.name]["ip"]
        mtus = self._pod_mtus(context, deployment)
        deployment.facts["filter"] = {"name": deployment.setup.filter, "policies": [
            o["metadata"]["name"] for o in objects if o["kind"] == "NetworkPolicy"]}
        facts.update({"placement": {c.name: pods[c.name]["node"] for c in deployment.containers},
                      "pod_ips": {c.name: c.ip for c in deployment.containers}, "pod_mtu": mtus})
        deployment.facts["mtu"] = {f"{self.namespace}/{c.name}": {"eth0": mtus.get(c.name)} for c in deployment.containers}
        deployment.facts["timings"] = {"create_s": round(created - started, 6),
                                       "pods_running_s": round(running - created, 6),
                                       "deploy_s": round(time.monotonic() - started, 6)}

    def isolation_failure(self, deployment: Deployment, check: dict[str, Any]) -> str:
        if deployment.setup.filter != "networkpolicy":
            return super().isolation_failure(deployment, check)
        return (f"{self.not_enforcing(deployment, check)}; not measured. Use a policy-enforcing CNI "
                "(docs/kubernetes.md) or filter 'none'")

    @staticmethod
    def not_enforcing(deployment: Deployment, check: dict[str, Any]) -> str:
        facts = deployment.facts["kubernetes"]
        return (f"setup {deployment.setup.id}: CNI '{facts['cni']['name']}' of context '{facts['context']}' does not "
                f"enforce NetworkPolicy (isolation check: {len(check['failures'])} violations, e.g. "
                f"{check['failures'][:3]})")

    def unenforced(self, deployment: Deployment, check: dict[str, Any]) -> str | None:
        """For filter networkpolicy, when every failure of the check is a non-whitelisted path
        that got through (the CNI ignores the policies; a whitelisted path that is cut is a broken
        deploy): the refusal's message, which policy_update records instead."""
        if deployment.setup.filter != "networkpolicy" or not check["failures"]:
            return None
        if not all(failure.endswith("reachable but not whitelisted") for failure in check["failures"]):
            return None
        return self.not_enforcing(deployment, check)

    def pair_changer(self, deployment: Deployment) -> NetworkPolicyChanger | None:
        """For filter networkpolicy: one NetworkPolicy per pair, created (allow) and deleted
        (deny) through the API, each call timed. Filter none: None (no whitelist to change)."""
        if deployment.setup.filter != "networkpolicy":
            return None
        return NetworkPolicyChanger(self, deployment)

    def _create(self, context: str, objects: list[dict[str, Any]], dry_run: bool = False) -> None:
        """Create *objects* in order. Pods are retried while the namespace's ServiceAccount
        'default' does not exist yet (the controller-manager creates it a moment later, and
        ServiceAccount admission rejects pods until then)."""
        from kubernetes.client.exceptions import ApiException

        c = self.clients(context)
        options = {"dry_run": "All"} if dry_run else {}
        for obj in objects:
            kind, ns = obj["kind"], obj["metadata"].get("namespace")
            deadline = time.monotonic() + 30
            while True:
                try:
                    if kind == "Namespace":
                        c["core"].create_namespace(obj, **options)
                    elif kind == "Pod":
                        c["core"].create_namespaced_pod(ns, obj, **options)
                    elif kind == "NetworkPolicy":
                        c["net"].create_namespaced_network_policy(ns, obj, **options)
                    else:
                        raise InvalidValueError(f"unexpected kind {kind}")
                    break
                except ApiException as error:
                    waiting_for_sa = error.status in (403, 500) and "service account" in (error.body or "").lower() \
                        or "serviceaccount" in (error.body or "").lower()
                    if waiting_for_sa and time.monotonic() < deadline:
                        time.sleep(0.2)
                        continue
                    raise DeployError(f"creating {kind} {obj['metadata']['name']} in context '{context}' failed: "
                                      f"{error.status} {error.reason}: {_message(error)}") from None

    def dry_run(self, setup: SetupSpec, nodes: list[str] | None = None, image: str | None = None) -> list[str]:
        """Server-side dry run of *setup*'s objects (the namespace is created for real first,
        because a dry run does not persist it, and deleted again); the names that passed."""
        context = self.context_for(setup)
        nodes = nodes or [f"node-{h}" for h in range(1, setup.hosts + 1)]
        deployment = self.plan(setup, context)
        objects = self.objects(deployment, nodes, image or self.settings["image"] or "seconetbench/base:dry-run")
        self._create(context, objects[:1])
        try:
            self._create(context, objects[1:], dry_run=True)
        finally:
            self.teardown()
        return [f"{o['kind']}/{o['metadata']['name']}" for o in objects]

    def _wait_running(self, context: str, deployment: Deployment) -> dict[str, dict[str, str]]:
        core = self.clients(context)["core"]
        deadline = time.monotonic() + self.settings["ready_timeout_s"]
        while True:
            pods = {p.metadata.name: p for p in core.list_namespaced_pod(self.namespace).items}
            ready = {n: p for n, p in pods.items() if p.status.phase == "Running" and p.status.pod_ip and all(
                s.ready for s in p.status.container_statuses or [])}
            if len(ready) == len(deployment.containers):
                return {n: {"ip": p.status.pod_ip, "node": p.spec.node_name} for n, p in ready.items()}
            failed = {n: p for n, p in pods.items() if p.status.phase in ("Failed", "Succeeded")}
            if failed or time.monotonic() > deadline:
                stuck = {n: _pod_problem(p) for n, p in pods.items() if n not in ready}
                raise DeployError(f"setup {deployment.setup.id}: pods not Running within "
                                  f"{self.settings['ready_timeout_s']} s in context '{context}': {stuck}")
            time.sleep(0.25)

    def _exec(self, context: str, pod: str, argv: list[str], timeout_s: float = 30,
              namespace: str | None = None) -> tuple[int, str, str]:
        # A client of its own per exec: the client's stream() swaps its ApiClient's request
        # method while it runs, which breaks concurrent calls (the probes run in threads) and
        # the ordinary calls that share that ApiClient.
        from kubernetes import client

        core = client.CoreV1Api(client.ApiClient(self.clients(context)["api"].configuration))
        try:
            return k8s_exec.run(core, namespace or self.namespace, pod, argv, timeout_s=timeout_s)
        except Exception as error:  # noqa: BLE001 - the API's words, with the pod named
            if isinstance(error, ToolFailed):  # timed out: already names the pod
                raise
            raise DeployError(f"exec in pod {namespace or self.namespace}/{pod} (context '{context}') failed: {error}") from None
        finally:
            core.api_client.close()

    def _pod_mtus(self, context: str, deployment: Deployment) -> dict[str, int | None]:
        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
            results = dict(zip([c.name for c in deployment.containers], pool.map(
                lambda c: self._exec(context, c.name, ["cat", "/sys/class/net/eth0/mtu"]), deployment.containers)))
        return {name: int(out.strip()) if code == 0 and out.strip().isdigit() else None
                for name, (code, out, _) in results.items()}

    # ------------------------------------------------------------------ isolation check
    def check_isolation(self, deployment: Deployment) -> dict[str, Any]:
        """security.probe_plan over ICMP, TCP and UDP, probed from inside the pods."""
        def exec_in(container: Container, argv: list[str], timeout_s: float) -> tuple[int, str, str]:
            pod = self._pod(container)
            return self._exec(pod.context, pod.pod, argv, timeout_s, namespace=pod.namespace)

        return security.check_whitelist_by_exec(deployment, exec_in)

    # ------------------------------------------------------------------ reuse
    def current(self) -> Deployment | None:
        """The recorded deployment; its namespace and context become this object's."""
        deployment = super().current()
        if deployment is None:
            return None
        facts = deployment.facts.get("kubernetes", {})
        self.namespace = facts.get("namespace", self.namespace)
        self.context = facts.get("context", self.context)
        return deployment

    def identity(self, setup: SetupSpec) -> dict[str, Any]:
        return {"context": self.context_for(setup)}

    def healthy(self, deployment: Deployment) -> str | None:
        context = deployment.facts.get("kubernetes", {}).get("context")
        if not context:
            return "no context recorded"
        try:
            pods = {p.metadata.name: p for p in self.clients(context)["core"].list_namespaced_pod(self.namespace).items}
        except Exception as error:  # noqa: BLE001 - any failure means: deploy afresh
            return f"cannot list pods: {error}"
        for c in deployment.containers:
            pod = pods.get(c.name)
            if pod is None or pod.status.phase != "Running" or pod.status.pod_ip != c.ip:
                return f"pod {c.name} missing, not Running or re-addressed"
        return None

    @staticmethod
    def _pod(container: Container) -> k8s_exec.PodAccess:
        if not isinstance(container.access, k8s_exec.PodAccess):
            raise WorkloadError(f"container {container.name} is not a pod (its access: {container.access})")
        return container.access

    def _exec_in(self, container: Container, argv: list[str], timeout_s: float = 30) -> str:
        """Run *argv* in *container*'s pod; its stdout, or a WorkloadError with its stderr."""
        pod = self._pod(container)
        code, out, err = self._exec(pod.context, pod.pod, argv, timeout_s=timeout_s, namespace=pod.namespace)
        if code != 0:
            raise WorkloadError(f"'{' '.join(argv[:3])} ...' in pod {pod.namespace}/{pod.pod} exited {code}: "
                                f"{err.strip()[-300:]}")
        return out

    def listening(self, container: Container, pid: int, port: int, udp: bool = False) -> bool:
        """Whether a socket in *container*'s pod listens on *port* (ss run in the pod: the
        server is not a local process, *pid* is its local exec launcher)."""
        pod = self._pod(container)
        code, out, _ = self._exec(pod.context, pod.pod, ["ss", "-H", "-ln" + ("u" if udp else "t"), f"sport = :{port}"],
                                  timeout_s=10, namespace=pod.namespace)
        return code == 0 and bool(out.strip())

    # Files of the generators (D-ITG's script and logs): a pod has a file system of its own, so
    # they are copied through exec, base64-encoded (the exec stream carries text).
    @staticmethod
    def remote_path(container: Container, local: Path) -> str:
        return f"{POD_FILES_DIR}/seconetbench-{local.name}"

    def push(self, container: Container, local: Path) -> str:
        remote = self.remote_path(container, local)
        encoded = base64.b64encode(local.read_bytes()).decode()
        self._exec_in(container, ["sh", "-c", 'printf %s "$1" | base64 -d > "$2"', "push", encoded, remote])
        return remote

    def pull(self, container: Container, remote: str, local: Path) -> Path:
        encoded = self._exec_in(container, ["sh", "-c", 'base64 -w0 "$1" && rm -f "$1"', "pull", remote],
                                timeout_s=PULL_TIMEOUT_S)
        local.write_bytes(base64.b64decode(encoded))
        return local

    # ------------------------------------------------------------------ teardown
    def teardown(self) -> dict[str, list[str]]:
        """Delete the run's namespaces (label selector) in every context it used and wait until
        they are gone; then the local state and launchers (cleanup.remove)."""
        contexts = set()
        current = self.current()
        if current is not None and current.facts.get("kubernetes", {}).get("context"):
            contexts.add(current.facts["kubernetes"]["context"])
        contexts |= set(self._clients)
        removed = []
        for context in sorted(contexts) or [None]:
            try:
                removed += delete_namespaces(self, context or self.context_for(None), self.prefix)
            except DeployError:
                if context is not None:
                    raise
        local = cleanup.remove(self.prefix)
        return {"namespaces": removed, **local}

    @classmethod
    def clean_remote(cls, testbed: dict[str, Any], prefix: str | None) -> dict[str, list[str]]:
        return clean(testbed, prefix)

    def close(self) -> None:
        """Close the API clients (their connection pools): targets are measured one after
        another in the Snakemake process, each with a backend object of its own."""
        for clients in self._clients.values():
            clients["api"].close()
        self._clients.clear()


class NetworkPolicyChanger:
    """Allows and denies one pair of a deployment live by creating and deleting its pair policy
    (k8s_manifests.pair_policy) through the API server, the way the backend creates its objects
    (policy_update: the backend's :meth:`~KubernetesBackend.pair_changer`). A change's control
    time is the API call alone: the request until the server's answer (the object stored in etcd);
    what the CNI does with it after is the data plane's part. The connection is opened before
    the first change (a read), so no change pays the TLS handshake. Every call is kept in
    :attr:`calls` (name, uid, resourceVersion the server returned) for meta.json."""

    def __init__(self, backend: KubernetesBackend, deployment: Deployment):
        facts = deployment.facts["kubernetes"]
        self.backend, self.deployment = backend, deployment
        self.context, self.namespace = facts["context"], facts["namespace"]
        self.net = backend.clients(self.context)["net"]
        self.calls: list[dict[str, Any]] = []
        self.existing()

    def existing(self) -> list[str]:
        """The names of the NetworkPolicies in the deployment's namespace, read through the API."""
        return sorted(p.metadata.name for p in self._api("listing", lambda: self.net.list_namespaced_network_policy(
            self.namespace)).items)

    def update_pair(self, deployment: Deployment, a: str, b: str) -> float:
        body = manifests.pair_policy(self.namespace, self.backend.prefix, deployment.setup.id, a, b)
        return self._timed("create", body["metadata"]["name"],
                           lambda: self.net.create_namespaced_network_policy(self.namespace, body))

    def remove_pair(self, deployment: Deployment, a: str, b: str) -> float:
        name = manifests.pair_policy_name(a, b)
        # no grace period: a NetworkPolicy has no finalizer, the answer means it is gone
        return self._timed("delete", name, lambda: self.net.delete_namespaced_network_policy(name, self.namespace))

    def _timed(self, verb: str, name: str, call) -> float:
        started = time.perf_counter()
        answer = self._api(f"{verb} NetworkPolicy {name}", call)
        control_s = time.perf_counter() - started
        metadata = getattr(answer, "metadata", None)  # a created object; a delete answers a Status
        self.calls.append({"verb": verb, "name": name, "control_s": round(control_s, 6),
                           "uid": getattr(metadata, "uid", None),
                           "resource_version": getattr(metadata, "resource_version", None)})
        return control_s

    def _api(self, what: str, call):
        from kubernetes.client.exceptions import ApiException

        try:
            return call()
        except ApiException as error:
            raise WorkloadError(f"{what} in namespace {self.namespace} (context '{self.context}') failed: "
                                f"{error.status} {error.reason}: {_message(error)}") from None


def delete_namespaces(backend: KubernetesBackend, context: str, prefix: str | None, timeout_s: float = 120) -> list[str]:
    """Delete every namespace labelled by seconetbench (of run *prefix*; of every run when None)
    in *context*, and wait until they are gone (pods, policies with them)."""
    from kubernetes.client.exceptions import ApiException

    core = backend.clients(context)["core"]
    try:
        names = [n.metadata.name for n in core.list_namespace(label_selector=manifests.selector(prefix)).items]
        for name in names:
            try:
                core.delete_namespace(name, grace_period_seconds=0, propagation_policy="Background")
            except ApiException as error:
                if error.status != 404:
                    raise
        deadline = time.monotonic() + timeout_s
        while names and core.list_namespace(label_selector=manifests.selector(prefix)).items:
            if time.monotonic() > deadline:
                left = [n.metadata.name for n in core.list_namespace(label_selector=manifests.selector(prefix)).items]
                raise DeployError(f"namespaces {left} in context '{context}' still terminating after {timeout_s} s")
            time.sleep(0.25)
    except ApiException as error:
        raise DeployError(f"deleting namespaces in context '{context}': {error.status} {_message(error)}") from None
    except DeployError:
        raise
    except Exception as error:  # unreachable cluster
        raise DeployError(f"kube context '{context}' unreachable: {error}") from None
    return names


def clean(testbed: dict[str, Any] | None, prefix: str | None = None) -> dict[str, list[str]]:
    """`seconetbench clean --backend kubernetes`: delete the namespaces of run *prefix* (every
    run when None) in the configured context(s)."""
    backend = KubernetesBackend(prefix or "scn", testbed)
    contexts = sorted(set(backend.settings["contexts"].values()) | {backend.context_for(None)})
    return {"namespaces": [f"{context}/{name}" for context in contexts for name in delete_namespaces(backend, context, prefix)]}


def _message(error) -> str:
    try:
        return json.loads(error.body).get("message", error.body)
    except (TypeError, ValueError):
        return str(error.body)[:500]


def _pod_problem(pod) -> str:
    """Why a pod is not Running: the scheduler's or the kubelet's own words."""
    for condition in pod.status.conditions or []:
        if condition.status != "True" and condition.message:
            return f"{pod.status.phase}: {condition.reason}: {condition.message}"
    for status in pod.status.container_statuses or []:
        waiting = status.state.waiting if status.state else None
        if waiting:
            return f"{pod.status.phase}: {waiting.reason}: {waiting.message}"
    return str(pod.status.phase)
