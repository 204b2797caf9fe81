# One job per target. It holds the testbed (resources testbed=1 plus a host-wide lock) and all
# cores, so that no parsing or plotting job of this invocation competes with a measurement.
# It runs inside the Snakemake process (`run:` with force-use-threads in profiles/default):
# a new Python process per target cost 0.65 s of start-up and imports between two measurements
# (docs/decisions.md, "Measurements run inside the Snakemake process").
from seconetbench.runner import measure_job


rule run_target:
    output:
        protected(directory(f"{RESULTS}/raw/{{setup}}/{{workload}}/rep{{rep}}")),
    log:
        f"{RESULTS}/logs/run_target/{{setup}}/{{workload}}/rep{{rep}}.log",
    threads: workflow.cores
    resources:
        testbed=1,
    # the configured run order (shuffled, blocked or grouped), and always before parsing and plotting
    priority: run_priority
    run:
        measure_job(config, wildcards, output[0], log[0])
