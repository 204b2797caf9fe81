# The paper's findings checked against this sweep's tables (seconetbench.findings): findings.md
# and findings.html beside tables/ and figures/, built by every sweep (rule all) and shown in the
# Snakemake report. Reads only tables, so it runs wherever the tables are.
from seconetbench import findings as seconet_findings

FINDINGS_FILES = [f"{RESULTS}/findings.md", f"{RESULTS}/findings.html"]


rule check_findings:
    input:
        # the measurement tables the sweep writes, and the summary for the design (run order, rounds)
        [f"{RESULTS}/tables/{kind}.parquet" for kind in TABLE_KINDS if kind in seconet_findings.MEASUREMENT_KINDS],
        f"{RESULTS}/tables/summary.parquet",
    output:
        md=f"{RESULTS}/findings.md",
        html=report(
            f"{RESULTS}/findings.html",
            caption="../report/findings.rst",
            category="Findings",
            labels={"findings": "the paper's findings, checked", "format": "html"},
        ),
    log:
        f"{RESULTS}/logs/check_findings.log",
    script:
        "../scripts/check_findings.py"
