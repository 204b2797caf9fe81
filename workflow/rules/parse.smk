# One job per setup and repetition counts: every cell of the setup, each workload's table in the
# file of its kind and the tables of the targets as a whole (deployment facts, monitor samples;
# tables.TARGET_MEASURES), one file per table kind holding every repetition. Per setup rather
# than per target or cell: each job costs about half a second of start-up and the planning time
# grows with the number of jobs (docs/decisions.md, "One parse job per setup"). The name says
# how many repetitions of each cell the file holds (tables.parsed_name): a setup whose cells
# get more repetitions (convergence rounds) is parsed again under its new name.
from seconetbench.tables import parsed_targets


rule parse_setup:
    input:
        # the raw directories, or the records of the batches that measure them (common.smk)
        lambda wildcards: measured(parsed_targets(wildcards.setup, WORKLOAD_NAMES, wildcards.reps)),
    output:
        **{kind: f"{RESULTS}/parsed/{{setup}}/reps{{reps}}.{kind}.parquet" for kind in TABLE_KINDS},
    params:
        raw=lambda wildcards: [f"{RESULTS}/raw/{target}"
                               for target in parsed_targets(wildcards.setup, WORKLOAD_NAMES, wildcards.reps)],
        kinds=TABLE_KINDS,
    log:
        f"{RESULTS}/logs/parse_setup/{{setup}}/reps{{reps}}.log",
    script:
        "../scripts/parse_setup.py"
