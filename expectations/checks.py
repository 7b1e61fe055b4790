"""The DataFrames the suites validate: a table plus check columns.

GX's column expectations test one value per row, while several quality rules are about arrays
(every track's PT, every particle's isolation) or about the whole table (the class balance).
Each rule becomes a named column here, so that Data Docs and failure messages name it.
Pure DataFrame -> DataFrame functions.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from topolake.core.vocabulary import PARTICLE_FEATURES

#: (collection, momentum field) of the bronze collections.
MOMENTA = [
    ("EFlowTrack", "PT"),
    ("EFlowPhoton", "ET"),
    ("EFlowNeutralHadron", "ET"),
    ("Electron", "PT"),
    ("MuonTight", "PT"),
    ("Jet", "PT"),
    ("MissingET", "MET"),
]
ETA_COLLECTIONS = [
    "EFlowTrack",
    "Electron",
    "MuonTight",
    "EFlowPhoton",
    "EFlowNeutralHadron",
    "Jet",
]
ISOLATION = ["ChPFIso", "GammaPFIso", "NeuPFIso"]


def is_not_finite(x: Column) -> Column:
    return F.isnan(x) | (F.abs(x) == F.lit(math.inf))


def count_not_finite(values: Column) -> Column:
    return F.size(F.filter(values, is_not_finite))


#: (collection, its floating-point kinematic fields): NaN or infinity in any is refused.
KINEMATICS = [
    ("EFlowTrack", ("PT", "Eta", "Phi")),
    ("EFlowPhoton", ("ET", "Eta", "Phi")),
    ("EFlowNeutralHadron", ("ET", "Eta", "Phi")),
    ("Electron", ("PT", "Eta", "Phi")),
    ("MuonTight", ("PT", "Eta", "Phi")),
    ("Jet", ("PT", "Eta", "Phi")),
    ("MissingET", ("MET", "Phi")),
]


def bronze_events(events: DataFrame) -> DataFrame:
    """Array minima and maxima would skip NaN (Spark orders it above every number): non-finite
    values are counted on their own."""
    nonfinite = [
        count_not_finite(F.col(f"{collection}.{name}"))
        for collection, names in KINEMATICS
        for name in names
    ]
    return events.select(
        "*",
        sum(nonfinite[1:], nonfinite[0]).alias("nonfinite_kinematics"),
        *[F.array_min(f"{c}.{pt}").alias(f"{c}_min_{pt}") for c, pt in MOMENTA],
        *[
            F.array_max(F.transform(c, lambda o: F.abs(o.Eta))).alias(f"{c}_max_abs_Eta")
            for c in ETA_COLLECTIONS
        ],
        F.size("MissingET").alias("MissingET_entries"),
    )


def silver_selected_events(events: DataFrame) -> DataFrame:
    """The selected lepton's isolation; the particles' is checked in gold, where it is stored."""
    lepton = F.col("selected_lepton")
    isolation = [lepton[f] for f in ISOLATION]
    return events.select(
        "*",
        lepton.PT.alias("lepton_PT"),
        (isolation[0] + isolation[1] + isolation[2]).alias("lepton_isolation"),
        count_not_finite(F.array(*isolation)).alias("nonfinite_isolation_values"),
        *[value.alias(f"lepton_{f}") for f, value in zip(ISOLATION, isolation, strict=True)],
    )


def gold_hlf_features(features: DataFrame) -> DataFrame:
    """Non-finite features read as null, so the not-null expectation names the feature."""
    floating = {
        f.name for f in features.schema.fields if f.dataType.typeName() in ("float", "double")
    }
    return features.select(
        *[
            F.when(~is_not_finite(F.col(c)), F.col(c)).alias(c) if c in floating else F.col(c)
            for c in features.columns
        ]
    )


def field_of(structs: Column, field: str) -> Column:
    """One field of every struct of an array."""
    return F.transform(structs, lambda s: s[field])


def gold_particle_sequences(sequences: DataFrame) -> DataFrame:
    particles = F.col("particles")
    last = F.element_at(particles, -1)
    return sequences.select(
        "*",
        F.size(particles).alias("stored_particles"),
        count_not_finite(
            F.flatten(F.transform(particles, lambda p: F.array(*[p[f] for f in PARTICLE_FEATURES])))
        ).alias("nonfinite_particle_values"),
        ((last.isEle + last.isMu) == 1).alias("last_particle_is_lepton"),
        *[F.array_min(field_of(particles, f)).alias(f"min_{f}") for f in ISOLATION],
    )


def gold_training_set(training: DataFrame) -> DataFrame:
    totals = training.agg(
        F.count(F.lit(1)).alias("_events"),
        F.count_if(F.col("split") == "train").alias("_train_events"),
    )
    classes = training.groupBy("label").agg(F.count(F.lit(1)).alias("_class_events"))
    return (
        training.join(F.broadcast(classes), "label")
        .crossJoin(F.broadcast(totals))
        .select(
            *training.columns,
            (F.col("_class_events") / F.col("_events")).alias("class_fraction"),
            (F.col("_train_events") / F.col("_events")).alias("train_fraction"),
        )
    )


#: table (layer.name) -> its check view.
CHECK_VIEWS: dict[str, Callable[[DataFrame], DataFrame]] = {
    "bronze.events": bronze_events,
    "silver.selected_events": silver_selected_events,
    "gold.hlf_features": gold_hlf_features,
    "gold.particle_sequences": gold_particle_sequences,
    "gold.training_set": gold_training_set,
}
