"""Great Expectations gates: clean data passes, each kind of corruption is caught and named."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from expectations.records import latest_passed
from expectations.validate import open_context, validate_frame
from tests.helpers import run_topolake
from topolake.core.settings import load_settings
from topolake.core.tables import LAYER_TABLES, QUALITY_VALIDATIONS

pytestmark = pytest.mark.slow


@pytest.fixture
def built(validated_gold):
    current, work = validated_gold
    return current(), work


def test_a_clean_build_passes_every_gate_and_writes_data_docs(spark, topolake_home, built):
    result, _ = built
    assert result.returncode == 0, result.stderr
    assert "\x1b[" not in result.stdout + result.stderr  # dbt's colours too (no --verbose)
    for tables in LAYER_TABLES.values():
        for table in tables:
            assert f"{table}@" in result.stderr and "FAILED" not in result.stderr
    recorded = spark.table(QUALITY_VALIDATIONS).collect()
    assert {r.layer for r in recorded} == {"bronze", "silver", "gold"}
    assert all(r.success for r in recorded)
    docs = topolake_home / "gx" / "data_docs" / "local_site" / "index.html"
    assert "gold_training_set" in docs.read_text()
    gold = latest_passed(spark, "gold")
    for table in LAYER_TABLES["gold"]:
        current = spark.sql(
            f"SELECT snapshot_id FROM {table}.history ORDER BY made_current_at DESC LIMIT 1"
        ).first()
        assert gold.snapshots[table] == current.snapshot_id


def negative_first_track_pt(events: DataFrame) -> DataFrame:
    first = F.monotonically_increasing_id() == 0
    tracks = F.transform(
        "EFlowTrack", lambda t, i: t.withField("PT", F.when(i == 0, -t.PT).otherwise(t.PT))
    )
    return events.withColumn("EFlowTrack", F.when(first, tracks).otherwise(F.col("EFlowTrack")))


def negative_first_particle_photon_isolation(sequences: DataFrame) -> DataFrame:
    first = F.monotonically_increasing_id() == 0
    particles = F.transform(
        "particles",
        lambda p, i: p.withField(
            "GammaPFIso", F.when(i == 0, F.lit(-0.5).cast("float")).otherwise(p.GammaPFIso)
        ),
    )
    return sequences.withColumn("particles", F.when(first, particles).otherwise(F.col("particles")))


def one_row_changed(column: str, value) -> callable:
    def corrupt(frame: DataFrame) -> DataFrame:
        first = F.monotonically_increasing_id() == 0
        return frame.withColumn(column, F.when(first, F.lit(value)).otherwise(F.col(column)))

    return corrupt


def duplicated_event(frame: DataFrame) -> DataFrame:
    return frame.unionByName(frame.limit(1))


def in_both_splits(frame: DataFrame) -> DataFrame:
    twin = frame.limit(1).withColumn(
        "split", F.when(F.col("split") == "train", "test").otherwise("train")
    )
    return frame.unionByName(twin)


def unbalanced(frame: DataFrame) -> DataFrame:
    return frame.where((F.col("label") != 0) | (F.xxhash64("source_file", "entry") % 4 != 0))


CORRUPTIONS = {
    "NaN feature": (
        "lake.gold.hlf_features",
        one_row_changed("MT", float("nan")),
        "expect_column_values_to_not_be_null on MT",
    ),
    "label outside 0-2": (
        "lake.bronze.events",
        one_row_changed("label", 7),
        "expect_column_values_to_be_in_set on label",
    ),
    "negative PT": (
        "lake.bronze.events",
        negative_first_track_pt,
        "expect_column_values_to_be_between on EFlowTrack_min_PT",
    ),
    "negative particle isolation": (
        "lake.gold.particle_sequences",
        negative_first_particle_photon_isolation,
        "expect_column_values_to_be_between on min_GammaPFIso",
    ),
    "duplicated event": (
        "lake.silver.selected_events",
        duplicated_event,
        "expect_compound_columns_to_be_unique on content_hash, entry",
    ),
    "unbalanced training set": (
        "lake.gold.training_set",
        unbalanced,
        "expect_column_values_to_be_between on class_fraction",
    ),
    "event in both splits": (
        "lake.gold.training_set",
        in_both_splits,
        "expect_compound_columns_to_be_unique on content_hash, entry",
    ),
}


@pytest.mark.parametrize("corruption", CORRUPTIONS)
def test_a_corrupted_copy_fails_its_suite_naming_expectation_and_column(
    spark, topolake_home, built, corruption
):
    table, corrupt, expected = CORRUPTIONS[corruption]
    context = open_context(load_settings(home=topolake_home))
    clean = spark.table(table)
    validation = validate_frame(context, table, 0, corrupt(clean), uuid.uuid4().hex)
    assert not validation.success
    sentences = [f.sentence() for f in validation.failures]
    assert any(s.startswith(expected) for s in sentences), sentences
    # the user's table itself is untouched and still passes
    assert validate_frame(context, table, 0, clean, uuid.uuid4().hex).success


def test_a_failing_snapshot_stops_validate_and_build_while_its_parent_still_passes(
    spark, topolake_home, built
):
    _, work = built
    good = (
        spark.sql(
            "SELECT snapshot_id FROM lake.bronze.events.history "
            "ORDER BY made_current_at DESC LIMIT 1"
        )
        .first()
        .snapshot_id
    )
    silver_before = spark.table("lake.silver.selected_events.history").count()
    spark.sql("INSERT INTO lake.bronze.events SELECT * FROM lake.bronze.events LIMIT 1")

    failed = run_topolake("validate", "--layer", "bronze", home=topolake_home, cwd=work)
    assert failed.returncode == 1
    assert "expect_compound_columns_to_be_unique on content_hash, entry" in failed.stderr
    assert "Data Docs: " in failed.stderr and Path(topolake_home / "gx").is_dir()

    stopped = run_topolake("build", home=topolake_home, cwd=work)
    assert stopped.returncode == 1 and "the bronze quality gate failed" in stopped.stderr
    assert spark.table("lake.silver.selected_events.history").count() == silver_before

    older = run_topolake(
        "validate", "--layer", "bronze", "--snapshot", str(good), home=topolake_home, cwd=work
    )
    assert older.returncode == 0, older.stderr
    assert f"lake.bronze.events@{good}" in older.stderr
