"""Backends deploy setups and run commands in their containers: netns (default), docker,
kubernetes, ssh and vm (the ssh backend on VMs it boots), all implementing :class:`seconetbench.backends.base.Backend` through
:class:`seconetbench.backends.base.BaseBackend` (shared plan, fingerprint and deploy-or-reuse;
capabilities; each container's access object). :data:`BACKENDS` names
them (registry.py); a new backend is one module and one ``BACKENDS.lazy`` line here."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from seconetbench.registry import Registry

# name -> "module:Class", imported on first use: the docker and kubernetes modules import their
# clients, which neither validating a config nor the netns backend needs.
BACKENDS: Registry[type] = Registry("testbed.backend")
BACKENDS.lazy("netns", "seconetbench.backends.netns:NetnsBackend")
BACKENDS.lazy("docker", "seconetbench.backends.docker:DockerBackend")
BACKENDS.lazy("kubernetes", "seconetbench.backends.kubernetes:KubernetesBackend")
BACKENDS.lazy("ssh", "seconetbench.backends.ssh:SshBackend")
BACKENDS.lazy("vm", "seconetbench.backends.vm:VmBackend")


def get_backend(name: str, prefix: str, testbed: dict[str, Any] | None = None,
                results_dir: Path | None = None):
    """The backend *name* for run *prefix*; *testbed* is the config's testbed section and
    *results_dir* where results go (a container backend mounts it into its containers)."""
    backend_class = BACKENDS.get(name)
    options = {"testbed": testbed or {}, "results_dir": Path(results_dir or "results").resolve()}
    # A backend's constructor takes the prefix and those of the options it declares (netns: none).
    accepted = inspect.signature(backend_class).parameters
    return backend_class(prefix, **{key: value for key, value in options.items() if key in accepted})


def for_config(config: dict[str, Any], prefix: str | None = None):
    """The backend a validated *config* asks for, on its first testbed group (the one testbed
    without testbed.*.groups; testbed/groups.py), with that group's prefix (the config's run
    prefix without groups) unless *prefix* is given."""
    from seconetbench.testbed.groups import testbed_groups

    first = testbed_groups(config)[0]
    return get_backend(config["testbed"]["backend"], prefix or first.prefix, first.testbed, Path(config["results_dir"]))
