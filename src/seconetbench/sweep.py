"""Expand a validated configuration into the setups, workloads and targets of a sweep.

Combinations that cannot run are not dropped silently: :class:`Sweep` keeps each excluded setup
with the reason (an incompatible technology pair, or what this machine lacks).
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from seconetbench.errors import InvalidValueError, UnknownNameError
from seconetbench.meta import META_FILE
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
            excluded = {e.setup.id: e.reason for e in self.excluded}
            if setup_id in excluded:
                raise UnknownNameError("setup", setup_id, where=f" in this sweep: it is excluded ({excluded[setup_id]})") from None
            raise UnknownNameError("setup", setup_id, self._by_id, where=" in this sweep") from None

    def workload(self, name: str) -> WorkloadSpec:
        for workload in self.workloads:
            if workload.name == name:
                return workload
        raise UnknownNameError("workload", name, [w.name for w in self.workloads], where=" in this sweep")

    def targets(self) -> list[TargetId]:
        return [
            TargetId(s.id, w.name, rep)
            for s in self.setups
            for w in self.workloads
            for rep in range(1, self.repetitions + 1)
        ]

    def run_order(self, mode: str = "shuffled", seed: int = 1, groups: int = 1) -> list[TargetId]:
        """The order in which targets are measured (see ``run_order`` in the config schema).
        *groups*: testbed groups measuring at once (testbed/groups.py)."""
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
            # each round as its setups' blocks (a setup's workloads back to back)
            rounds = [[[TargetId(setup.id, w.name, rep) for w in rng.sample(self.workloads, len(self.workloads))]
                       for setup in rng.sample(self.setups, len(self.setups))]
                      for rep in range(1, self.repetitions + 1)]
            # With several testbed groups, round r prefers group (r - 1) mod N (testbed/groups.py):
            # rounds 1..N run side by side, their setup blocks interleaved, so that the N
            # measurements Snakemake starts first are of N different rounds, on N groups.
            order = []
            for wave in range(0, len(rounds), groups):
                for step in zip(*rounds[wave:wave + groups], strict=True):
                    order += [target for block in step for target in block]
            return order
        raise InvalidValueError(f"run_order.mode '{mode}' is not one of ['shuffled', 'blocked', 'grouped']")

    def priorities(self, mode: str = "shuffled", seed: int = 1, groups: int = 1) -> dict[str, int]:
        """Snakemake priority per target path: the first target to run gets the highest."""
        order = self.run_order(mode, seed, groups)
        return {target.path: len(order) - position for position, target in enumerate(order)}

    def measurement_order(self, mode: str = "shuffled", seed: int = 1,
                          reps_by_cell: dict[str, int] | None = None) -> list[TargetId]:
        """:meth:`run_order`, then the repetitions that convergence rounds added beyond it
        (*reps_by_cell*: ``setup/workload`` -> repetitions), by repetition, each with the setups
        and workloads in the order of the sweep (a setup's targets back to back)."""
        order = self.run_order(mode, seed)
        added = max((reps_by_cell or {}).values(), default=0)
        for rep in range(self.repetitions + 1, added + 1):
            order += [TargetId(s.id, w.name, rep) for s in self.setups for w in self.workloads
                      if reps_by_cell.get(f"{s.id}/{w.name}", 0) >= rep]
        return order


def batches(order: list[TargetId], complete: Callable[[TargetId], bool], groups: int = 1) -> list[list[TargetId]]:
    """The targets of *order* not yet *complete*, cut into batches: runs of consecutive targets
    of one setup (complete targets in between do not cut a run). One job measures a batch on one
    deployment, so the targets of a batch follow each other without a scheduler in between
    (docs/decisions.md, "A measurement job measures a batch of targets"). With several testbed
    *groups*, a batch also stays on one group: its rounds are of that group (testbed/groups.py
    round_group), or the job would hold its group while it waits for another."""
    runs: list[list[TargetId]] = []
    for target in order:
        if complete(target):
            continue
        if runs and runs[-1][-1].setup == target.setup and (runs[-1][-1].rep - target.rep) % groups == 0:
            runs[-1].append(target)
        else:
            runs.append([target])
    return runs


def workload_specs(config: dict[str, Any]) -> list[WorkloadSpec]:
    definitions = config["workloads"]
    specs = []
    for name in config["sweep"]["workloads"]:
        params = {k: v for k, v in definitions[name].items() if k != "kind"}
        specs.append(WorkloadSpec(name=name, kind=definitions[name]["kind"], params=params))
    return specs


def requested_implementations(scenario: dict[str, Any], name: str) -> list[str]:
    """The implementations a scenario's ``implementations`` asks of technology *name*: one (auto
    when not listed), or several measured side by side (each a setup of its own)."""
    value = scenario.get("implementations", {}).get(name, "auto")
    return list(value) if isinstance(value, list) else [value]


def candidate_setups(config: dict[str, Any]) -> list[SetupSpec]:
    setups: list[SetupSpec] = []
    backend = config["testbed"]["backend"]
    single = config["sweep"].get("single")
    if single:
        for solution, filter_name, containers, extra in itertools.product(
            single["solutions"], single["filters"], single["containers"], single["extra_rules"]
        ):
            for implementation in requested_implementations(single, solution):
                setups.append(SetupSpec("single", solution, filter_name, containers, backend=backend,
                                        extra_rules=extra, implementation=implementation))
    multi = config["sweep"].get("multi")
    if multi:
        ciphers = multi.get("ciphers", {})
        for tunnel, filter_name, containers in itertools.product(
            multi["tunnels"], multi["filters"], multi["containers"]
        ):
            for cipher, implementation in itertools.product(
                    ciphers.get(tunnel) or [None],  # None: the tunnel's default suite
                    requested_implementations(multi, tunnel)):
                setups.append(SetupSpec("multi", multi["solution"], filter_name, containers, tunnel=tunnel,
                                        hosts=multi["hosts"], backend=backend, cipher=cipher,
                                        implementation=implementation))
    return setups


def check_pinned(config: dict[str, Any], setups: list[SetupSpec]) -> None:
    """Refuse, before anything is deployed, an implementation the config pins (sweep.*.
    implementations) that this machine lacks: a ConfigError with the probe's words and the fix."""
    from seconetbench import preflight
    from seconetbench.errors import ConfigError

    for setup in setups:
        reason = preflight.pinned_unavailable(setup)
        if reason:
            name = preflight.implementation_technology(setup).name
            raise ConfigError(f"sweep.{setup.scenario}.implementations.{name}", reason)


def resolve_setup(config: dict[str, Any], setup_id: str, outside_sweep: bool = False) -> SetupSpec:
    """The setup *setup_id* exactly as the sweep of the validated *config* measures it: an id
    does not say everything (e.g. a multi-host id not the solution on each host).

    An id the sweep does not hold is refused with the known ones; with *outside_sweep* it is
    read instead, with the config's ``sweep.multi.solution`` (or the schema's default) for what
    the id does not say."""
    from seconetbench.config import schema_default

    sweep = expand(config)
    try:
        return sweep.setup(setup_id)
    except KeyError:
        if not outside_sweep or setup_id in {e.setup.id for e in sweep.excluded}:
            raise
    multi = config["sweep"].get("multi") or {}
    return SetupSpec.parse(setup_id, multi_solution=multi.get("solution") or schema_default("sweep", "multi", "solution"))


def has_raw_results(config: dict[str, Any], setup: SetupSpec) -> bool:
    """Whether *setup* has at least one complete raw target (with its meta.json) in results_dir."""
    raw = Path(config["results_dir"]) / "raw" / setup.id
    return next(raw.glob(f"*/rep*/{META_FILE}"), None) is not None


def expand(config: dict[str, Any], check_machine: bool = False, keep_measured: bool = False) -> Sweep:
    """Build the sweep of a validated config.

    With *check_machine*, setups this machine cannot run (see :mod:`seconetbench.preflight`) are
    excluded with the reason; without it only combinations that can never work are excluded.
    With *keep_measured* as well, a setup that already has raw results is kept whatever this
    machine lacks: the machine checks gate measurement only, so parsing, tables and figures of
    existing results run on a machine without the testbed's tools (the workflow passes both).
    """
    from seconetbench import config as configuration
    from seconetbench import preflight, probes

    from seconetbench.backends import BACKENDS

    candidates = candidate_setups(config)
    # on remote hosts (ssh, vm) each host checks itself at deploy: this machine's kernel says nothing
    check_machine = check_machine and BACKENDS.get(config["testbed"]["backend"]).capabilities.technologies_here
    if check_machine:
        # the run's probe results (probed once per run, cached in its state directory): `auto`
        # implementations resolve with them, pinned ones are checked against them. Only where
        # the machine is checked: analysing results probes nothing.
        probes.results(configuration.run_prefix(config))
        check_pinned(config, [s for s in candidates if not (keep_measured and has_raw_results(config, s))])
    setups, excluded = [], []
    for setup in candidates:
        reason = preflight.incompatibility(setup)
        if reason is None and check_machine and not (keep_measured and has_raw_results(config, setup)):
            reason = preflight.unsupported_reason(setup)
        if reason is None:
            setups.append(setup)
        else:
            excluded.append(Exclusion(setup, reason))
    # Adaptive repetitions start with the minimum; convergence rounds add targets beyond it.
    from seconetbench.convergence import policy

    return Sweep(setups, excluded, workload_specs(config), policy(config)["min"])
