"""Workloads: traffic generators run between every sender/sink pair of a deployment."""

from __future__ import annotations

from seconetbench.spec import WorkloadSpec
from seconetbench.workloads.base import Workload


def get_workload(spec: WorkloadSpec) -> Workload:
    from seconetbench.workloads import ditg, ping, security, throughput

    implementations = {cls.kind: cls for cls in (ping.Latency, throughput.Throughput, *ditg.KINDS, *security.KINDS)}
    try:
        return implementations[spec.kind](spec)
    except KeyError:
        raise KeyError(f"workload kind '{spec.kind}' is not implemented; known: {sorted(implementations)}") from None
