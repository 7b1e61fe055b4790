"""Publish Iceberg table snapshots as Delta tables, for consumers that read Delta.

The lakehouse's own tables are Iceberg. A published Delta table is a read-only copy of one
Iceberg table at pinned snapshots: each Delta version records, in its commit metadata, the
Iceberg table, snapshot id and (for gold) the quality validation it came from.

How one publish works, and why it is safe:
- Spark's executors write the snapshot's rows (or only the rows added since the last
  published snapshot) as Parquet files into a fresh folder inside the Delta table's directory;
  no event passes through the driver, which only reads the files' footers (row counts).
- One delta-rs transaction then adds those files (append) or replaces the table's content with
  them (overwrite). Until that commit the Delta table is at its previous version: a publish
  killed before it leaves only unreferenced files, which the next publish ignores.
- Publishing a snapshot already published commits nothing.
- Publishes of one table to one target take turns (a file lock beside the table), so two at
  once never append the same rows twice.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from pyspark.sql import SparkSession

from topolake.core.errors import UsageError
from topolake.core.tables import LAYER_TABLES, qualify

#: commit metadata keys of a published version
ICEBERG_TABLE = "topolake.iceberg-table"
ICEBERG_SNAPSHOT = "topolake.iceberg-snapshot-id"
VALIDATION = "topolake.validation-id"
PUBLISHED_FROM = "topolake.published-from"  # "full" or the previous snapshot id

#: snapshot summary counts that show rows were removed or rewritten (not only added)
REMOVING_SUMMARY_KEYS = (
    "deleted-data-files",
    "deleted-records",
    "added-delete-files",
    "removed-delete-files",
)

#: what the tests use to kill a publish between its files and its commit
PAUSE_BEFORE_COMMIT = "TOPOLAKE_PUBLISH_PAUSE_BEFORE_COMMIT"


class PublishError(UsageError):
    """The target cannot take this publish; the message is one sentence naming it."""


@dataclass
class Published:
    table: str
    path: str
    snapshot_id: int
    validation_id: str | None
    version: int | None  # the Delta version committed; None when nothing was
    mode: str  # "append", "overwrite" or "unchanged"
    rows: int


def target_path(root: str, table: str) -> str:
    """`lake.gold.hlf_features` under ROOT -> ROOT/gold/hlf_features."""
    layer, name = qualify(table).split(".")[-2:]
    return str(Path(root.removeprefix("file://")) / layer / name)


#: the folder each publish writes its Parquet files into: <time>-<8 hex digits>
PUBLISH_FOLDER = re.compile(r"^\d{8}T\d{6}-[0-9a-f]{8}$")


def _is_publish_folder(path: Path) -> bool:
    return path.is_dir() and bool(PUBLISH_FOLDER.match(path.name))


def _delta_table(path: str):
    """The Delta table at `path`, None where nothing is; refuses a directory that is not one."""
    from deltalake import DeltaTable

    directory = Path(path)
    if not directory.exists() or all(_is_publish_folder(p) for p in directory.iterdir()):
        return None  # nothing, or the files of a first publish that never committed
    if not (directory / "_delta_log").is_dir():
        raise PublishError(
            f"{path} exists and is not a Delta table (no _delta_log): choose another --to "
            "or remove it."
        )
    return DeltaTable(path)


def _shape(kind: pa.DataType) -> str:
    """A type without nullability or list/string widths: what must match between versions."""
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return f"list<{_shape(kind.value_type)}>"
    if pa.types.is_struct(kind):
        return "struct<" + ", ".join(f"{f.name}: {_shape(f.type)}" for f in kind) + ">"
    if pa.types.is_large_string(kind) or pa.types.is_string_view(kind):
        return "string"
    return str(kind)


def _check_schema(existing, frame, path: str, table: str, snapshot_id: int) -> None:
    """Refuse, before any file is written, rows whose columns or types differ from the table's."""
    from pyspark.sql.pandas.types import to_arrow_schema

    have = {f.name: _shape(f.type) for f in pa.schema(existing.schema().to_arrow())}
    new = {f.name: _shape(f.type) for f in to_arrow_schema(frame.schema)}
    if have != new:
        changed = sorted(set(have.items()) ^ set(new.items()))[:3]
        raise PublishError(
            f"{path} holds a schema that {table}@{snapshot_id} does not match (differing: "
            f"{', '.join(f'{name} {kind}' for name, kind in changed)}): publish to a new --to."
        )


def _published_snapshot(table) -> int | None:
    """The Iceberg snapshot the Delta table's latest version holds."""
    for entry in table.history():
        if ICEBERG_SNAPSHOT in entry:
            return int(entry[ICEBERG_SNAPSHOT])
    return None


def _pinned(spark: SparkSession, table: str, snapshot: str | None) -> tuple[int, str | None]:
    """The snapshot to publish and the gold validation that covers it (gold only)."""
    from expectations.records import latest_passed, passed_with
    from expectations.snapshots import resolve

    if table in LAYER_TABLES["gold"]:
        if snapshot is None:
            passed = latest_passed(spark, "gold")
            if passed is None:
                raise PublishError(
                    f"{table} has no validated snapshot: run `topolake build` (or name --snapshot)."
                )
            return passed.snapshots[table], passed.validation_id
        snapshot_id = resolve(spark, (table,), snapshot)[table]
        passed = passed_with(spark, table, snapshot_id)
        return snapshot_id, passed.validation_id if passed else None
    return resolve(spark, (table,), snapshot)[table], None


def _is_ancestor(spark: SparkSession, table: str, older: int, newer: int) -> bool:
    return older in _between(spark, table, None, newer)


def _rows_since(spark: SparkSession, table: str, published: int, snapshot: int):
    """The rows added between two snapshots, or None where rows were rewritten or deleted.

    Bronze's validated commits are overwrites by filter that delete nothing, so the history is
    judged by what the snapshots did (their summaries), not by their operation's name; the
    added rows are then read from the table's changelog (`<table>.changes`), which, unlike an
    incremental append scan, does not skip overwrite snapshots."""
    if not _is_ancestor(spark, table, published, snapshot):
        return None
    between = _between(spark, table, published, snapshot)
    history = spark.sql(f"SELECT snapshot_id, operation, summary FROM {table}.snapshots")
    for row in history.collect():
        if row.snapshot_id in between and not _only_adds(row.operation, row.summary or {}):
            return None  # rows were rewritten or deleted: publish the whole snapshot
    changes = (
        spark.read.option("start-snapshot-id", str(published))
        .option("end-snapshot-id", str(snapshot))
        .table(f"{table}.changes")
    )
    columns = spark.read.option("snapshot-id", snapshot).table(table).columns
    # only inserts, by the summaries above (a filter on _change_type fails to bind in Iceberg)
    return changes.select(*columns)


def _only_adds(operation: str, summary: dict[str, str]) -> bool:
    """Whether a snapshot only added data files (no data or delete files removed or added)."""
    return operation in {"append", "overwrite"} and all(
        int(summary.get(key, "0")) == 0 for key in REMOVING_SUMMARY_KEYS
    )


def _between(spark: SparkSession, table: str, older: int | None, newer: int) -> set[int]:
    """The snapshots after `older` up to `newer` on newer's line of parents (all with None)."""
    parents = {
        r.snapshot_id: r.parent_id
        for r in spark.sql(f"SELECT snapshot_id, parent_id FROM {table}.snapshots").collect()
    }
    found, current = set(), newer
    while current is not None and current != older:
        found.add(current)
        current = parents.get(current)
    return found


def _write_files(frame, path: str) -> tuple[list, object]:
    """Executors write the rows as Parquet into a new folder of the table: the add actions."""
    from deltalake.transaction import AddAction

    folder = f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"
    frame.write.mode("errorifexists").parquet(str(Path(path) / folder))
    files = sorted((Path(path) / folder).glob("*.parquet"))
    actions, schema = [], None
    for file in files:
        metadata = pq.read_metadata(file)  # the footer: no event data
        schema = schema or metadata.schema.to_arrow_schema()
        stat = file.stat()
        actions.append(
            AddAction(
                path=f"{folder}/{file.name}",
                size=stat.st_size,
                partition_values={},
                modification_time=int(stat.st_mtime * 1000),
                data_change=True,
                stats=json.dumps({"numRecords": metadata.num_rows}),
            )
        )
    if schema is None:
        raise PublishError(f"Spark wrote no Parquet file under {path}/{folder}.")
    return actions, schema


def publish_table(
    spark: SparkSession, table: str, root: str, snapshot: str | None = None
) -> Published:
    """Publish one table at its pinned snapshot under ROOT; see the module docstring."""
    table = qualify(table)
    if not spark.catalog.tableExists(table):
        raise PublishError(f"{table} does not exist: nothing to publish.")
    path = target_path(root, table)
    with _one_publisher_at_a_time(path):
        return _publish_locked(spark, table, path, snapshot)


@contextmanager
def _one_publisher_at_a_time(path: str) -> Iterator[None]:
    """Publishes of one table to one target take turns (an exclusive lock on `<path>.lock`).

    Delta appends do not conflict with each other, so two publishes of the same new rows
    committed at once would both land; the second one, started after the first committed,
    finds the snapshot published and commits nothing."""
    lock = Path(f"{path}.lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with lock.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _publish_locked(spark: SparkSession, table: str, path: str, snapshot: str | None) -> Published:
    from deltalake import CommitProperties, DeltaTable, Schema
    from deltalake.exceptions import SchemaMismatchError
    from deltalake.transaction import create_table_with_add_actions

    existing = _delta_table(path)
    snapshot_id, validation_id = _pinned(spark, table, snapshot)
    previous = _published_snapshot(existing) if existing is not None else None
    if previous == snapshot_id:
        return Published(table, path, snapshot_id, validation_id, None, "unchanged", 0)

    frame = None if previous is None else _rows_since(spark, table, previous, snapshot_id)
    mode = "overwrite" if frame is None else "append"
    if frame is None:
        frame = spark.read.option("snapshot-id", snapshot_id).table(table)
    if existing is not None:
        _check_schema(existing, frame, path, table, snapshot_id)
    Path(path).mkdir(parents=True, exist_ok=True)
    actions, schema = _write_files(frame, path)
    rows = sum(json.loads(a.stats)["numRecords"] for a in actions)
    metadata = {
        ICEBERG_TABLE: table,
        ICEBERG_SNAPSHOT: str(snapshot_id),
        PUBLISHED_FROM: "full" if mode == "overwrite" else str(previous),
    }
    if validation_id:
        metadata[VALIDATION] = validation_id
    properties = CommitProperties(custom_metadata=metadata)
    if os.environ.get(PAUSE_BEFORE_COMMIT):
        time.sleep(float(os.environ[PAUSE_BEFORE_COMMIT]))
    try:
        if existing is None:
            create_table_with_add_actions(
                path,
                Schema.from_arrow(schema),
                actions,
                mode="error",
                name=table,
                commit_properties=properties,
            )
        else:
            existing.create_write_transaction(actions, mode, schema, commit_properties=properties)
    except SchemaMismatchError as err:
        raise PublishError(
            f"{path} holds a schema that {table}@{snapshot_id} does not match "
            f"({str(err).splitlines()[0][:200]}): publish to a new --to."
        ) from err
    version = DeltaTable(path).version()
    return Published(table, path, snapshot_id, validation_id, version, mode, rows)


def publish(
    spark: SparkSession,
    tables: list[str],
    root: str,
    snapshot: str | None = None,
    on_table: Callable[[Published], None] = lambda published: None,
) -> list[Published]:
    """Publish each table; `on_table` hears of each as it is done."""
    results = []
    for table in tables:
        results.append(publish_table(spark, table, root, snapshot))
        on_table(results[-1])
    return results


@dataclass
class PublishedVersion:
    table: str
    path: str
    version: int
    timestamp: int
    operation: str
    snapshot_id: str
    validation_id: str
    published_from: str


def published(root: str) -> list[PublishedVersion]:
    """Every version of every Delta table under ROOT/<layer>/<table>, newest first."""
    from deltalake import DeltaTable

    found = []
    for log in sorted(Path(root.removeprefix("file://")).glob("*/*/_delta_log")):
        path = str(log.parent)
        for entry in DeltaTable(path).history():
            found.append(
                PublishedVersion(
                    table=entry.get(ICEBERG_TABLE, ""),
                    path=path,
                    version=int(entry.get("version", -1)),
                    timestamp=int(entry.get("timestamp", 0)),
                    operation=str(entry.get("operation", "")),
                    snapshot_id=str(entry.get(ICEBERG_SNAPSHOT, "")),
                    validation_id=str(entry.get(VALIDATION, "")),
                    published_from=str(entry.get(PUBLISHED_FROM, "")),
                )
            )
    return found
