"""Workloads: traffic generators run between every sender/sink pair of a deployment.

Each workload class registers itself by its ``kind`` with ``@register`` (see registry.py); the
modules of this package are imported on the first lookup, so adding a workload is one module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from seconetbench.registry import Registry

if TYPE_CHECKING:
    from seconetbench.spec import WorkloadSpec
    from seconetbench.workloads.base import Workload

WORKLOADS: Registry[type[Workload]] = Registry("workload kind", package=__name__, name_of=lambda cls: cls.kind)
register = WORKLOADS.register


def get_workload(spec: WorkloadSpec) -> Workload:
    """The workload of *spec* (its class chosen by ``spec.kind``)."""
    return WORKLOADS.get(spec.kind)(spec)
