# One job per batch: a run of consecutive targets of one setup in the run order (sweep.batches,
# e.g. a setup's workloads in one round of the blocked order), measured one after the other on one
# deployment by runner.measure_batch, each into its own raw directory. Per batch rather than per
# target: the targets follow each other without Snakemake's scheduling in between, and a sweep of
# thousands of targets plans a tenth of the jobs (docs/decisions.md, "A measurement job measures a batch
# of targets"). Batches are cut from the targets still missing (common.smk, batch_plan), so an
# interrupted sweep measures only those. A job holds the testbed (resources testbed=1 plus a host-wide lock) and all cores,
# so that no parsing or plotting job of this invocation competes with a measurement. It runs
# inside the Snakemake process (`run:` with force-use-threads in profiles/default): a new Python
# process per job cost 0.65 s of start-up and imports (docs/decisions.md, "Measurements run
# inside the Snakemake process").
from seconetbench.runner import measure_batch


rule run_batch:
    output:
        # named after the batch's first target; the raw directories are what the targets write
        temp(f"{RESULTS}/batches/{{setup}}/{{workload}}/rep{{rep}}.json"),
    log:
        f"{RESULTS}/logs/run_batch/{{setup}}/{{workload}}/rep{{rep}}.log",
    # with several testbed groups (common.smk), a share of the cores per group
    threads: max(1, workflow.cores // TESTBED_GROUPS)
    resources:
        testbed=1,
        **TESTBED_GROUP_SLOTS,
    # the configured run order (shuffled, blocked or grouped), and always before parsing and plotting
    priority: run_priority
    params:
        targets=batch_targets,
    run:
        measure_batch(config, params.targets, output[0], log[0])
