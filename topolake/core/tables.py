"""Table names shared by every stage: the only thing stages know of each other."""

from topolake.core.settings import CATALOG
from topolake.core.vocabulary import LAYERS

BRONZE = f"{CATALOG}.bronze"
BRONZE_EVENTS = f"{BRONZE}.events"
BRONZE_INGESTED_FILES = f"{BRONZE}.ingested_files"
BRONZE_REJECTED_FILES = f"{BRONZE}.rejected_files"


def qualify(table: str) -> str:
    """`bronze.events` -> `lake.bronze.events`; fully qualified names pass through."""
    return table if table.startswith(f"{CATALOG}.") else f"{CATALOG}.{table}"


SILVER_SELECTED_EVENTS = f"{CATALOG}.silver.selected_events"
GOLD_HLF_FEATURES = f"{CATALOG}.gold.hlf_features"
GOLD_PARTICLE_SEQUENCES = f"{CATALOG}.gold.particle_sequences"
GOLD_TRAINING_SET = f"{CATALOG}.gold.training_set"

#: Data-quality results, one row per validated table snapshot (expectations/).
QUALITY_VALIDATIONS = f"{CATALOG}.quality.validations"

#: Hyperparameter search results, one row per grid point trained (ml/tuning.py).
ML_TUNING_RESULTS = f"{CATALOG}.ml.tuning_results"

#: The tables each layer's quality gate validates, in build order.
LAYER_TABLES = dict(
    zip(
        LAYERS,
        [
            (BRONZE_EVENTS,),
            (SILVER_SELECTED_EVENTS,),
            (GOLD_HLF_FEATURES, GOLD_PARTICLE_SEQUENCES, GOLD_TRAINING_SET),
        ],
        strict=True,
    )
)
