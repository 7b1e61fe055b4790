"""Table names shared by every stage: the only thing stages know of each other."""

from topolake.settings import CATALOG

BRONZE = f"{CATALOG}.bronze"
BRONZE_EVENTS = f"{BRONZE}.events"
BRONZE_INGESTED_FILES = f"{BRONZE}.ingested_files"
BRONZE_REJECTED_FILES = f"{BRONZE}.rejected_files"

#: label <-> sample, as in PHYSICS.md.
SAMPLE_LABELS = {"qcd": 0, "ttbar": 1, "wjets": 2}


def qualify(table: str) -> str:
    """`bronze.events` -> `lake.bronze.events`; fully qualified names pass through."""
    return table if table.startswith(f"{CATALOG}.") else f"{CATALOG}.{table}"
