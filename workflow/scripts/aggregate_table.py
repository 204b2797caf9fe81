# Adapter: rule aggregate_table -> seconetbench.pipeline.aggregate
from seconetbench.pipeline import aggregate
from seconetbench.scripting import logged

with logged(snakemake.log[0]):
    aggregate(snakemake.wildcards.kind, snakemake.input, snakemake.output[0])
