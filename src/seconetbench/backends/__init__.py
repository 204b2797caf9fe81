"""Backends deploy setups and run commands in their containers: netns (default), docker and
kubernetes, all with the interface of :class:`seconetbench.backends.netns.NetnsBackend`
(plan, deploy, deploy_or_reuse, healthy, listening, teardown, registry)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

BACKENDS = ("netns", "docker", "kubernetes")


def get_backend(name: str, prefix: str, testbed: dict[str, Any] | None = None,
                results_dir: Path | None = None):
    """The backend *name* for run *prefix*; *testbed* is the config's testbed section and
    *results_dir* where results go (a container backend mounts it into its containers)."""
    testbed = testbed or {}
    results_dir = Path(results_dir or "results").resolve()
    if name == "netns":
        from seconetbench.backends.netns import NetnsBackend

        return NetnsBackend(prefix)
    if name == "docker":
        from seconetbench.backends.docker import DockerBackend

        return DockerBackend(prefix, testbed, results_dir)
    if name == "kubernetes":
        from seconetbench.backends.kubernetes import KubernetesBackend

        return KubernetesBackend(prefix, testbed, results_dir)
    raise KeyError(f"testbed.backend '{name}' is unknown; available: {list(BACKENDS)}")


def for_config(config: dict[str, Any], prefix: str | None = None):
    """The backend a validated *config* asks for (prefix: the config's run prefix by default)."""
    from seconetbench import config as configuration

    return get_backend(config["testbed"]["backend"], prefix or configuration.run_prefix(config),
                       config["testbed"], Path(config["results_dir"]))
