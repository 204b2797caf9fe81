# Adapter: rule plot_figure -> seconetbench.pipeline.plot
from seconetbench.pipeline import plot
from seconetbench.scripting import logged

with logged(snakemake.log[0]):
    plot(snakemake.wildcards.figure, snakemake.input, snakemake.output.html, snakemake.output.svg)
