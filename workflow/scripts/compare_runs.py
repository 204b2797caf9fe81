# Adapter: rule compare_runs -> seconetbench.compare.run_configured
from pathlib import Path

from seconetbench.compare import run_configured
from seconetbench.scripting import logged

with logged(snakemake.log[0]):
    run_configured(snakemake.params.settings, Path(snakemake.output[0]).parent)
