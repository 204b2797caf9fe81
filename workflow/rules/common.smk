# Validation, ids, wildcard constraints and the lists of files the target rules ask for.
# Logic lives in the seconetbench package; this file only asks it.
import sys

from seconetbench import config as seconet_config
from seconetbench import figures as seconet_figures
from seconetbench import tables as seconet_tables
from seconetbench.cells import MixedCellError, check_results
from seconetbench.errors import ConfigError
from seconetbench.sweep import expand
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
    reps=r"[0-9]+",
    kind=r"[a-z0-9_]+",
    figure=r"[a-z0-9_]+",


# Measurement order (config run_order): Snakemake runs the ready job of highest priority first.
RUN_PRIORITY = SWEEP.priorities(CONFIG["run_order"]["mode"], CONFIG["run_order"]["seed"])


def run_priority(wildcards):
    return RUN_PRIORITY.get(f"{wildcards.setup}/{wildcards.workload}/rep{wildcards.rep}", 1)


TABLE_OF_WORKLOAD = {w.name: get_workload(w).table for w in SWEEP.workloads}
# every target also yields the tables of the target as a whole (deployment, monitor samples)
TARGET_KINDS = sorted(seconet_tables.TARGET_MEASURES)
TABLE_KINDS = sorted(set(TABLE_OF_WORKLOAD.values())) + TARGET_KINDS
TABLE_FILES = [f"{RESULTS}/tables/{kind}.parquet" for kind in TABLE_KINDS] + [f"{RESULTS}/tables/summary.parquet"]
FIGURES = {name: f for name, f in seconet_figures.FIGURES.items()
           if f.applies([*TABLE_KINDS, "summary"], SWEEP, CONFIG)}
FIGURE_FILES = [f"{RESULTS}/figures/{name}.{ext}" for name in FIGURES for ext in ("html", "svg")]


def parsed_of_kind(wildcards):
    # final_reps() (convergence.smk) is the minimum, or what the convergence rounds decided
    return parsed_files(final_reps(), kind=wildcards.kind)


def raw_targets(wildcards):
    return [f"{RESULTS}/raw/{cell}/rep{rep}" for cell, count in final_reps().items() for rep in range(1, count + 1)]


def teardown_testbed():
    # Reused deployments (and the vm backend's VMs) stay up between targets; the end of the
    # invocation removes them.
    from seconetbench.backends import for_config

    try:
        for_config(CONFIG, PREFIX).finish()
    except Exception as error:  # the sweep's outcome must not hinge on cleanup; say so
        print(f"SeCoNetBench: teardown of {PREFIX} failed: {error}; run `seconetbench clean`", file=sys.stderr)
