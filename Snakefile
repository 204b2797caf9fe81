# SeCoNetBench: table of contents of the workflow.
#   snakemake --cores 2 --configfile config/config.yaml           the sweep (measure, parse, tables, figures, findings)
#   snakemake figures --cores 2 --configfile config/config.yaml   figures from existing tables, never measures
#   snakemake findings --cores 2 --configfile config/config.yaml  the paper's findings checked (results/…/findings.md)
#   snakemake compare --cores 2 --configfile config/config.yaml   candidate runs against a baseline (config compare:)
#     (name targets before --configfile, which takes several values)
# The workflow profile profiles/default (loaded automatically) sets testbed=1, keep-going,
# force-use-threads (run_batch measures inside this process), ...
import os

from snakemake.utils import min_version

min_version("9.0")


# config/config.yaml (the quick sweep) only when no --configfile is named: a named file stands
# alone, so that it measures what its name says (Snakemake would merge it over this one and
# keep config.yaml's setups). Several named files merge in order, an overlay over its base
# (config/README.md). Relative to this file, so that --directory elsewhere still finds it.
if not workflow.overwrite_configfiles:

    configfile: os.path.join(workflow.basedir, "config/config.yaml")


include: "workflow/rules/common.smk"
include: "workflow/rules/convergence.smk"
include: "workflow/rules/measure.smk"
include: "workflow/rules/parse.smk"
include: "workflow/rules/aggregate.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/compare.smk"
include: "workflow/rules/findings.smk"


report: "workflow/report/workflow.rst"


rule all:
    default_target: True
    input:
        TABLE_FILES,
        FIGURE_FILES,
        COMPARE_FILES,
        FINDINGS_FILES,


rule measure:
    input:
        raw_targets,


rule tables:
    input:
        TABLE_FILES,


rule figures:
    input:
        FIGURE_FILES,


rule compare:
    input:
        COMPARE_FILES,


rule findings:
    input:
        FINDINGS_FILES,


onsuccess:
    teardown_testbed()


onerror:
    teardown_testbed()
