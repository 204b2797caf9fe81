"""SeCoNetBench: benchmark of secure container networking (network solutions, packet filters,
tunnels and VPNs), as an importable package driven by a Snakemake workflow."""

__version__ = "0.1.0"
