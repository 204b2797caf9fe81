# Adapter: rule parse_target -> seconetbench.pipeline.parse_target
from seconetbench.pipeline import parse_target
from seconetbench.scripting import logged

with logged(snakemake.log[0]):
    parse_target(snakemake.input[0], snakemake.output[0])
