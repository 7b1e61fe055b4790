"""Land Delphes events in ``lake.bronze.events``: idempotent, atomic, bad files quarantined.

One call of :func:`ingest` is one Iceberg commit on the events table. That commit carries, in
its snapshot summary, the ingest id and the list of files it added; ``bronze.ingested_files``
is written from the same list right after. If a process dies between the two commits, the next
ingest rebuilds the missing ledger rows from the snapshot summary, so a file is never landed
twice.

An event's identity is (content_hash, entry): the SHA-256 of its file, not the file's path, so
the same file read from another directory or over XRootD is the same events. The events table
is partitioned by content_hash, which makes "is this file landed?" and "did another writer land
it while I was reading?" exact questions about partitions. The check and the commit are one
decision: the commit is an overwrite of the partitions of the files being landed, validated
(serializable isolation) against every commit since the snapshot the check read; if another
ingest landed one of the same files in between, Iceberg refuses the commit and the ingest
checks again, so two concurrent ingests of one file land it once.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pyarrow as pa
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from ingestion.delphes import (
    DelphesFileError,
    FileSurvey,
    read_events,
    read_failure,
    survey_file,
)
from ingestion.sources import expand_sources
from topolake.core.errors import TopolakeError, UsageError
from topolake.core.layout import COLLECTIONS
from topolake.core.tables import (
    BRONZE,
    BRONZE_EVENTS,
    BRONZE_INGESTED_FILES,
    BRONZE_REJECTED_FILES,
)
from topolake.core.vocabulary import SAMPLE_LABELS

#: Entries per Spark task: large files are split so every core gets work.
DEFAULT_STEP = 10_000

#: Commits refused because a concurrent writer landed the same files are tried again this often.
COMMIT_ATTEMPTS = 5

#: Brackets the JSON {path, reason} of a file that a reading task could not read.
READ_FAILURE = "@@topolake-read-failure@@"

INGEST_ID_PROPERTY = "topolake.ingest-id"
FILES_PROPERTY = "topolake.files"

_SPARK_TYPES = {pa.float32(): "FLOAT", pa.int32(): "INT"}
_SAMPLE_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


COLLECTION_COLUMNS = [
    f"{name} ARRAY<STRUCT<{', '.join(f'{f}: {_SPARK_TYPES[t]}' for f, t in fields.items())}>>"
    for name, fields in COLLECTIONS.items()
]

#: What the reading tasks return; sample/label/ingest_id are added as literals afterwards.
READ_SCHEMA = ", ".join(
    ["source_file STRING", "content_hash STRING", "entry BIGINT", *COLLECTION_COLUMNS]
)

_COLUMNS_SEPARATOR = ",\n  "

TABLE_PROPERTIES = {
    "format-version": "2",
    "write.parquet.compression-codec": "zstd",
    "write.distribution-mode": "none",
    "write.spark.fanout.enabled": "true",
}

#: Validated ledger commits filter on ingest_id: its file statistics must be exact, not the
#: default 16-character prefix (ids made in the same second share it, and would conflict).
EXACT_INGEST_ID = {"write.metadata.metrics.column.ingest_id": "full"}


def _tblproperties(properties: dict[str, str]) -> str:
    return "TBLPROPERTIES (\n{}\n)".format(
        ",\n".join(f"  '{key}' = '{value}'" for key, value in properties.items())
    )


def create_tables(spark: SparkSession) -> None:
    """Create the bronze namespace and tables if they do not exist yet.

    Safe when two processes do it at once: the one that loses the race finds the table made.
    """
    _create_if_absent(spark, f"CREATE NAMESPACE IF NOT EXISTS {BRONZE}")
    _create_if_absent(
        spark,
        f"""
CREATE TABLE IF NOT EXISTS {BRONZE_EVENTS} (
  sample STRING COMMENT 'sample name, e.g. ttbar',
  label INT COMMENT 'class: 0 qcd, 1 ttbar, 2 wjets',
  source_file STRING COMMENT 'path or URL the event was read from',
  content_hash STRING COMMENT 'SHA-256 of source_file: with entry, the identity of the event',
  entry BIGINT COMMENT 'entry number in the Delphes tree of source_file',
  ingest_id STRING COMMENT 'the topolake ingest that landed this event',
  {_COLUMNS_SEPARATOR.join(COLLECTION_COLUMNS)}
) USING iceberg
PARTITIONED BY (sample, content_hash)
COMMENT 'One row per Delphes event, collections as arrays of structs with Delphes names'
{_tblproperties(TABLE_PROPERTIES)}""",
    )
    _create_if_absent(
        spark,
        f"""
CREATE TABLE IF NOT EXISTS {BRONZE_INGESTED_FILES} (
  path STRING, content_hash STRING, size BIGINT, sample STRING, label INT, events BIGINT,
  snapshot_id BIGINT, ingest_id STRING, ingested_at TIMESTAMP, notes STRING,
  absent_fields ARRAY<STRING> COMMENT 'optional bronze fields the file lacks (landed as null)'
) USING iceberg
COMMENT 'The ledger of landed files; a file whose content_hash is here is never landed again'
{_tblproperties(TABLE_PROPERTIES | EXACT_INGEST_ID)}""",
    )
    _create_if_absent(
        spark,
        f"""
CREATE TABLE IF NOT EXISTS {BRONZE_REJECTED_FILES} (
  path STRING, reason STRING, content_hash STRING, sample STRING, label INT,
  ingest_id STRING, rejected_at TIMESTAMP
) USING iceberg
COMMENT 'Quarantine: files refused by an ingest, with the reason'
{_tblproperties(TABLE_PROPERTIES)}""",
    )
    migrate(spark)


def _create_if_absent(spark: SparkSession, statement: str) -> None:
    try:
        spark.sql(statement)
    except Exception as err:  # IF NOT EXISTS checks, then creates: a concurrent creator wins
        if "already exists" not in str(err).lower():
            raise


def _columns(spark: SparkSession, table: str) -> set[str]:
    return set(spark.table(table).columns)


def migrate(spark: SparkSession) -> bool:
    """Bring bronze tables written before events were identified by content up to date.

    Adds ``content_hash`` to the events (filled from the ledger, by path and ingest) and makes
    it a partition field, and ``absent_fields`` to the ledger. The events are rewritten once,
    in one commit; their earlier snapshots stay readable. Returns whether anything changed;
    silver and gold built before need ``topolake build --full-refresh`` (build does it).
    """
    changed = False
    if "absent_fields" not in _columns(spark, BRONZE_INGESTED_FILES):
        spark.sql(f"ALTER TABLE {BRONZE_INGESTED_FILES} ADD COLUMN absent_fields ARRAY<STRING>")
        spark.sql(f"ALTER TABLE {BRONZE_INGESTED_FILES} SET {_tblproperties(EXACT_INGEST_ID)}")
        changed = True
    if "content_hash" not in _columns(spark, BRONZE_EVENTS):
        reconcile_ledger(spark)
        spark.sql(f"ALTER TABLE {BRONZE_EVENTS} ADD COLUMN content_hash STRING AFTER source_file")
        spark.sql(f"ALTER TABLE {BRONZE_EVENTS} ADD PARTITION FIELD content_hash")
        spark.sql(f"""
MERGE INTO {BRONZE_EVENTS} AS events
USING (SELECT DISTINCT path, ingest_id, content_hash FROM {BRONZE_INGESTED_FILES}) AS ledger
ON events.source_file = ledger.path AND events.ingest_id = ledger.ingest_id
WHEN MATCHED THEN UPDATE SET events.content_hash = ledger.content_hash""")
        changed = True
    return changed


class IngestArgumentError(UsageError):
    """The ingest's arguments are wrong; nothing was read or written."""


@dataclass
class IngestOutcome:
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
    """Re-create ledger rows of events commits whose ledger commit never happened.

    Two processes may find the same orphan at once (one of them being the ingest that made it,
    about to write its own rows): each ingest's rows are written by a validated commit, so
    only one of them lands; a commit refused for a concurrent one checks again.
    """
    orphans = spark.sql(f"""
SELECT s.snapshot_id, s.committed_at, s.summary['{INGEST_ID_PROPERTY}'] AS ingest_id,
       s.summary['{FILES_PROPERTY}'] AS files
FROM {BRONZE_EVENTS}.snapshots s
JOIN {BRONZE_EVENTS}.history h ON h.snapshot_id = s.snapshot_id AND h.is_current_ancestor
WHERE s.summary['{INGEST_ID_PROPERTY}'] IS NOT NULL
  AND s.summary['{INGEST_ID_PROPERTY}'] NOT IN (SELECT ingest_id FROM {BRONZE_INGESTED_FILES})
""").collect()
    written = 0
    for orphan in orphans:
        rows = [
            (
                f["path"],
                f["content_hash"],
                f["size"],
                f["sample"],
                f["label"],
                f["events"],
                orphan.snapshot_id,
                orphan.ingest_id,
                orphan.committed_at,
                f["notes"],
                f.get("absent_fields", []),
            )
            for f in json.loads(orphan.files)
        ]
        frame = spark.createDataFrame(rows, spark.table(BRONZE_INGESTED_FILES).schema)
        for attempt in range(1, COMMIT_ATTEMPTS + 1):
            base = head_snapshot(spark, BRONZE_INGESTED_FILES)
            if _has_ledger_rows(spark, orphan.ingest_id):
                break  # another process wrote them
            try:
                commit_validated(
                    frame, BRONZE_INGESTED_FILES, F.col("ingest_id") == orphan.ingest_id, base
                )
                written += len(rows)
                break
            except CommitConflict:
                if attempt == COMMIT_ATTEMPTS:
                    raise
                time.sleep(0.2 * attempt)
    return written


def _has_ledger_rows(spark: SparkSession, ingest_id: str) -> bool:
    return bool(
        spark.table(BRONZE_INGESTED_FILES).where(F.col("ingest_id") == ingest_id).limit(1).count()
    )


def head_snapshot(spark: SparkSession, table: str) -> int | None:
    """The table's current snapshot id (None before its first commit)."""
    row = spark.sql(
        f"SELECT snapshot_id FROM {table}.history WHERE is_current_ancestor "
        "ORDER BY made_current_at DESC LIMIT 1"
    ).first()
    return row.snapshot_id if row else None


class CommitConflict(TopolakeError):
    """Another writer committed rows this commit's filter covers since its base snapshot."""


def commit_validated(
    frame: DataFrame,
    table: str,
    rows: Column,
    base: int | None,
    properties: dict[str, str] | None = None,
) -> None:
    """Write ``frame`` as the new content of the rows matching ``rows``, in one commit.

    Serializable isolation from ``base`` (the snapshot the caller read when it decided these
    rows were absent): if any commit after ``base`` added rows that ``rows`` matches, Iceberg
    refuses this one and CommitConflict is raised, with nothing written.
    """
    writer = frame.writeTo(table).option("isolation-level", "serializable")
    if base is not None:
        writer = writer.option("validate-from-snapshot-id", str(base))
    for key, value in (properties or {}).items():
        writer = writer.option(f"snapshot-property.{key}", value)
    try:
        writer.overwrite(rows)
    except Exception as err:
        cause = next((line for line in str(err).splitlines() if "conflicting files" in line), "")
        if cause:
            raise CommitConflict(
                f"{table}: another writer committed the same rows after snapshot {base} "
                f"({cause.strip()[:300]})"
            ) from err
        raise


def _append(spark: SparkSession, table: str, rows: list[tuple]) -> None:
    schema = spark.table(table).schema
    spark.createDataFrame(rows, schema).writeTo(table).append()


def _new_files(
    spark: SparkSession, candidates: list[FileSurvey]
) -> tuple[list[FileSurvey], list[tuple[str, str]]]:
    """Split readable files into those to land and those whose content is landed already.

    Asks the events table itself (its content_hash partitions), so a file landed by an ingest
    whose ledger row is not written yet counts as landed; the ledger only names where from.
    """
    if not candidates:
        return [], []
    hashes = sorted({s.content_hash for s in candidates})
    landed = {
        row.content_hash
        for row in spark.sql(
            f"SELECT DISTINCT partition.content_hash FROM {BRONZE_EVENTS}.partitions "
            "WHERE partition.content_hash IN ({})".format(", ".join(f"'{h}'" for h in hashes))
        ).collect()
    }
    paths = {
        row.content_hash: row.path
        for row in spark.table(BRONZE_INGESTED_FILES)
        .where(F.col("content_hash").isin(hashes))
        .select("content_hash", "path")
        .collect()
    }
    new: list[FileSurvey] = []
    skipped: list[tuple[str, str]] = []
    seen: dict[str, str] = {}
    for s in candidates:
        if s.content_hash in landed:
            where = paths.get(s.content_hash, "by a concurrent ingest")
            skipped.append((s.path, f"already ingested as {where}"))
        elif s.content_hash in seen:
            skipped.append((s.path, f"same content as {seen[s.content_hash]} in this ingest"))
        else:
            seen[s.content_hash] = s.path
            new.append(s)
    return new, skipped


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
                    n = events.num_rows
                    source = pa.array([task["path"]] * n, pa.string())
                    content = pa.array([task["content_hash"]] * n, pa.string())
                    yield pa.RecordBatch.from_arrays(
                        [source, content, *events.columns],
                        names=["source_file", "content_hash", *events.schema.names],
                    )
            except Exception as err:
                # the driver finds the file in the job's error, refuses it and lands the others
                reason = (
                    str(err)
                    if isinstance(err, DelphesFileError)
                    else read_failure(err, task["entry_start"], task["entry_stop"])
                )
                failure = json.dumps({"path": task["path"], "reason": reason})
                raise RuntimeError(f"{READ_FAILURE}{failure}{READ_FAILURE}") from err


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
        (
            s.path,
            s.content_hash,
            s.tree,
            json.dumps(s.branches),
            start,
            min(start + step, s.entries),
        )
        for s in surveys
        for start in range(0, s.entries, step)
    ]
    plan = spark.sparkContext.parallelize(tasks, len(tasks)).toDF(
        "path STRING, content_hash STRING, tree STRING, branches STRING, "
        "entry_start BIGINT, entry_stop BIGINT"
    )
    events = plan.mapInArrow(_read_tasks, READ_SCHEMA)
    return events.select(
        F.lit(sample).alias("sample"),
        F.lit(label).cast("int").alias("label"),
        "source_file",
        "content_hash",
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
        "absent_fields": s.absent_fields,
    }


def _unwatched(description: str) -> AbstractContextManager[None]:
    return nullcontext()


def ingest(
    spark: SparkSession,
    sources: list[str],
    sample: str,
    label: int,
    step: int = DEFAULT_STEP,
    watch: Callable[[str], AbstractContextManager[None]] = _unwatched,
) -> IngestOutcome:
    """Land the events of ``sources`` in bronze; see the module docstring for guarantees.

    ``watch(description)`` wraps each Spark job of the ingest (checking the files, landing the
    events), so that the caller can show its progress; ingestion itself prints nothing.
    """
    if step <= 0:
        raise IngestArgumentError(f"The step must be a positive number of entries, not {step}.")
    create_tables(spark)
    check_sample_label(spark, sample, label)
    reconcile_ledger(spark)
    outcome = IngestOutcome(ingest_id=f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}")

    files = expand_sources(sources)
    with watch(f"checking {len(files)} file(s)"):
        surveys = survey(spark, files)
    outcome.rejected = [s for s in surveys if not s.ok]
    candidates = [s for s in surveys if s.ok]
    attempt = 0
    while attempt < COMMIT_ATTEMPTS:
        attempt += 1
        # read before the check: the commit validates against every commit since
        base = head_snapshot(spark, BRONZE_EVENTS)
        outcome.landed, outcome.skipped = _new_files(spark, candidates)
        if not outcome.landed:
            break
        ledger = [_ledger_entry(s, sample, label) for s in outcome.landed]
        frame = events_frame(spark, outcome.landed, sample, label, outcome.ingest_id, step)
        hashes = [s.content_hash for s in outcome.landed]
        try:
            with watch(f"landing {outcome.events} events"):
                commit_validated(
                    frame,
                    BRONZE_EVENTS,
                    F.col("content_hash").isin(hashes),
                    base,
                    {INGEST_ID_PROPERTY: outcome.ingest_id, FILES_PROPERTY: json.dumps(ledger)},
                )
        except CommitConflict:
            if attempt == COMMIT_ATTEMPTS:
                raise
            time.sleep(0.2 * attempt)  # a concurrent ingest landed some of these: check again
            continue
        except Exception as err:  # the job failed and wrote nothing
            unreadable = _unreadable_file(err, candidates)
            if unreadable is None:
                raise
            outcome.rejected.append(unreadable)
            candidates.remove(unreadable)
            attempt -= 1  # not a conflict; the loop ends as the candidates run out
            continue
        outcome.snapshot_id = reconcile_and_find_snapshot(spark, outcome.ingest_id)
        break

    if outcome.rejected:
        now = datetime.now(UTC)
        _append(
            spark,
            BRONZE_REJECTED_FILES,
            [
                (s.path, s.reason, s.content_hash or None, sample, label, outcome.ingest_id, now)
                for s in outcome.rejected
            ],
        )
    return outcome


def _unreadable_file(err: Exception, candidates: list[FileSurvey]) -> FileSurvey | None:
    """The file a failed landing job names as unreadable (see _read_tasks), marked refused."""
    match = re.search(f"{READ_FAILURE}(.*?){READ_FAILURE}", str(err), re.DOTALL)
    if not match:
        return None
    failure = json.loads(match.group(1))
    survey = next((s for s in candidates if s.path == failure["path"]), None)
    if survey is not None:
        survey.ok, survey.reason = False, failure["reason"]
    return survey


def reconcile_and_find_snapshot(spark: SparkSession, ingest_id: str) -> int:
    """Write the ledger rows of the commit just made and return its snapshot id."""
    reconcile_ledger(spark)
    row = spark.sql(
        f"SELECT snapshot_id FROM {BRONZE_INGESTED_FILES} WHERE ingest_id = :id LIMIT 1",
        args={"id": ingest_id},
    ).first()
    return int(row.snapshot_id)
