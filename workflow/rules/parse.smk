# One job per target: the workload's own table, and the tables of the target as a whole
# (deployment facts, monitor samples; tables.TARGET_MEASURES).
rule parse_target:
    input:
        f"{RESULTS}/raw/{{setup}}/{{workload}}/rep{{rep}}",
    output:
        main=f"{RESULTS}/parsed/{{setup}}/{{workload}}/rep{{rep}}.parquet",
        **{kind: f"{RESULTS}/parsed/{{setup}}/{{workload}}/rep{{rep}}.{kind}.parquet" for kind in TARGET_KINDS},
    params:
        kinds=TARGET_KINDS,
    log:
        f"{RESULTS}/logs/parse_target/{{setup}}/{{workload}}/rep{{rep}}.log",
    script:
        "../scripts/parse_target.py"
