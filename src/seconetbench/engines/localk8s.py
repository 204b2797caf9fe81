"""A local single-node Kubernetes v1.20 cluster for tests and for trying the kubernetes backend.

Everything runs inside ONE network namespace of the run (``<prefix>-k8s``, or the namespace of
the Docker engine whose dockerd the kubelet drives): etcd, kube-apiserver, controller-manager,
scheduler, kubelet (dockershim) and kube-proxy. So the apiserver reaches the kubelet and
``exec``/``logs`` work as on a real cluster, and nothing touches the machine's own networking.
Clients in the root namespace reach the apiserver through a unix-socket bridge: socat in the root
namespace listens on 127.0.0.1:<port> and forwards to a unix socket, where a socat inside the
namespace forwards to the apiserver. The kubeconfig written to ``<state>/kubeconfig`` points there.

Binaries: ``tools/build-k8s.sh`` (cached under /var/cache/seconetbench/k8s/<version>/bin).
Processes are started with ``nsenter --net=`` (``ip netns exec`` remounts /sys and hides the
cgroup mounts the kubelet needs), recorded by pid in the prefix's registry, and ended by pid;
``seconetbench clean --prefix <prefix>`` removes a crashed cluster as well.

Limits (docs/kubernetes.md): Kubernetes 1.20 (end of life), one node, the CNI ``bridge`` plugin
(no NetworkPolicy enforcement), token auth with one admin identity. Addresses: node
198.18.252.1, pods 198.18.253.0/24, services 198.18.254.0/24 (RFC 2544 range).
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from seconetbench import proc
from seconetbench.errors import DeployError, ToolFailed
from seconetbench.testbed import cleanup, netlink

VERSION = "v1.20.2"
CACHE_ROOT = Path(os.environ.get("SECONETBENCH_K8S_CACHE", "/var/cache/seconetbench/k8s"))
BUILD_SCRIPT = Path(__file__).resolve().parents[3] / "tools" / "build-k8s.sh"
DEFAULT_PREFIX = "scnk8s"
NODE_IP = "198.18.252.1"
POD_CIDR = "198.18.253.0/24"
SERVICE_CIDR = "198.18.254.0/24"
SERVICE_IP = "198.18.254.1"  # the first address of the service range: the 'kubernetes' service
API_PORT = 26443
ETCD_PORT = 23790
CNI_BRIDGE = "cni0"  # inside the cluster's namespace only
NODE_NAME = "scn-node1"
CLUSTER_KIND = "local-single-node-bridge-cni"
# The kubelet of 1.20 writes these wherever --root-dir points; down() removes only entries its
# own run created (recorded at up()).
KUBELET_FIXED_PATHS = (Path("/var/lib/kubelet"), Path("/var/log/pods"), Path("/var/log/containers"),
                       Path("/usr/libexec/kubernetes"))
COMPONENTS = ("etcd", "kube-apiserver", "socat-ns", "socat-root", "kube-controller-manager", "kube-scheduler",
              "kubelet", "kube-proxy")


def bindir() -> Path:
    return CACHE_ROOT / VERSION / "bin"


def binaries_ready() -> str | None:
    """None when the built binaries and the Debian packages are there, else what is missing."""
    missing = [b for b in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy")
               if not os.access(bindir() / b, os.X_OK)]
    if missing or not (bindir() / ".complete").exists():
        return f"Kubernetes {VERSION} binaries missing in {bindir()}: run `{BUILD_SCRIPT}` (about 10 min once)"
    tools = [t for t in ("etcd", "socat", "openssl", "nsenter", "conntrack") if shutil.which(t) is None]
    if tools or not Path("/usr/lib/cni/bridge").exists():
        return f"missing {tools or ['/usr/lib/cni/bridge']}: run `{BUILD_SCRIPT}` (installs them)"
    return None


@dataclass
class LocalCluster:
    """The local cluster of *prefix*. With *node* (default), a kubelet runs the pods on the
    managed Docker engine of the same prefix (engines.dockerd, started here), in the engine's
    namespace, with the image of engines.image; without, only the control plane runs in a
    namespace of its own (enough for API semantics: validation, admission, dry-run)."""

    prefix: str = DEFAULT_PREFIX
    node: bool = True
    api_port: int | None = None  # root-namespace port of the apiserver bridge; None = from the prefix
    state: Path = field(init=False)
    engine: Any = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.state = cleanup.state_dir(self.prefix) / "k8s"
        if self.api_port is None:
            # Two local clusters (a test's and a user's) must not share the root-namespace port.
            self.api_port = API_PORT + int(hashlib.sha256(self.prefix.encode()).hexdigest(), 16) % 1000
        self.registry = cleanup.registry(self.prefix)
        if self.node:
            from seconetbench.engines.dockerd import DockerEngine

            self.engine = DockerEngine(self.prefix)

    # ------------------------------------------------------------------ paths
    @property
    def netns(self) -> str:
        return self.engine.netns if self.engine is not None else f"{self.prefix}-k8s"

    @property
    def kubeconfig(self) -> Path:
        return self.state / "kubeconfig"

    @property
    def context(self) -> str:
        return f"seconetbench-{self.prefix}"

    @property
    def with_node(self) -> bool:
        return self.engine is not None

    def _ns(self, argv: list[str]) -> list[str]:
        return ["nsenter", f"--net={netlink.NETNS_RUN_DIR / self.netns}", *argv]

    # ------------------------------------------------------------------ state
    def _info(self) -> dict[str, Any]:
        try:
            return json.loads((self.state / "cluster.json").read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}

    def running(self) -> str | None:
        """None when the cluster of this prefix answers /readyz (and its node is Ready when it
        has one), else why not."""
        info = self._info()
        if not info:
            return "not started"
        alive = {p.pid for p in self.registry.recorded()}
        dead = [name for name, pid in info.get("pids", {}).items() if pid not in alive]
        if dead:
            return f"components not running: {dead}"
        if self.engine is not None and not self.engine.running():
            return f"docker engine of {self.prefix} not running"
        try:
            self._api("get", "/readyz")
        except ToolFailed as error:
            return str(error)
        return None

    def _api(self, method: str, path: str) -> str:
        """A raw GET through the root-namespace bridge (what every client uses)."""
        result = subprocess.run(["kubectl", "--kubeconfig", str(self.kubeconfig), "--context", self.context,
                                 "get", "--raw", path], capture_output=True, text=True, timeout=10)
        if result.returncode != 0:
            raise ToolFailed(["kubectl", "get", "--raw", path], result.returncode, None, result.stderr)
        return result.stdout

    # ------------------------------------------------------------------ up
    def up(self, timeout_s: float = 120) -> LocalCluster:
        """Start the cluster, or reuse it when this prefix's cluster already runs."""
        if self.running() is None:
            return self
        problem = binaries_ready()
        if problem:
            raise DeployError(problem)
        self.down()
        started = time.monotonic()
        self.state.mkdir(parents=True, exist_ok=True)
        (self.state / "logs").mkdir(exist_ok=True)
        created = [str(p) for p in KUBELET_FIXED_PATHS if not p.exists()]
        existing = {str(p): sorted(os.listdir(p)) for p in KUBELET_FIXED_PATHS[1:3] if p.is_dir()}
        info: dict[str, Any] = {"prefix": self.prefix, "netns": self.netns, "own_netns": self.engine is None,
                                "created_paths": created, "preexisting_entries": existing, "pids": {},
                                "version": VERSION, "node": NODE_NAME if self.with_node else None}
        self._write_info(info)
        try:
            if self.engine is None:
                netlink.create_netns(self.netns)
            else:
                from seconetbench.engines import image

                self.engine.ensure()
                info["image"] = image.ensure(self.engine.client())
                self._write_info(info)
            self._node_address()
            token = self._pki()
            self._kubeconfigs(token)
            self._start(info, "etcd", [
                "etcd", "--name", f"{self.prefix}-etcd", "--data-dir", str(self.state / "etcd"),
                "--listen-client-urls", f"http://127.0.0.1:{ETCD_PORT}", "--advertise-client-urls", f"http://127.0.0.1:{ETCD_PORT}",
                "--listen-peer-urls", f"http://127.0.0.1:{ETCD_PORT + 10}",
                "--initial-advertise-peer-urls", f"http://127.0.0.1:{ETCD_PORT + 10}",
                "--initial-cluster", f"{self.prefix}-etcd=http://127.0.0.1:{ETCD_PORT + 10}",
                "--listen-metrics-urls", f"http://127.0.0.1:{ETCD_PORT + 20}"])
            pki = self.state / "pki"
            self._start(info, "kube-apiserver", [
                str(bindir() / "kube-apiserver"), f"--etcd-servers=http://127.0.0.1:{ETCD_PORT}",
                "--bind-address=0.0.0.0", f"--advertise-address={NODE_IP}", f"--secure-port={self.api_port}",
                "--insecure-port=0", f"--tls-cert-file={pki}/apiserver.crt", f"--tls-private-key-file={pki}/apiserver.key",
                f"--client-ca-file={pki}/ca.crt", f"--token-auth-file={pki}/tokens.csv", "--authorization-mode=Node,RBAC",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={pki}/sa.pub", f"--service-account-signing-key-file={pki}/sa.key",
                f"--service-cluster-ip-range={SERVICE_CIDR}", "--allow-privileged=true",
                "--kubelet-preferred-address-types=InternalIP", f"--cert-dir={self.state / 'apiserver-certs'}"])
            sock = self.state / "apiserver.sock"
            # root ns 127.0.0.1:port -> unix socket -> (inside the namespace) 127.0.0.1:port
            self._start(info, "socat-ns", ["socat", f"UNIX-LISTEN:{sock},fork,unlink-early",
                                           f"TCP:127.0.0.1:{self.api_port}"])
            self._start(info, "socat-root", ["socat", f"TCP-LISTEN:{self.api_port},bind=127.0.0.1,fork,reuseaddr",
                                             f"UNIX-CONNECT:{sock}"], in_netns=False)
            self._wait(lambda: self._api("get", "/readyz"), started + timeout_s, "apiserver /readyz")
            internal = self.state / "kubeconfig-internal"
            self._start(info, "kube-controller-manager", [
                str(bindir() / "kube-controller-manager"), f"--kubeconfig={internal}",
                f"--service-account-private-key-file={pki}/sa.key", f"--root-ca-file={pki}/ca.crt",
                "--leader-elect=false", "--port=0", "--secure-port=0", "--controllers=*,-nodeipam",
                f"--flex-volume-plugin-dir={self.state / 'flex'}"])
            self._start(info, "kube-scheduler", [str(bindir() / "kube-scheduler"), f"--kubeconfig={internal}",
                                                 "--leader-elect=false", "--port=0", "--secure-port=0"])
            if self.with_node:
                self._node(info, internal, info["image"]["tag"])
            self._describe_cni()
            self._wait(lambda: self._default_service_account(), started + timeout_s, "service account default")
            if self.with_node:
                self._wait(self._node_ready, started + timeout_s, f"node {NODE_NAME} Ready")
            info["ready_s"] = round(time.monotonic() - started, 3)
            self._write_info(info)
        except BaseException:
            self.down()
            raise
        return self

    def _write_info(self, info: dict[str, Any]) -> None:
        self.state.mkdir(parents=True, exist_ok=True)
        (self.state / "cluster.json").write_text(json.dumps(info, indent=1))

    def _start(self, info: dict[str, Any], name: str, argv: list[str], in_netns: bool = True) -> None:
        logs = self.state / "logs"
        process = proc.spawn(self._ns(argv) if in_netns else argv, logs / f"{name}.out", logs / f"{name}.log",
                             self.registry, argv)
        info["pids"][name] = process.pid
        self._write_info(info)
        time.sleep(0.05)
        if process.poll() is not None:
            raise DeployError(f"local cluster: {name} exited at once (code {process.returncode}): "
                              f"{(logs / f'{name}.log').read_text()[-800:]}")

    def _wait(self, check, deadline: float, what: str) -> None:
        last = None
        while time.monotonic() < deadline:
            try:
                if check() is not False:
                    return
            except (ToolFailed, subprocess.SubprocessError) as error:
                last = error
            dead = [p for p in self._info().get("pids", {}).values() if not psutil_alive(p)]
            if dead:
                break
            time.sleep(0.25)
        logs = "; ".join(f"{p.stem}: {p.read_text()[-300:]}" for p in sorted((self.state / "logs").glob("*.log"))
                         if p.stat().st_size)
        raise DeployError(f"local cluster: {what} not reached ({last}); logs in {self.state / 'logs'}: {logs[-2000:]}")

    def _node_address(self) -> None:
        # The node's address lives on the namespace's loopback: no dummy device needed (the
        # kernel may lack it), and it is routable from the pods through the bridge gateway.
        for argv in (["ip", "link", "set", "lo", "up"], ["ip", "addr", "replace", f"{NODE_IP}/32", "dev", "lo"]):
            proc.run(argv, host=self.netns, command=self._ns(argv))

    def _pki(self) -> str:
        """A CA, the apiserver's serving certificate, the service-account key and one admin token."""
        pki = self.state / "pki"
        pki.mkdir(parents=True, exist_ok=True)

        def openssl(*args: str) -> None:
            proc.run(["openssl", *args], cwd=pki)

        openssl("genrsa", "-out", "ca.key", "2048")
        openssl("req", "-x509", "-new", "-nodes", "-key", "ca.key", "-subj", f"/CN={self.prefix}-ca", "-days", "30",
                "-out", "ca.crt")
        openssl("genrsa", "-out", "apiserver.key", "2048")
        (pki / "apiserver.cnf").write_text(
            "[req]\ndistinguished_name=dn\n[dn]\n[ext]\n"
            f"subjectAltName=IP:127.0.0.1,IP:{NODE_IP},IP:{SERVICE_IP},DNS:localhost,DNS:kubernetes,"
            "DNS:kubernetes.default.svc\nextendedKeyUsage=serverAuth\n")
        openssl("req", "-new", "-key", "apiserver.key", "-subj", "/CN=kube-apiserver", "-config", "apiserver.cnf",
                "-out", "apiserver.csr")
        openssl("x509", "-req", "-in", "apiserver.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                "-days", "30", "-extfile", "apiserver.cnf", "-extensions", "ext", "-out", "apiserver.crt")
        openssl("genrsa", "-out", "sa.key", "2048")
        openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub")
        admin, node = secrets.token_hex(16), secrets.token_hex(16)
        # The kubelet gets a node identity (Node authorizer), the rest one admin identity.
        (pki / "tokens.csv").write_text(f"{admin},seconetbench-admin,seconetbench-admin,system:masters\n"
                                        f'{node},system:node:{NODE_NAME},{NODE_NAME},system:nodes\n')
        (pki / "node.token").write_text(node)
        return admin

    def _kubeconfigs(self, token: str) -> None:
        ca = self.state / "pki" / "ca.crt"

        def config(server: str, user_token: str) -> str:
            return json.dumps({
                "apiVersion": "v1", "kind": "Config", "current-context": self.context,
                "clusters": [{"name": self.context, "cluster": {"server": server, "certificate-authority": str(ca)}}],
                "users": [{"name": self.context, "user": {"token": user_token}}],
                "contexts": [{"name": self.context, "context": {"cluster": self.context, "user": self.context}}]}, indent=1)

        # Clients in the root namespace go through the socat bridge; components inside the
        # namespace talk to the apiserver directly.
        self.kubeconfig.write_text(config(f"https://127.0.0.1:{self.api_port}", token))
        (self.state / "kubeconfig-internal").write_text(config(f"https://127.0.0.1:{self.api_port}", token))
        node_token = (self.state / "pki" / "node.token").read_text()
        (self.state / "kubeconfig-node").write_text(config(f"https://127.0.0.1:{self.api_port}", node_token))
        for path in (self.kubeconfig, self.state / "kubeconfig-internal", self.state / "kubeconfig-node"):
            path.chmod(0o600)

    def _node(self, info: dict[str, Any], internal: Path, pause_image: str) -> None:
        engine = self.engine
        cni_conf = self.state / "cni-conf"
        cni_conf.mkdir(exist_ok=True)
        (cni_conf / "10-seconetbench.conflist").write_text(json.dumps({
            "cniVersion": "0.4.0", "name": f"{self.prefix}-podnet", "plugins": [
                {"type": "bridge", "bridge": CNI_BRIDGE, "isGateway": True, "ipMasq": False, "hairpinMode": True,
                 "ipam": {"type": "host-local", "ranges": [[{"subnet": POD_CIDR}]],
                          "routes": [{"dst": "0.0.0.0/0"}], "dataDir": str(self.state / "cni-ipam")}},
                {"type": "portmap", "capabilities": {"portMappings": True}}]}, indent=1))
        shim = self.state / "dockershim.sock"
        self._start(info, "kubelet", [
            str(bindir() / "kubelet"), f"--kubeconfig={self.state / 'kubeconfig-node'}",
            f"--root-dir={self.state / 'kubelet'}", f"--cert-dir={self.state / 'kubelet-pki'}",
            "--container-runtime=docker", f"--docker-endpoint=unix://{engine.socket}",
            f"--container-runtime-endpoint=unix://{shim}", f"--image-service-endpoint=unix://{shim}",
            f"--experimental-dockershim-root-directory={self.state / 'dockershim'}",
            f"--pod-infra-container-image={pause_image}", "--network-plugin=cni", "--cni-bin-dir=/usr/lib/cni",
            f"--cni-conf-dir={cni_conf}", f"--cni-cache-dir={self.state / 'cni-cache'}",
            f"--hostname-override={NODE_NAME}", f"--node-ip={NODE_IP}", f"--address={NODE_IP}",
            "--fail-swap-on=false", "--cgroup-driver=cgroupfs",
            # no cgroup hierarchy of its own: this VM's cgroup v1 lacks hugetlb and the QoS tree
            "--cgroups-per-qos=false", "--enforce-node-allocatable=",
            "--read-only-port=0", "--healthz-port=0", "--anonymous-auth=true", "--authorization-mode=AlwaysAllow",
            f"--volume-plugin-dir={self.state / 'kubelet-plugins'}", "--image-gc-high-threshold=100",
            "--eviction-hard=", "--v=1"])
        self._start(info, "kube-proxy", [
            str(bindir() / "kube-proxy"), f"--kubeconfig={internal}", f"--hostname-override={NODE_NAME}",
            "--proxy-mode=iptables", f"--cluster-cidr={POD_CIDR}", "--conntrack-max-per-core=0",
            "--conntrack-tcp-timeout-established=0", "--conntrack-tcp-timeout-close-wait=0",
            "--metrics-bind-address=127.0.0.1:10249", "--healthz-bind-address=127.0.0.1:10256"])
        # The managed engine runs with --iptables=false, so its namespace keeps FORWARD ACCEPT
        # (bridged pod traffic passes it: br_netfilter). Were a DROP policy ever set there, pod
        # traffic would silently vanish: say so instead.
        policy = subprocess.run(self._ns(["iptables", "-S", "FORWARD"]), capture_output=True, text=True).stdout
        if "-P FORWARD DROP" in policy:
            raise DeployError(f"local cluster: FORWARD policy DROP in namespace {self.netns} would drop pod traffic")

    def _describe_cni(self) -> None:
        """The ConfigMap from which k8s_cluster_facts recognises this cluster's CNI."""
        body = json.dumps({"apiVersion": "v1", "kind": "ConfigMap",
                           "metadata": {"name": "seconetbench-local-cni", "namespace": "kube-system"},
                           "data": {"cni": "bridge", "dataplane": "linux-bridge", "plugins": "bridge,host-local,portmap",
                                    "cluster_kind": CLUSTER_KIND, "pod_cidr": POD_CIDR}})
        deadline = time.monotonic() + 30
        while True:
            result = subprocess.run(["kubectl", "--kubeconfig", str(self.kubeconfig), "--context", self.context,
                                     "apply", "-f", "-"], input=body, capture_output=True, text=True, timeout=30)
            if result.returncode == 0:
                return
            if time.monotonic() > deadline:  # kube-system appears a moment after /readyz
                raise DeployError(f"local cluster: cannot record its CNI: {result.stderr.strip()}")
            time.sleep(0.25)

    def _default_service_account(self) -> bool:
        return bool(self._api("get", "/api/v1/namespaces/default/serviceaccounts/default"))

    def _node_ready(self) -> bool:
        node = json.loads(self._api("get", f"/api/v1/nodes/{NODE_NAME}"))
        return any(c["type"] == "Ready" and c["status"] == "True" for c in node["status"].get("conditions", []))

    # ------------------------------------------------------------------ down
    def down(self) -> dict[str, Any]:
        """Stop every component by pid, remove the pods' docker containers, the namespace (when
        the cluster owns it), the kubelet's mounts and what the kubelet left at fixed paths."""
        info = self._info()
        recorded = {p.pid: p for p in self.registry.recorded()}
        pids = info.get("pids", {})
        ended = []
        # node first (no new pods), then the control plane, the bridge last
        for name in ("kube-proxy", "kubelet", "kube-scheduler", "kube-controller-manager", "kube-apiserver",
                     "etcd", "socat-root", "socat-ns"):
            process = recorded.get(pids.get(name))
            if process is not None:
                proc.terminate([process], grace_s=5)
                self.registry.forget(process.pid)
                ended.append(name)
        for point in cleanup.mounts_below(self.state):  # deepest first; lazily if still busy
            if subprocess.run(["umount", point], capture_output=True).returncode != 0:
                subprocess.run(["umount", "-l", point], capture_output=True)
        if info.get("own_netns") and self.netns in netlink.list_netns():
            inode = netlink.netns_inode(self.netns)
            if inode is not None:
                proc.terminate(proc.processes_in_netns(inode))
            netlink.delete_netns(self.netns)
        if self.engine is not None:
            # the engine belongs to the cluster: its stop removes the pods' containers, its
            # namespace (with the CNI bridge and the node address) and its files
            self.engine.stop()
        self._remove_fixed_paths(info)
        # The prefix belongs to the cluster: whatever else is left of it (a namespace, a recorded
        # process of a crashed start, the state directory) goes the generic way.
        cleanup.remove(self.prefix)
        return {"ended": ended, "state": str(self.state)}

    @staticmethod
    def _remove_fixed_paths(info: dict[str, Any]) -> None:
        for path in map(Path, info.get("created_paths", [])):
            shutil.rmtree(path, ignore_errors=True)
        for directory, before in info.get("preexisting_entries", {}).items():
            for entry in set(os.listdir(directory)) - set(before) if os.path.isdir(directory) else ():
                target = Path(directory) / entry
                if target.is_symlink() or target.is_file():
                    target.unlink(missing_ok=True)
                else:
                    shutil.rmtree(target, ignore_errors=True)


def psutil_alive(pid: int) -> bool:
    """Whether *pid* runs (a zombie, i.e. a component that died under its launcher, does not)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def main(argv: list[str] | None = None) -> int:
    """`python -m seconetbench.engines.localk8s up|down|status [--prefix P] [--no-node]`:
    prints the kubeconfig path (up) so that `export KUBECONFIG=...` points clients at it."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="python -m seconetbench.engines.localk8s",
                                     description="the local single-node Kubernetes cluster (docs/kubernetes.md)")
    parser.add_argument("action", choices=["up", "down", "status"])
    parser.add_argument("--prefix", default=DEFAULT_PREFIX, help=f"run prefix of the cluster (default {DEFAULT_PREFIX})")
    parser.add_argument("--no-node", action="store_true", help="control plane only (no kubelet, no Docker engine)")
    args = parser.parse_args(argv)
    cluster = LocalCluster(args.prefix, node=not args.no_node)
    try:
        if args.action == "up":
            cluster.up()
            print(json.dumps({"kubeconfig": str(cluster.kubeconfig), "context": cluster.context,
                              "ready_s": cluster._info().get("ready_s")}))
        elif args.action == "down":
            print(json.dumps(cluster.down()))
        else:
            problem = cluster.running()
            print(json.dumps({"running": problem is None, "problem": problem, "kubeconfig": str(cluster.kubeconfig)}))
            return 0 if problem is None else 1
    except DeployError as error:
        print(f"local cluster {args.prefix}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
