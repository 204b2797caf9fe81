# Adapter: rule check_findings -> seconetbench.findings.build
from seconetbench.findings import build
from seconetbench.scripting import logged

with logged(snakemake.log[0]):
    build(snakemake.input, snakemake.output.md, snakemake.output.html)
