# Adapter: rule parse_target -> seconetbench.pipeline.parse_target and target_tables
from seconetbench.pipeline import parse_target, target_tables
from seconetbench.scripting import logged

with logged(snakemake.log[0]):
    parse_target(snakemake.input[0], snakemake.output.main)
    target_tables(snakemake.input[0], {kind: snakemake.output[kind] for kind in snakemake.params.kinds})
