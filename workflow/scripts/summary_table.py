# Adapter: rule summary_table -> seconetbench.pipeline.summarize_tables
from seconetbench.pipeline import summarize_tables
from seconetbench.scripting import logged

with logged(snakemake.log[0]):
    summarize_tables(snakemake.input.tables, snakemake.output[0], snakemake.input.convergence,
                     snakemake.params.design)
