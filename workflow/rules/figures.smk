rule plot_figure:
    input:
        lambda wildcards: [f"{RESULTS}/tables/{kind}.parquet" for kind in FIGURES[wildcards.figure].tables],
    output:
        html=report(
            f"{RESULTS}/figures/{{figure}}.html",
            caption="../report/figure.rst",
            category="Figures",
            labels=lambda wildcards: {"figure": wildcards.figure, "format": "interactive"},
        ),
        svg=report(
            f"{RESULTS}/figures/{{figure}}.svg",
            caption="../report/figure.rst",
            category="Figures",
            labels=lambda wildcards: {"figure": wildcards.figure, "format": "svg"},
        ),
    params:
        caption=lambda wildcards: FIGURES[wildcards.figure].caption,
    log:
        f"{RESULTS}/logs/plot_figure/{{figure}}.log",
    script:
        "../scripts/plot_figure.py"
