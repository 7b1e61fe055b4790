"""The closed sets of names agree wherever they are used: Python, dbt, table names (fast)."""

from __future__ import annotations

import re
from pathlib import Path

from ml.models import N_CLASSES, N_HLF, N_PARTICLE_FEATURES
from simulation.generator import SAMPLES
from topolake.core.tables import (
    BRONZE_EVENTS,
    GOLD_TRAINING_SET,
    LAYER_TABLES,
    ML_TUNING_RESULTS,
    QUALITY_VALIDATIONS,
    qualify,
)
from topolake.core.vocabulary import (
    CLASSES,
    DBT_LAYERS,
    ENGINES,
    HLF_FEATURES,
    LAYERS,
    MODEL_INPUTS,
    MODELS,
    PARTICLE_FEATURES,
    SAMPLE_LABELS,
)

ROOT = Path(__file__).resolve().parents[1]


def test_every_layer_has_its_tables_and_dbt_builds_all_but_bronze():
    assert tuple(LAYER_TABLES) == LAYERS == ("bronze", "silver", "gold")
    assert LAYERS[1:] == DBT_LAYERS
    for layer, tables in LAYER_TABLES.items():
        assert tables and all(t.startswith(f"lake.{layer}.") for t in tables)
    assert LAYER_TABLES["bronze"] == (BRONZE_EVENTS,)
    assert LAYER_TABLES["gold"][-1] == GOLD_TRAINING_SET


def test_classes_are_the_samples_in_label_order():
    assert CLASSES == ("qcd", "ttbar", "wjets")
    assert [SAMPLE_LABELS[c] for c in CLASSES] == list(range(len(CLASSES)))
    assert set(SAMPLES) == set(SAMPLE_LABELS)  # simulation generates every class, no other


def test_the_models_input_sizes_are_the_vocabularys():
    assert (N_HLF, N_PARTICLE_FEATURES, N_CLASSES) == (14, 19, 3)
    assert N_HLF == len(HLF_FEATURES) == len(set(HLF_FEATURES))
    assert N_PARTICLE_FEATURES == len(PARTICLE_FEATURES) == len(set(PARTICLE_FEATURES))
    assert len(CLASSES) == N_CLASSES
    assert MODELS == ("hlf", "particles", "inclusive", "pfn", "rf", "xgboost")
    assert ENGINES == ("tf", "bigdl")
    assert {i for inputs in MODEL_INPUTS.values() for i in inputs} == {"hlf", "particles"}


def test_dbt_builds_the_particle_features_in_the_vocabularys_order():
    macros = "\n".join(p.read_text() for p in sorted((ROOT / "macros").glob("*.sql")))
    body = re.search(r"macro sequence_features\(\).*?return\(\[(.*?)\]\)", macros, re.DOTALL)
    assert body is not None, "no sequence_features macro in macros/"
    assert tuple(re.findall(r"'(\w+)'", body.group(1))) == PARTICLE_FEATURES


def test_dbt_builds_the_hlf_columns_in_the_vocabularys_order():
    model = (ROOT / "models" / "gold" / "hlf_features.sql").read_text()
    columns = re.findall(r"\bas (\w+),?\s*$", model, re.MULTILINE)
    assert tuple(c for c in columns if c in HLF_FEATURES) == HLF_FEATURES


def test_qualify_adds_the_catalog_once():
    assert qualify("bronze.events") == BRONZE_EVENTS == "lake.bronze.events"
    assert qualify("lake.gold.training_set") == GOLD_TRAINING_SET
    assert qualify(qualify("quality.validations")) == QUALITY_VALIDATIONS
    assert qualify("ml.tuning_results") == ML_TUNING_RESULTS
    assert qualify("lakehouse.t") == "lake.lakehouse.t"  # a prefix, not the catalog
