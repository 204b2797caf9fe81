"""The Kubernetes objects of a deployment, as plain dicts (pure functions, no API calls).

One run-specific Namespace holds everything of a deployment, so that teardown deletes one
object (found by label selector) and the API server removes the pods and policies inside.
Every object carries the same labels: ``app.kubernetes.io/managed-by=seconetbench`` plus the run
prefix, which is what ``seconetbench clean --backend kubernetes`` selects after a crash.

Pods sleep; workloads run in them through exec. Placement is explicit: the backend picks the
node of every pod (all on one node for ``single``, senders and sinks on different nodes for
``multi``) and pins it with a required node affinity on ``kubernetes.io/hostname``. For
``multi`` a required pod anti-affinity between the two ends of a pair states the intent in the
object as well: if a node label lied, the scheduler would leave the pod Pending rather than put
both ends on one node, and the deploy fails with the scheduler's reason.

The ``networkpolicy`` filter is default deny (ingress and egress) plus, per container, one
policy that admits exactly its whitelisted peers in both directions.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from seconetbench.errors import InvalidValueError

MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGER = "seconetbench"
PREFIX_LABEL = "seconetbench.io/prefix"
SETUP_LABEL = "seconetbench.io/setup"
CONTAINER_LABEL = "seconetbench.io/container"
PAIR_LABEL = "seconetbench.io/pair"
ROLE_LABEL = "seconetbench.io/role"
HOSTNAME_KEY = "kubernetes.io/hostname"
MAIN_CONTAINER = "main"
LABEL_VALUE_MAX = 63


def selector(prefix: str | None = None) -> str:
    """The label selector of every object of run *prefix* (of every run when None)."""
    base = f"{MANAGED_BY}={MANAGER}"
    return f"{base},{PREFIX_LABEL}={prefix}" if prefix else base


def labels(prefix: str, setup_id: str, **extra: str) -> dict[str, str]:
    # Label values are limited to 63 characters; setup ids are shorter, but a long one must not
    # break the deploy: the full id is also an annotation.
    return {MANAGED_BY: MANAGER, PREFIX_LABEL: prefix, SETUP_LABEL: setup_id[:LABEL_VALUE_MAX].rstrip("-_"),
            **extra}


def namespace_name(namespace_prefix: str, prefix: str) -> str:
    """The run's namespace: '<namespace_prefix><prefix>' (an RFC 1123 label, <= 63 characters)."""
    name = f"{namespace_prefix}{prefix}"
    if len(name) > LABEL_VALUE_MAX:
        raise InvalidValueError(f"namespace '{name}' is longer than {LABEL_VALUE_MAX} characters; "
                                "shorten testbed.kubernetes.namespace_prefix")
    return name


def namespace(name: str, prefix: str, setup_id: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": labels(prefix, setup_id),
                     "annotations": {"seconetbench.io/setup-id": setup_id}},
    }


def node_affinity(node: str) -> dict[str, Any]:
    return {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": HOSTNAME_KEY, "operator": "In", "values": [node]}]}]}}


def pod(*, name: str, namespace: str, prefix: str, setup_id: str, image: str, pull_policy: str,
        node: str, pair: str, role: str, partner: str | None = None,
        command: Sequence[str] = ("sleep", "infinity")) -> dict[str, Any]:
    """A benchmark pod pinned to *node*. With *partner* (multi-node setups), a required pod
    anti-affinity keeps it off the node of the other end of its pair."""
    affinity: dict[str, Any] = {"nodeAffinity": node_affinity(node)}
    if partner is not None:
        affinity["podAntiAffinity"] = {"requiredDuringSchedulingIgnoredDuringExecution": [{
            "labelSelector": {"matchLabels": {PREFIX_LABEL: prefix, CONTAINER_LABEL: partner}},
            "topologyKey": HOSTNAME_KEY}]}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace,
                     "labels": labels(prefix, setup_id, **{CONTAINER_LABEL: name, PAIR_LABEL: pair, ROLE_LABEL: role})},
        "spec": {
            # No API access from the pods, and no service environment variables: the pods only
            # carry the benchmark's traffic.
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            # `sleep` as PID 1 ignores SIGTERM; nothing in the pod needs a graceful stop.
            "terminationGracePeriodSeconds": 0,
            "restartPolicy": "Never",
            "affinity": affinity,
            "containers": [{
                "name": MAIN_CONTAINER,
                "image": image,
                "imagePullPolicy": pull_policy,
                "command": list(command),
                # ping needs raw sockets; some runtimes (and restricted pod security) drop NET_RAW.
                "securityContext": {"capabilities": {"add": ["NET_RAW"]}},
            }],
        },
    }


def default_deny(namespace: str, prefix: str, setup_id: str) -> dict[str, Any]:
    """Every pod of the namespace: no ingress, no egress, unless another policy allows it."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "default-deny", "namespace": namespace, "labels": labels(prefix, setup_id)},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
    }


def allow_peers(namespace: str, prefix: str, setup_id: str, container: str,
                peers: Iterable[str]) -> dict[str, Any]:
    """*container* may talk to *peers* and they to it, on every port and protocol (the whitelist
    is of pairs, as in the netfilter filters)."""
    peer_selector = {"podSelector": {"matchExpressions": [
        {"key": CONTAINER_LABEL, "operator": "In", "values": sorted(peers)}]}}
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": f"allow-{container}", "namespace": namespace, "labels": labels(prefix, setup_id)},
        "spec": {
            "podSelector": {"matchLabels": {CONTAINER_LABEL: container}},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"from": [peer_selector]}],
            "egress": [{"to": [peer_selector]}],
        },
    }


def whitelist_policies(namespace: str, prefix: str, setup_id: str, containers: Sequence[str],
                       pairs: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
    """Default deny plus one allow policy per container that has whitelisted peers."""
    peers: dict[str, set[str]] = {c: set() for c in containers}
    for a, b in pairs:
        peers[a].add(b)
        peers[b].add(a)
    return [default_deny(namespace, prefix, setup_id)] + [
        allow_peers(namespace, prefix, setup_id, c, peers[c]) for c in containers if peers[c]]


def pair_policy_name(a: str, b: str) -> str:
    """The NetworkPolicy that whitelists the pair (a, b): one name whatever the order."""
    first, second = sorted((a, b))
    return f"pair-{first}-{second}"


def pair_policy(namespace: str, prefix: str, setup_id: str, a: str, b: str) -> dict[str, Any]:
    """One NetworkPolicy that whitelists the pair (a, b) in both directions, on every port and
    protocol: what the policy_update workload creates (allow) and deletes (deny) through the API,
    so that a change is one API call. It selects both pods and admits the two of them as peers,
    ingress and egress; policies add up, so the deployment's own whitelist is untouched."""
    if a == b:
        raise InvalidValueError(f"a pair needs two containers, got {a!r} twice")
    both = {"podSelector": {"matchExpressions": [
        {"key": CONTAINER_LABEL, "operator": "In", "values": sorted((a, b))}]}}
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": pair_policy_name(a, b), "namespace": namespace,
                     "labels": labels(prefix, setup_id, **{PAIR_LABEL: pair_policy_name(a, b)[len("pair-"):]})},
        "spec": {
            "podSelector": both["podSelector"],
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"from": [both]}],
            "egress": [{"to": [both]}],
        },
    }
