# Adapter: rule run_target -> seconetbench.runner.measure
from seconetbench.runner import measure
from seconetbench.scripting import logged

with logged(snakemake.log[0]):
    measure(
        snakemake.config,
        snakemake.wildcards.setup,
        snakemake.wildcards.workload,
        int(snakemake.wildcards.rep),
        snakemake.output[0],
    )
