# Adapter: checkpoint convergence_round -> seconetbench.pipeline.convergence_round
from seconetbench.pipeline import convergence_round
from seconetbench.scripting import logged

with logged(snakemake.log[0]):
    convergence_round(snakemake.input, snakemake.params.measured, snakemake.params.policy, snakemake.output[0])
