# Adapter: checkpoint convergence_round -> seconetbench.pipeline.convergence_round
from pathlib import Path

from seconetbench.pipeline import convergence_round
from seconetbench.plan import budget_cell_costs
from seconetbench.scripting import logged

with logged(snakemake.log[0]):
    convergence_round(snakemake.input, snakemake.params.measured, snakemake.params.policy, snakemake.output[0],
                      budget_cell_costs(snakemake.params.config),
                      Path(snakemake.output[0]).parents[1])  # RESULTS/convergence/roundN.json: the sweep's results
