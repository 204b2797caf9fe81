# Candidate runs against a baseline run (config key compare; seconetbench.compare, docs/compare.md):
# reads only tables, so it runs wherever they are. This sweep's own results_dir may be one of the
# runs: its tables are then built first. Any other run must hold tables now (checked here, before
# anything is measured).
from seconetbench import compare as seconet_compare
from seconetbench.errors import InvalidValueError

COMPARE = CONFIG.get("compare")
COMPARE_DIR = f"{RESULTS}/compare"

COMPARE_FILES = []
if COMPARE:
    try:
        COMPARE_INPUT = seconet_compare.configured_inputs(COMPARE, RESULTS, TABLE_FILES)
    except InvalidValueError as error:
        sys.exit(f"SeCoNetBench: {error}")
    COMPARE_FILES = [f"{COMPARE_DIR}/{name}" for name in ("compare.json", "compare.txt", "summary.html")]
    COMPARE_FILES += [f"{COMPARE_DIR}/series.json"] if COMPARE.get("series") else []

    rule compare_runs:
        input:
            COMPARE_INPUT,
        output:
            # compare.json first (the script writes beside it); summary.html in the Snakemake report
            *[report(path, category="Compare", labels={"comparison": "candidates against the baseline"})
              if path.endswith("summary.html") else path for path in COMPARE_FILES],
        params:
            settings=COMPARE,
        log:
            f"{RESULTS}/logs/compare_runs.log",
        script:
            "../scripts/compare_runs.py"
