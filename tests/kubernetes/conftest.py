"""The local Kubernetes cluster for tiers 2 and 3 (docs/kubernetes.md), brought up once per
session and removed at its end, with proof that nothing of it is left.

Its prerequisites are the binaries of tools/build-k8s.sh and the managed Docker engine. When
they are missing the tests skip with the reason, except under CI (CI=true), where a missing
prerequisite is a failure: a green CI must not hide a build that did not happen."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import pytest

from seconetbench.engines import localk8s
from tests.conftest import HOST


def _missing(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"Kubernetes tier prerequisites missing under CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def cluster():
    if os.geteuid() != 0:
        _missing("needs root: the local cluster runs in network namespaces")
    problem = localk8s.binaries_ready()
    if problem:
        _missing(problem)
    prefix = "scnkt" + secrets.token_hex(1)
    fixed_before = {str(p): p.exists() for p in localk8s.KUBELET_FIXED_PATHS}
    local = localk8s.LocalCluster(prefix)
    # the cluster's control plane works all the time it is up: no sweep measures meanwhile
    with HOST.held():
        try:
            local.up()
            yield local
        finally:
            local.down()
        from seconetbench.testbed import cleanup

        left = cleanup.leftovers(prefix)
        assert not any(left.values()), f"the local cluster left {left}"
        assert not Path(local.state).exists()
        for path, existed in fixed_before.items():
            assert Path(path).exists() == existed, f"{path}: the kubelet's fixed path was {'removed' if existed else 'left'}"


@pytest.fixture
def testbed(cluster):
    """The testbed section of a config pointing at the local cluster."""
    return {"backend": "kubernetes", "kubernetes": {"kubeconfig": str(cluster.kubeconfig), "context": cluster.context,
                                                    "image_pull_policy": "Never", "ready_timeout_s": 60}}
