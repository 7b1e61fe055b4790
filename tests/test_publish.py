"""Publishing pinned gold snapshots as Delta tables, read back by delta-rs and Polars."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from expectations.records import latest_passed
from ingestion.bronze import ingest
from publish.delta import (
    ICEBERG_SNAPSHOT,
    ICEBERG_TABLE,
    PAUSE_BEFORE_COMMIT,
    PUBLISH_FOLDER,
    VALIDATION,
    PublishError,
    publish,
    published,
    target_path,
)
from simulation.tasks import generate_locally, plan
from tests.helpers import TEST_MASTER, TOPOLAKE, run_topolake
from topolake.app.pipeline import build_lakehouse
from topolake.core.settings import load_settings
from topolake.core.tables import (
    BRONZE_EVENTS,
    GOLD_HLF_FEATURES,
    GOLD_PARTICLE_SEQUENCES,
    LAYER_TABLES,
)

pytestmark = pytest.mark.slow

GOLD = list(LAYER_TABLES["gold"])


def iceberg_rows(spark, table: str, snapshot: int) -> list[dict]:
    frame = spark.read.option("snapshot-id", snapshot).table(table)
    return sorted(
        (r.asDict(recursive=True) for r in frame.collect()),
        key=lambda r: (r["content_hash"], r["entry"]),
    )


def delta_rows(path: str) -> list[dict]:
    rows = DeltaTable(path).to_pyarrow_table().to_pylist()
    return sorted(rows, key=lambda r: (r["content_hash"], r["entry"]))


@pytest.fixture(scope="module")
def gold(validated_gold, spark):
    validated_gold[0]()
    return latest_passed(spark, "gold")


def test_gold_published_as_delta_equals_the_validated_snapshot_row_by_row(spark, gold, tmp_path):
    root = str(tmp_path / "delta")
    results = publish(spark, GOLD, root)

    assert [(r.table, r.mode, r.version) for r in results] == [(t, "overwrite", 0) for t in GOLD]
    for result in results:
        snapshot = gold.snapshots[result.table]
        assert (result.snapshot_id, result.validation_id) == (snapshot, gold.validation_id)
        assert delta_rows(result.path) == iceberg_rows(spark, result.table, snapshot)
        (commit,) = DeltaTable(result.path).history()
        assert commit[ICEBERG_TABLE] == result.table
        assert commit[ICEBERG_SNAPSHOT] == str(snapshot)
        assert commit[VALIDATION] == gold.validation_id

    sequences = target_path(root, GOLD_PARTICLE_SEQUENCES)
    schema = pa.schema(DeltaTable(sequences).schema().to_arrow())
    particle = schema.field("particles").type.value_type
    assert particle.field("Pt").type == pa.float32()  # arrays of structs of float32 stay so
    polars = pl.read_delta(target_path(root, GOLD_HLF_FEATURES))
    assert polars.height == len(
        iceberg_rows(spark, GOLD_HLF_FEATURES, gold.snapshots[GOLD_HLF_FEATURES])
    )
    assert polars.schema["MET"] == pl.Float32

    again = publish(spark, GOLD, root)
    assert [(r.mode, r.version) for r in again] == [("unchanged", None)] * 3
    assert [DeltaTable(r.path).version() for r in again] == [0, 0, 0]


def test_a_killed_publish_leaves_the_previous_version_and_the_next_completes_it(
    spark, gold, topolake_home, tmp_path
):
    root = tmp_path / "delta"
    publish(spark, [GOLD_HLF_FEATURES], str(root), snapshot=str(gold.snapshots[GOLD_HLF_FEATURES]))
    path = Path(target_path(str(root), GOLD_HLF_FEATURES))
    # a first publish of another table, through the CLI, killed between its files and its commit
    env = {**os.environ, PAUSE_BEFORE_COMMIT: "120", "TOPOLAKE_HOME": str(topolake_home)}
    other = Path(target_path(str(root), GOLD_PARTICLE_SEQUENCES))
    process = subprocess.Popen(
        [TOPOLAKE, "--master", TEST_MASTER, "publish", GOLD_PARTICLE_SEQUENCES, "--to", str(root)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 300
    while not list(other.glob("*/*.parquet")) and time.monotonic() < deadline:
        time.sleep(0.5)
    time.sleep(2)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    assert list(other.glob("*/*.parquet")), "the publish never wrote its files"
    assert not (other / "_delta_log").exists()  # no version was committed

    done = publish(spark, [GOLD_PARTICLE_SEQUENCES], str(root))
    assert (done[0].mode, done[0].version) == ("overwrite", 0)
    snapshot = gold.snapshots[GOLD_PARTICLE_SEQUENCES]
    assert delta_rows(str(other)) == iceberg_rows(spark, GOLD_PARTICLE_SEQUENCES, snapshot)
    assert DeltaTable(str(path)).version() == 0


def test_bad_targets_get_one_sentence_and_nothing_is_written(spark, gold, topolake_home, tmp_path):
    root = tmp_path / "delta"
    not_delta = Path(target_path(str(root), GOLD_HLF_FEATURES))
    not_delta.mkdir(parents=True)
    (not_delta / "notes.txt").write_text("someone else's files\n")
    result = run_topolake(
        "publish", GOLD_HLF_FEATURES, "--to", str(root), cwd=tmp_path, home=topolake_home
    )
    assert result.returncode == 2
    assert f"{not_delta} exists and is not a Delta table" in result.stderr
    assert sorted(p.name for p in not_delta.iterdir()) == ["notes.txt"]

    other_schema = Path(target_path(str(root), GOLD_PARTICLE_SEQUENCES))
    write_deltalake(str(other_schema), pa.table({"x": [1, 2, 3]}))
    with pytest.raises(PublishError, match="holds a schema that .* does not match"):
        publish(spark, [GOLD_PARTICLE_SEQUENCES], str(root))
    assert DeltaTable(str(other_schema)).version() == 0
    assert not [p for p in other_schema.iterdir() if PUBLISH_FOLDER.match(p.name)]


def test_publishing_after_a_second_ingest_and_build_adds_only_the_new_events_once(
    spark, gold, topolake_home, tmp_path
):
    root = str(tmp_path / "delta")
    tables = [BRONZE_EVENTS, GOLD_HLF_FEATURES]
    first = publish(spark, tables, root)
    (task,) = plan("ttbar", 30, tmp_path / "more", seed=78, files=1)
    generate_locally([task], 1, lambda n: None)
    ingest(spark, [task.path], sample="ttbar", label=1)
    # dbt's MERGE of only new keys rewrites no file, then the gates
    build_lakehouse(spark, load_settings(home=topolake_home))

    with ThreadPoolExecutor(2) as pool:  # two publishers at once take turns
        both = list(pool.map(lambda _: publish(spark, tables, root), range(2)))
    assert sorted(r.mode for results in both for r in results) == ["append"] * 2 + ["unchanged"] * 2
    second = [
        next(r for results in both for r in results if r.table == t and r.mode != "unchanged")
        for t in tables
    ]
    assert [(r.mode, r.version) for r in first] == [("overwrite", 0)] * 2
    assert [(r.mode, r.version) for r in second] == [("append", 1)] * 2
    assert second[0].rows == 30
    assert second[1].validation_id == latest_passed(spark, "gold").validation_id
    for before, after in zip(first, second, strict=True):
        keys = DeltaTable(after.path).to_pyarrow_table(columns=["content_hash", "entry"])
        landed = spark.read.option("snapshot-id", after.snapshot_id).table(after.table)
        assert keys.num_rows == landed.count() == len({tuple(k.values()) for k in keys.to_pylist()})
        assert after.rows == landed.count() - before.rows
        history = DeltaTable(after.path).history()
        assert [h[ICEBERG_SNAPSHOT] for h in history] == [
            str(after.snapshot_id),
            str(before.snapshot_id),
        ]
        assert history[0]["topolake.published-from"] == str(before.snapshot_id)
    assert delta_rows(second[1].path) == iceberg_rows(
        spark, GOLD_HLF_FEATURES, second[1].snapshot_id
    )
    listed = {(v.table, v.version, v.snapshot_id) for v in published(root)}
    assert listed == {(r.table, r.version, str(r.snapshot_id)) for r in (*first, *second)}
