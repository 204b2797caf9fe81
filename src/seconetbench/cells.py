"""What a setup x workload cell is measured with, and the check that a cell never mixes it.

A cell (``{setup}/{workload}``) is what repetitions, statistics and figures pool over, so its
repetitions must have been measured with the same parameters. Its path does not say all of them:
two configs may share setup ids and workload names but differ in the multi-host solution, a
workload's count or duration, the generator, the cipher suite, ... :func:`cell_params` is the
canonical record of every parameter that changes what is measured: whatever
``SetupSpec.to_dict()`` and ``WorkloadSpec.to_dict()`` hold (less the id and name, which the
path already is), so a field added there joins the record without a change here.
:func:`fingerprint` hashes it. Both go into each target's meta.json (``cell_params``,
``cell_fingerprint``).

Three places compare what a cell was measured with against what a config asks, and refuse a
difference with :class:`MixedCellError`: the workflow before planning (:func:`check_results`,
one pass over the raw meta.json files), the runner before measuring a target
(:func:`check_cell`), and parsing (:func:`check_repetitions`). The last two also compare what a
choice resolved to when the target ran (:func:`ran_of`: ``generator: auto``, an ``auto``
implementation) and the CPU pinning of the testbed, which the first cannot know on a machine that only analyses results.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from seconetbench.errors import SeconetError
from seconetbench.meta import META_FILE, read_meta
from seconetbench.spec import SetupSpec, WorkloadSpec

# meta.write_meta writes meta.json with json.dumps(indent=1): '"cell_fingerprint": "<hex>"'
RECORDED_FINGERPRINT = re.compile(r'"cell_fingerprint":\s*"([0-9a-f]+)"')
# what a raw directory is named by, not a parameter of what it measured
NAMING_KEYS = {"setup": "id", "workload": "name"}
ABSENT = "(absent)"
# a refusal lists this many cells in full, then counts the rest
LISTED_CELLS = 20


class MixedCellError(SeconetError):
    """A cell holds (or would hold) repetitions measured with different parameters."""


def _canonical(value: Any) -> Any:
    """JSON-stable values: 3.0 and 3 are the same parameter; tuples are lists."""
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def params_of(setup: dict[str, Any], workload: dict[str, Any]) -> dict[str, Any]:
    """The canonical cell parameters from a setup's and a workload's dicts (as in meta.json).
    A null value counts as absent: a field added later with a null default changes nothing."""
    params = {}
    for part, described in (("setup", setup), ("workload", workload)):
        params[part] = {key: _canonical(value) for key, value in sorted(described.items())
                        if key != NAMING_KEYS[part] and value is not None}
    return params


def cell_params(setup: SetupSpec, workload: WorkloadSpec) -> dict[str, Any]:
    return params_of(setup.to_dict(), workload.to_dict())


def fingerprint(params: dict[str, Any]) -> str:
    text = json.dumps(_canonical(params), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def recorded_params(meta: dict[str, Any]) -> dict[str, Any]:
    """What a raw target was measured with: its recorded ``cell_params``, or, for a target
    measured before they were recorded, the same record built from its ``setup`` and ``workload``."""
    if "cell_params" in meta:
        return params_of(meta["cell_params"]["setup"], meta["cell_params"]["workload"])
    return params_of(meta["setup"], meta["workload"])


def ran_of(meta: dict[str, Any]) -> dict[str, Any]:
    """What a choice of the config resolved to when the target ran: ``generator: auto`` became
    uperf or iperf3, an ``auto`` implementation kernel or userspace, by what this machine has.
    Compared by the runner and by parsing, not by the workflow's check, which may run on a
    machine that only analyses results and lacks the tools."""
    pinning = meta.get("cpu_pinning")
    ran = {"generator": (meta.get("workload_run") or {}).get("generator"),
           "implementation": ((meta.get("deployment") or {}).get("implementation") or {}).get("resolved"),
           # testbed.cpu_pinning changes what is measured as much as a parameter does
           "cpu_pinning": pinning_of(pinning.get("requested")) if isinstance(pinning, dict) else None}
    return {key: value for key, value in ran.items() if value is not None}


def pinning_of(requested: dict[str, Any] | None) -> Any:
    """testbed.cpu_pinning as :func:`ran_of` compares it ('off' when nothing is pinned)."""
    return _canonical(requested) if requested else "off"


def _with_ran(params: dict[str, Any], ran: dict[str, Any]) -> dict[str, Any]:
    return {**params, "ran": ran} if ran else params


def _flat(params: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in params.items():
        if isinstance(value, dict) and value:
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def differences(measured: dict[str, Any], asked: dict[str, Any]) -> list[str]:
    """Each differing key with both values, 'measured → asked': ['workload.count 5 → 9']."""
    before, after = _flat(measured), _flat(asked)

    def shown(values: dict[str, Any], key: str) -> str:
        return json.dumps(values[key]) if key in values else ABSENT

    return [f"{key} {shown(before, key)} → {shown(after, key)}"
            for key in sorted(set(before) | set(after)) if before.get(key, ABSENT) != after.get(key, ABSENT)]


def _rep_order(rep: str) -> int:
    """'rep12' or '12' -> 12, for listing repetitions in order."""
    number = str(rep).removeprefix("rep")
    return int(number) if number.isdigit() else 0


def _by_fingerprint(params_by_rep: dict[str, dict[str, Any]]) -> dict[str, tuple[dict[str, Any], list[str]]]:
    """fingerprint -> (params, the reps measured with them, in order)."""
    groups: dict[str, tuple[dict[str, Any], list[str]]] = {}
    for rep in sorted(params_by_rep, key=_rep_order):
        groups.setdefault(fingerprint(params_by_rep[rep]), (params_by_rep[rep], []))[1].append(rep)
    return groups


def _changes(before: dict[str, Any], after: dict[str, Any]) -> str:
    return "; ".join(differences(before, after)) or "the same values in another form"


def mismatch(cell: str, measured_by_rep: dict[str, dict[str, Any]], asked: dict[str, Any]) -> str | None:
    """Why the repetitions *measured_by_rep* (rep name -> cell params) of *cell* do not match
    *asked*, or None when every one does: 'single-bridge-none-c2/latency was measured with
    different parameters: workload.count 5 → 9 (rep1, rep2)'."""
    groups = _by_fingerprint(measured_by_rep)
    groups.pop(fingerprint(asked), None)
    if not groups:
        return None
    reasons = [f"{_changes(params, asked)} ({', '.join(reps)})" for params, reps in groups.values()]
    return f"{cell} was measured with different parameters: " + " and ".join(reasons)


def _move_away(results_dir: Path, cell: str) -> str:
    setup = cell.split("/")[0]
    return (f"mkdir -p {results_dir}/superseded/{setup} && "
            f"mv {results_dir}/raw/{cell} {results_dir}/superseded/{cell}")


def ways_out(results_dir: str | Path, cells: list[str]) -> str:
    """How to get out of a refusal, with the commands for the first cell."""
    results_dir = Path(results_dir)
    example = cells[0] if cells else "<setup>/<workload>"
    return (f"Nothing was measured. To keep both, measure into another results_dir (the config key "
            f"results_dir, e.g. {results_dir}-2); to measure a cell anew with these parameters, move its raw "
            f"directory away first, e.g. `{_move_away(results_dir, example)}`.")


def _refusal(results_dir: str | Path, reasons: dict[str, str]) -> MixedCellError:
    cells = sorted(reasons)
    lines = [reasons[cell] for cell in cells[:LISTED_CELLS]]
    if len(cells) > LISTED_CELLS:
        lines.append(f"... and {len(cells) - LISTED_CELLS} more cells")
    return MixedCellError("\n".join(lines) + "\n" + ways_out(results_dir, cells))


def _rep_dirs(cell_dir: str | Path) -> Iterator[os.DirEntry]:
    """The repetition directories (rep<n>) of a cell; a '.rep<n>.*.partial' being written is not one."""
    try:
        entries = list(os.scandir(cell_dir))
    except FileNotFoundError:
        return
    for entry in entries:
        if entry.name.startswith("rep") and entry.is_dir():
            yield entry


def _differing(cell_dir: str | Path, wanted: str) -> dict[str, dict[str, Any]]:
    """rep name -> cell params of each complete repetition (with its meta.json) in *cell_dir*
    that was not measured with the params of fingerprint *wanted*.

    The recorded fingerprint is read from the text first: parsing every meta.json (about 7 kB
    each) took 3 s for the 7 722 targets of config/full.yaml, finding its fingerprint 0.01 s.
    Only a target whose recorded fingerprint differs (or that has none) is parsed, and compared
    by its params, so that a fingerprint computed another way is no false alarm."""
    differing = {}
    for entry in _rep_dirs(cell_dir):
        try:
            text = (Path(entry.path) / META_FILE).read_text()
        except FileNotFoundError:  # incomplete: the workflow measures it again
            continue
        recorded = RECORDED_FINGERPRINT.search(text)
        if recorded and recorded.group(1) == wanted:
            continue
        params = recorded_params(json.loads(text))
        if fingerprint(params) != wanted:
            differing[entry.name] = params
    return differing


def check_cell(cell_dir: str | Path, setup: SetupSpec, workload: WorkloadSpec, results_dir: str | Path,
               ran: dict[str, Any] | None = None) -> None:
    """Refuse measuring another repetition of the cell in *cell_dir* (``raw/{setup}/{workload}``)
    when its existing repetitions were measured with other parameters, or when what *ran* says
    would run now (keys of :func:`ran_of`) differs from what ran for them (the runner's guard)."""
    cell = f"{setup.id}/{workload.name}"
    ran = {key: value for key, value in (ran or {}).items() if value is not None}
    asked = _with_ran(cell_params(setup, workload), ran)
    measured = {}
    for entry in _rep_dirs(cell_dir):
        try:
            meta = read_meta(entry.path)
        except FileNotFoundError:  # incomplete: the workflow measures it again
            continue
        # what a repetition did not record is compared by its parameters only
        recorded = {key: ran_of(meta).get(key, value) for key, value in ran.items()}
        measured[entry.name] = _with_ran(recorded_params(meta), recorded)
    reason = mismatch(cell, measured, asked)
    if reason:
        raise _refusal(results_dir, {cell: reason})


def check_results(results_dir: str | Path, setups: Iterable[SetupSpec], workloads: Iterable[WorkloadSpec]) -> None:
    """Refuse a sweep any of whose cells already holds repetitions measured with other parameters.

    One pass over the sweep's cells under ``{results_dir}/raw`` (nothing to read when the
    directory is new); cells of other sweeps in the same directory are not this sweep's business."""
    raw = Path(results_dir) / "raw"
    if not raw.is_dir():
        return
    workloads = list(workloads)
    reasons = {}
    for setup in setups:
        if not (raw / setup.id).is_dir():
            continue
        for workload in workloads:
            cell = f"{setup.id}/{workload.name}"
            asked = cell_params(setup, workload)
            reason = mismatch(cell, _differing(raw / cell, fingerprint(asked)), asked)
            if reason:
                reasons[cell] = reason
    if reasons:
        raise _refusal(results_dir, reasons)


def check_repetitions(metas_by_rep: dict[str, dict[str, Any]], cell_dir: str | Path) -> None:
    """Refuse parsing the cell in *cell_dir* (``{results_dir}/raw/{setup}/{workload}``) when its
    repetitions (rep -> meta.json) were measured with different parameters, or ran another
    generator or implementation. What some repetitions did not record (measured before it was)
    is left out of the comparison, as the runner's guard does."""
    ran = {rep: ran_of(meta) for rep, meta in metas_by_rep.items()}
    recorded_by_all = set.intersection(*(set(r) for r in ran.values())) if ran else set()
    runs = {f"rep{rep}": _with_ran(recorded_params(meta), {k: v for k, v in ran[rep].items() if k in recorded_by_all})
            for rep, meta in metas_by_rep.items()}
    groups = _by_fingerprint(runs)
    if len(groups) < 2:
        return
    (reference, first_reps), *others = groups.values()
    reasons = [f"{_changes(reference, params)} ({', '.join(first_reps)} → {', '.join(reps)})"
               for params, reps in others]
    results_dir = Path(cell_dir).parent.parent.parent
    cell = f"{Path(cell_dir).parent.name}/{Path(cell_dir).name}"
    raise MixedCellError(f"{cell} mixes repetitions measured with different parameters: "
                         + " and ".join(reasons) + "\nIts repetitions cannot be pooled: move its raw directory "
                         f"away (`{_move_away(results_dir, cell)}`) and measure the cell again with one config.")
