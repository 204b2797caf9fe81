# One job per setup x workload cell and repetition count: the workload's own table and the tables
# of the targets as a whole (deployment facts, monitor samples; tables.TARGET_MEASURES), every
# repetition in one file. Per cell rather than per target: each job costs about a second of
# start-up and the planning time grows with the number of jobs (docs/decisions.md). A cell that
# gets more repetitions (convergence rounds) is parsed again as reps{n} with the larger n.
rule parse_cell:
    input:
        # the raw directories, or the records of the batches that measure them (common.smk)
        lambda wildcards: measured([f"{wildcards.setup}/{wildcards.workload}/rep{rep}"
                                    for rep in range(1, int(wildcards.reps) + 1)]),
    output:
        main=f"{RESULTS}/parsed/{{setup}}/{{workload}}/reps{{reps}}.parquet",
        **{kind: f"{RESULTS}/parsed/{{setup}}/{{workload}}/reps{{reps}}.{kind}.parquet" for kind in TARGET_KINDS},
    params:
        raw=lambda wildcards: [f"{RESULTS}/raw/{wildcards.setup}/{wildcards.workload}/rep{rep}"
                               for rep in range(1, int(wildcards.reps) + 1)],
        kinds=TARGET_KINDS,
    log:
        f"{RESULTS}/logs/parse_cell/{{setup}}/{{workload}}/reps{{reps}}.log",
    script:
        "../scripts/parse_cell.py"
