rule aggregate_table:
    input:
        parsed_of_kind,
    output:
        f"{RESULTS}/tables/{{kind}}.parquet",
    log:
        f"{RESULTS}/logs/aggregate_table/{{kind}}.log",
    script:
        "../scripts/aggregate_table.py"


rule summary_table:
    input:
        tables=[f"{RESULTS}/tables/{kind}.parquet" for kind in TABLE_KINDS],
        convergence=final_decision_file,
    output:
        f"{RESULTS}/tables/summary.parquet",
    params:
        # blocked order measures each setup and its baseline in every round 1..min: paired effects
        design={"run_order": CONFIG["run_order"]["mode"], "rounds": REP_POLICY["min"]},
    log:
        f"{RESULTS}/logs/summary_table.log",
    script:
        "../scripts/summary_table.py"
