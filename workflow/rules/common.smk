# Validation, ids, wildcard constraints and the lists of files the target rules ask for.
# Logic lives in the seconetbench package; this file only asks it.
import json
import os
import sys
from pathlib import Path

from seconetbench import config as seconet_config
from seconetbench import figures as seconet_figures
from seconetbench import tables as seconet_tables
from seconetbench.cells import MixedCellError, check_results
from seconetbench.errors import ConfigError
from seconetbench.sweep import batches as measurement_batches
from seconetbench.sweep import expand
from seconetbench.testbed import groups as seconet_groups
from seconetbench.workloads import get_workload

try:
    CONFIG = seconet_config.validate(config)
except ConfigError as error:
    sys.exit(f"SeCoNetBench: invalid configuration: {error}")

# What this machine lacks excludes only setups not measured yet: analysis runs anywhere. A
# pinned implementation (sweep.*.implementations) this machine lacks is refused here, before
# any job, with the probe's words.
try:
    SWEEP = expand(CONFIG, check_machine=True, keep_measured=True)
except ConfigError as error:
    sys.exit(f"SeCoNetBench: {error}")
RESULTS = CONFIG["results_dir"]
PREFIX = seconet_config.run_prefix(CONFIG)

try:
    # before any job: no cell gets repetitions of other parameters than it holds (docs/decisions.md)
    check_results(RESULTS, SWEEP.setups, SWEEP.workloads)
except MixedCellError as error:
    sys.exit(f"SeCoNetBench: {error}")

for excluded in SWEEP.excluded:
    print(f"SeCoNetBench: setup {excluded.setup.id} excluded: {excluded.reason}", file=sys.stderr)


wildcard_constraints:
    round=r"[0-9]+",
    setup=r"[a-z0-9][a-z0-9_-]*",
    workload=r"[a-z0-9][a-z0-9_-]*",
    rep=r"[0-9]+",
    reps=r"[0-9]+(-[0-9]+)*",  # tables.parsed_name
    kind=r"[a-z0-9_]+",
    figure=r"[a-z0-9_]+",


# Testbed groups (testbed.ssh.groups, testbed.vm.groups): one measurement per group at once.
# A measuring job asks testbed=1 (the profile's cap of 1 becomes the number of groups) and one
# unit of its round's group, testbed_g<k>: a job starts when its group is free, so a round stays
# on one group (testbed/groups.py round_group) and no job waits while another group idles.
TESTBED_GROUPS = seconet_groups.group_count(CONFIG["testbed"])
TESTBED_GROUP_SLOTS = {}
if TESTBED_GROUPS > 1:
    workflow.register_resource("testbed", TESTBED_GROUPS)
    for _group in range(1, TESTBED_GROUPS + 1):
        workflow.register_resource(f"testbed_g{_group}", 1)
        TESTBED_GROUP_SLOTS[f"testbed_g{_group}"] = (
            lambda wildcards, group=_group: int(seconet_groups.round_group(int(wildcards.rep), TESTBED_GROUPS) == group))

# Measurement order (config run_order): Snakemake runs the ready job of highest priority first.
RUN_PRIORITY = SWEEP.priorities(CONFIG["run_order"]["mode"], CONFIG["run_order"]["seed"], TESTBED_GROUPS)


def run_priority(wildcards):
    return RUN_PRIORITY.get(f"{wildcards.setup}/{wildcards.workload}/rep{wildcards.rep}", 1)


WORKLOAD_NAMES = [w.name for w in SWEEP.workloads]
# the workloads' own tables; every target also yields the tables of the target as a whole
# (deployment, monitor samples)
WORKLOAD_KINDS = sorted({get_workload(w).table for w in SWEEP.workloads})
TABLE_KINDS = WORKLOAD_KINDS + sorted(seconet_tables.TARGET_MEASURES)
TABLE_FILES = [f"{RESULTS}/tables/{kind}.parquet" for kind in TABLE_KINDS] + [f"{RESULTS}/tables/summary.parquet"]
FIGURES = {name: f for name, f in seconet_figures.FIGURES.items()
           if f.applies([*TABLE_KINDS, "summary"], SWEEP, CONFIG)}
FIGURE_FILES = [f"{RESULTS}/figures/{name}.{ext}" for name in FIGURES for ext in ("html", "svg")]


def parsed_of_kind(wildcards):
    # final_reps() (convergence.smk) is the minimum, or what the convergence rounds decided
    return parsed_files(final_reps(), [wildcards.kind])


def raw_targets(wildcards):
    # measured(): the raw directories, or the records of the batches that measure them
    return measured([f"{cell}/rep{rep}" for cell, count in final_reps().items() for rep in range(1, count + 1)])


# Measurement batches (what run_batch in measure.smk measures): the targets still missing, in
# run order, cut into runs of one setup (sweep.batches).
def decided_rounds():
    """How many convergence rounds have decided so far (their files on disk; 0 without adaptive
    repetitions). Read directly: no checkpoint is waited for here."""
    rounds = 0
    while ADAPTIVE and os.path.exists(f"{RESULTS}/convergence/round{rounds}.json"):
        rounds += 1
    return rounds


_BATCH_PLANS = {}


def batch_plan():
    """The batches of the targets missing now -> (batch record of each missing target, targets of
    each batch record), for the repetitions decided so far: the minimum, or what the latest round
    asks for. Computed once per decided round: within an invocation, the DAG asks again only
    after a round added targets."""
    rounds = decided_rounds()
    if rounds not in _BATCH_PLANS:
        reps = {cell: REP_POLICY["min"] for cell in CELLS}
        if rounds:
            decided = json.loads(Path(f"{RESULTS}/convergence/round{rounds - 1}.json").read_text())
            reps = {cell: d["reps"] for cell, d in decided["cells"].items()}
        order = SWEEP.measurement_order(CONFIG["run_order"]["mode"], CONFIG["run_order"]["seed"], reps)
        record_of, targets_of = {}, {}
        # a batch stays on one testbed group (its rounds' group)
        for batch in measurement_batches(order, lambda t: os.path.exists(f"{RESULTS}/raw/{t.path}"), TESTBED_GROUPS):
            record = f"{RESULTS}/batches/{batch[0].path}.json"
            if os.path.exists(record):
                os.remove(record)  # left by an interrupted invocation; this batch is not measured yet
            targets_of[record] = [t.path for t in batch]
            record_of.update((t.path, record) for t in batch)
        _BATCH_PLANS[rounds] = (record_of, targets_of)
    return _BATCH_PLANS[rounds]


def measured(targets):
    """What the jobs that read the raw directories of *targets* (``setup/workload/repN``) take as
    input: a complete target's raw directory, a missing one's batch record."""
    record_of = batch_plan()[0]
    return sorted({record_of.get(t) or f"{RESULTS}/raw/{t}" for t in targets})


def batch_targets(wildcards):
    first = f"{wildcards.setup}/{wildcards.workload}/rep{wildcards.rep}"
    batch_plan()
    # the plan the job was made from: a later round's plan holds only the targets still missing
    for _, targets_of in reversed(list(_BATCH_PLANS.values())):
        if f"{RESULTS}/batches/{first}.json" in targets_of:
            return targets_of[f"{RESULTS}/batches/{first}.json"]
    return [first]  # asked for by name (snakemake <results>/batches/…): that target alone


def teardown_testbed():
    # Reused deployments (and the vm backend's VMs) stay up between targets; the end of the
    # invocation removes them, on every testbed group. The sweep's outcome must not hinge on
    # cleanup; say what failed.
    for failed in seconet_groups.finish_all(CONFIG):
        print(f"SeCoNetBench: teardown failed on {failed}; run `seconetbench clean`", file=sys.stderr)
