# Adapter: rule parse_cell -> seconetbench.pipeline.parse_cell
from seconetbench.pipeline import parse_cell
from seconetbench.scripting import logged

with logged(snakemake.log[0]):
    parse_cell(snakemake.params.raw, snakemake.output.main, {kind: snakemake.output[kind] for kind in snakemake.params.kinds})
