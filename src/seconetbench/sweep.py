"""Expand a validated configuration into the setups, workloads and targets of a sweep.

Combinations that cannot run are not dropped silently: :class:`Sweep` keeps each excluded setup
with the reason (an incompatible technology pair, or what this machine lacks).
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, field
from typing import Any

from seconetbench.spec import SetupSpec, TargetId, WorkloadSpec


@dataclass(frozen=True)
class Exclusion:
    setup: SetupSpec
    reason: str


@dataclass
class Sweep:
    setups: list[SetupSpec]
    excluded: list[Exclusion]
    workloads: list[WorkloadSpec]
    repetitions: int
    _by_id: dict[str, SetupSpec] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._by_id = {s.id: s for s in self.setups}

    def setup(self, setup_id: str) -> SetupSpec:
        try:
            return self._by_id[setup_id]
        except KeyError:
            known = ", ".join(sorted(self._by_id)) or "none"
            excluded = {e.setup.id: e.reason for e in self.excluded}
            if setup_id in excluded:
                raise KeyError(f"setup '{setup_id}' is excluded from this sweep: {excluded[setup_id]}") from None
            raise KeyError(f"setup '{setup_id}' is not in this sweep; known setups: {known}") from None

    def workload(self, name: str) -> WorkloadSpec:
        for workload in self.workloads:
            if workload.name == name:
                return workload
        raise KeyError(f"workload '{name}' is not in this sweep; known: {[w.name for w in self.workloads]}")

    def targets(self) -> list[TargetId]:
        return [
            TargetId(s.id, w.name, rep)
            for s in self.setups
            for w in self.workloads
            for rep in range(1, self.repetitions + 1)
        ]

    def run_order(self, mode: str = "shuffled", seed: int = 1) -> list[TargetId]:
        """The order in which targets are measured (see ``run_order`` in the config schema)."""
        if mode == "grouped":
            return [
                TargetId(s.id, w.name, rep)
                for s in self.setups
                for rep in range(1, self.repetitions + 1)
                for w in self.workloads
            ]
        if mode == "shuffled":
            order = self.targets()
            random.Random(seed).shuffle(order)
            return order
        if mode == "blocked":
            # A randomized block design with the repetition rounds as blocks: round r measures
            # repetition r of every cell, the setups in a new random order each round and the
            # workloads of a setup back to back (in random order), so each setup is deployed once
            # per round. Drift over the sweep falls on every cell alike (each round holds all of
            # them), and drift within a round is randomized over the setups.
            rng = random.Random(seed)
            order = []
            for rep in range(1, self.repetitions + 1):
                for setup in rng.sample(self.setups, len(self.setups)):
                    order += [TargetId(setup.id, w.name, rep) for w in rng.sample(self.workloads, len(self.workloads))]
            return order
        raise ValueError(f"run_order.mode '{mode}' is not one of ['shuffled', 'blocked', 'grouped']")

    def priorities(self, mode: str = "shuffled", seed: int = 1) -> dict[str, int]:
        """Snakemake priority per target path: the first target to run gets the highest."""
        order = self.run_order(mode, seed)
        return {target.path: len(order) - position for position, target in enumerate(order)}


def workload_specs(config: dict[str, Any]) -> list[WorkloadSpec]:
    definitions = config["workloads"]
    specs = []
    for name in config["sweep"]["workloads"]:
        params = {k: v for k, v in definitions[name].items() if k != "kind"}
        specs.append(WorkloadSpec(name=name, kind=definitions[name]["kind"], params=params))
    return specs


def candidate_setups(config: dict[str, Any]) -> list[SetupSpec]:
    setups: list[SetupSpec] = []
    backend = config["testbed"]["backend"]
    single = config["sweep"].get("single")
    if single:
        for solution, filter_name, containers, extra in itertools.product(
            single["solutions"], single["filters"], single["containers"], single["extra_rules"]
        ):
            setups.append(SetupSpec("single", solution, filter_name, containers, backend=backend,
                                    extra_rules=extra))
    multi = config["sweep"].get("multi")
    if multi:
        ciphers = multi.get("ciphers", {})
        for tunnel, filter_name, containers in itertools.product(
            multi["tunnels"], multi["filters"], multi["containers"]
        ):
            for cipher in ciphers.get(tunnel) or [None]:  # None: the tunnel's default suite
                setups.append(SetupSpec("multi", multi["solution"], filter_name, containers, tunnel=tunnel,
                                        hosts=multi["hosts"], backend=backend, cipher=cipher))
    return setups


def expand(config: dict[str, Any], check_machine: bool = False) -> Sweep:
    """Build the sweep of a validated config.

    With *check_machine*, setups this machine cannot run (see :mod:`seconetbench.preflight`) are
    excluded with the reason; without it only combinations that can never work are excluded.
    """
    from seconetbench import preflight

    setups, excluded = [], []
    for setup in candidate_setups(config):
        reason = preflight.incompatibility(setup)
        if reason is None and check_machine:
            reason = preflight.unsupported_reason(setup)
        if reason is None:
            setups.append(setup)
        else:
            excluded.append(Exclusion(setup, reason))
    # Adaptive repetitions start with the minimum; convergence rounds add targets beyond it.
    from seconetbench.convergence import policy

    return Sweep(setups, excluded, workload_specs(config), policy(config)["min"])
