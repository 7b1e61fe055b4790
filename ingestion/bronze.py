"""Land Delphes events in ``lake.bronze.events``: idempotent, atomic, bad files quarantined.

One call of :func:`ingest` is one Iceberg commit on the events table. That commit carries, in
its snapshot summary, the ingest id and the list of files it added; ``bronze.ingested_files``
is written from the same list right after. If a process dies between the two commits, the next
ingest rebuilds the missing ledger rows from the snapshot summary, so a file is never landed
twice.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from ingestion.delphes import FileSurvey, read_events, survey_file
from ingestion.sources import expand_sources
from topolake.layout import COLLECTIONS
from topolake.progress import spark_progress
from topolake.tables import (
    BRONZE,
    BRONZE_EVENTS,
    BRONZE_INGESTED_FILES,
    BRONZE_REJECTED_FILES,
    SAMPLE_LABELS,
)

#: Entries per Spark task: large files are split so every core gets work.
DEFAULT_STEP = 10_000

INGEST_ID_PROPERTY = "topolake.ingest-id"
FILES_PROPERTY = "topolake.files"

_SPARK_TYPES = {pa.float32(): "FLOAT", pa.int32(): "INT"}
_SAMPLE_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


COLLECTION_COLUMNS = [
    f"{name} ARRAY<STRUCT<{', '.join(f'{f}: {_SPARK_TYPES[t]}' for f, t in fields.items())}>>"
    for name, fields in COLLECTIONS.items()
]

#: What the reading tasks return; sample/label/ingest_id are added as literals afterwards.
READ_SCHEMA = ", ".join(["source_file STRING", "entry BIGINT", *COLLECTION_COLUMNS])

_COLUMNS_SEPARATOR = ",\n  "

TABLE_PROPERTIES = """TBLPROPERTIES (
  'format-version' = '2',
  'write.parquet.compression-codec' = 'zstd',
  'write.distribution-mode' = 'none',
  'write.spark.fanout.enabled' = 'true'
)"""


def create_tables(spark: SparkSession) -> None:
    """Create the bronze namespace and tables if they do not exist yet."""
    spark.sql(f"CREATE NAMESPACE IF NOT EXISTS {BRONZE}")
    spark.sql(f"""
CREATE TABLE IF NOT EXISTS {BRONZE_EVENTS} (
  sample STRING COMMENT 'sample name, e.g. ttbar',
  label INT COMMENT 'class: 0 qcd, 1 ttbar, 2 wjets',
  source_file STRING COMMENT 'path or URL the event was read from',
  entry BIGINT COMMENT 'entry number in the Delphes tree of source_file',
  ingest_id STRING COMMENT 'the topolake ingest that landed this event',
  {_COLUMNS_SEPARATOR.join(COLLECTION_COLUMNS)}
) USING iceberg
PARTITIONED BY (sample)
COMMENT 'One row per Delphes event, collections as arrays of structs with Delphes names'
{TABLE_PROPERTIES}""")
    spark.sql(f"""
CREATE TABLE IF NOT EXISTS {BRONZE_INGESTED_FILES} (
  path STRING, content_hash STRING, size BIGINT, sample STRING, label INT, events BIGINT,
  snapshot_id BIGINT, ingest_id STRING, ingested_at TIMESTAMP, notes STRING
) USING iceberg
COMMENT 'The ledger of landed files; a file whose content_hash is here is never landed again'
{TABLE_PROPERTIES}""")
    spark.sql(f"""
CREATE TABLE IF NOT EXISTS {BRONZE_REJECTED_FILES} (
  path STRING, reason STRING, content_hash STRING, sample STRING, label INT,
  ingest_id STRING, rejected_at TIMESTAMP
) USING iceberg
COMMENT 'Quarantine: files refused by an ingest, with the reason'
{TABLE_PROPERTIES}""")


class IngestArgumentError(ValueError):
    """The ingest's arguments are wrong; nothing was read or written."""


@dataclass
class IngestReport:
    ingest_id: str
    landed: list[FileSurvey] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    rejected: list[FileSurvey] = field(default_factory=list)
    snapshot_id: int | None = None

    @property
    def events(self) -> int:
        return sum(s.entries for s in self.landed)


def check_sample_label(spark: SparkSession, sample: str, label: int) -> None:
    """Refuse labels outside the classes, or that contradict the sample's known label."""
    if not _SAMPLE_NAME.match(sample):
        raise IngestArgumentError(
            f"Sample name {sample!r} must be lower-case letters, digits and underscores."
        )
    classes = ", ".join(f"{v} ({k})" for k, v in SAMPLE_LABELS.items())
    if label not in SAMPLE_LABELS.values():
        raise IngestArgumentError(f"Label {label} is not a class: use one of {classes}.")
    if sample in SAMPLE_LABELS and SAMPLE_LABELS[sample] != label:
        raise IngestArgumentError(
            f"Sample {sample!r} has label {SAMPLE_LABELS[sample]}, not {label}."
        )
    landed = spark.sql(
        f"SELECT DISTINCT label FROM {BRONZE_INGESTED_FILES} WHERE sample = :sample",
        args={"sample": sample},
    ).collect()
    other = [row.label for row in landed if row.label != label]
    if other:
        raise IngestArgumentError(
            f"Sample {sample!r} already landed with label {other[0]}, not {label}."
        )


def reconcile_ledger(spark: SparkSession) -> int:
    """Re-create ledger rows of events commits whose ledger commit never happened."""
    orphans = spark.sql(f"""
SELECT s.snapshot_id, s.committed_at, s.summary['{INGEST_ID_PROPERTY}'] AS ingest_id,
       s.summary['{FILES_PROPERTY}'] AS files
FROM {BRONZE_EVENTS}.snapshots s
JOIN {BRONZE_EVENTS}.history h ON h.snapshot_id = s.snapshot_id AND h.is_current_ancestor
WHERE s.summary['{INGEST_ID_PROPERTY}'] IS NOT NULL
  AND s.summary['{INGEST_ID_PROPERTY}'] NOT IN (SELECT ingest_id FROM {BRONZE_INGESTED_FILES})
""").collect()
    rows = [
        (
            f["path"],
            f["content_hash"],
            f["size"],
            f["sample"],
            f["label"],
            f["events"],
            o.snapshot_id,
            o.ingest_id,
            o.committed_at,
            f["notes"],
        )
        for o in orphans
        for f in json.loads(o.files)
    ]
    if rows:
        _append(spark, BRONZE_INGESTED_FILES, rows)
    return len(rows)


def _append(spark: SparkSession, table: str, rows: list[tuple]) -> None:
    schema = spark.table(table).schema
    spark.createDataFrame(rows, schema).writeTo(table).append()


def survey(spark: SparkSession, files: list[str]) -> list[FileSurvey]:
    """Check and hash every file in the executors (remote files never pass the driver)."""
    if not files:
        return []
    found = (
        spark.sparkContext.parallelize(files, len(files))
        .map(lambda path: survey_file(path).to_dict())
        .collect()
    )
    return [FileSurvey(**item) for item in found]


def _read_tasks(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """mapInArrow body: each input row is one (file, entry range) to read."""
    for batch in batches:
        for task in batch.to_pylist():
            branches = json.loads(task["branches"])
            try:
                for events in read_events(
                    task["path"], task["tree"], branches, task["entry_start"], task["entry_stop"]
                ):
                    source = pa.array([task["path"]] * events.num_rows, pa.string())
                    yield pa.RecordBatch.from_arrays(
                        [source, *events.columns], names=["source_file", *events.schema.names]
                    )
            except Exception as err:
                raise RuntimeError(
                    f"{task['path']} failed while reading entries "
                    f"{task['entry_start']}-{task['entry_stop']}: {err}"
                ) from err


def events_frame(
    spark: SparkSession,
    surveys: list[FileSurvey],
    sample: str,
    label: int,
    ingest_id: str,
    step: int = DEFAULT_STEP,
) -> DataFrame:
    """The events of the given files as a DataFrame in the bronze layout (lazy)."""
    tasks = [
        (s.path, s.tree, json.dumps(s.branches), start, min(start + step, s.entries))
        for s in surveys
        for start in range(0, s.entries, step)
    ]
    plan = spark.sparkContext.parallelize(tasks, len(tasks)).toDF(
        "path STRING, tree STRING, branches STRING, entry_start BIGINT, entry_stop BIGINT"
    )
    events = plan.mapInArrow(_read_tasks, READ_SCHEMA)
    return events.select(
        F.lit(sample).alias("sample"),
        F.lit(label).cast("int").alias("label"),
        "source_file",
        "entry",
        F.lit(ingest_id).alias("ingest_id"),
        *COLLECTIONS,
    )


def _ledger_entry(s: FileSurvey, sample: str, label: int) -> dict:
    return {
        "path": s.path,
        "content_hash": s.content_hash,
        "size": s.size,
        "sample": sample,
        "label": label,
        "events": s.entries,
        "notes": s.notes,
    }


def ingest(
    spark: SparkSession, sources: list[str], sample: str, label: int, step: int = DEFAULT_STEP
) -> IngestReport:
    """Land the events of ``sources`` in bronze; see the module docstring for guarantees."""
    if step <= 0:
        raise IngestArgumentError(f"The step must be a positive number of entries, not {step}.")
    create_tables(spark)
    check_sample_label(spark, sample, label)
    reconcile_ledger(spark)
    report = IngestReport(ingest_id=f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}")

    files = expand_sources(sources)
    with spark_progress(spark, f"checking {len(files)} file(s)"):
        surveys = survey(spark, files)
    known = {
        row.content_hash: row.path
        for row in spark.table(BRONZE_INGESTED_FILES).select("content_hash", "path").collect()
    }
    for s in surveys:
        if not s.ok:
            report.rejected.append(s)
        elif s.content_hash in known:
            report.skipped.append((s.path, f"already ingested as {known[s.content_hash]}"))
        else:
            known[s.content_hash] = s.path
            report.landed.append(s)

    if report.landed:
        ledger = [_ledger_entry(s, sample, label) for s in report.landed]
        frame = events_frame(spark, report.landed, sample, label, report.ingest_id, step)
        with spark_progress(spark, f"landing {report.events} events"):
            (
                frame.writeTo(BRONZE_EVENTS)
                .option(f"snapshot-property.{INGEST_ID_PROPERTY}", report.ingest_id)
                .option(f"snapshot-property.{FILES_PROPERTY}", json.dumps(ledger))
                .append()
            )
        report.snapshot_id = reconcile_and_find_snapshot(spark, report.ingest_id)

    if report.rejected:
        now = datetime.now(UTC)
        _append(
            spark,
            BRONZE_REJECTED_FILES,
            [
                (s.path, s.reason, s.content_hash or None, sample, label, report.ingest_id, now)
                for s in report.rejected
            ],
        )
    return report


def reconcile_and_find_snapshot(spark: SparkSession, ingest_id: str) -> int:
    """Write the ledger rows of the commit just made and return its snapshot id."""
    reconcile_ledger(spark)
    row = spark.sql(
        f"SELECT snapshot_id FROM {BRONZE_INGESTED_FILES} WHERE ingest_id = :id LIMIT 1",
        args={"id": ingest_id},
    ).first()
    return int(row.snapshot_id)
