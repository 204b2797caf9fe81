# Adapter: rule parse_setup -> seconetbench.pipeline.parse_setup
from seconetbench.pipeline import parse_setup
from seconetbench.scripting import logged

with logged(snakemake.log[0]):
    parse_setup(snakemake.params.raw, {kind: snakemake.output[kind] for kind in snakemake.params.kinds})
