rule parse_target:
    input:
        f"{RESULTS}/raw/{{setup}}/{{workload}}/rep{{rep}}",
    output:
        f"{RESULTS}/parsed/{{setup}}/{{workload}}/rep{{rep}}.parquet",
    log:
        f"{RESULTS}/logs/parse_target/{{setup}}/{{workload}}/rep{{rep}}.log",
    script:
        "../scripts/parse_target.py"
