"""From a pinned, validated gold snapshot to scaled, padded training batches.

The driver never collects rows: Spark joins the three gold tables at their pinned snapshots
and writes the result once as Parquet (an *extract*, keyed by the snapshot ids, reused by
every run on the same snapshot, as Petastorm's Spark converter does); training workers stream
their share of it with pyarrow. Sequences are truncated to `max_particles` here and padded
per batch: a masked model's batch to its own longest sequence, BigDL's to `max_particles`.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from expectations.snapshots import SnapshotError, resolve
from topolake.core.errors import UsageError
from topolake.core.settings import Settings
from topolake.core.tables import (
    GOLD_HLF_FEATURES,
    GOLD_PARTICLE_SEQUENCES,
    GOLD_TRAINING_SET,
    LAYER_TABLES,
)
from topolake.core.vocabulary import HLF_FEATURES, PARTICLE_FEATURES

if TYPE_CHECKING:  # Spark is imported where it is used: padding and batches need none of it
    from pyspark.sql import SparkSession

GOLD_TABLES = LAYER_TABLES["gold"]


class SnapshotRefused(UsageError):
    """The gold snapshot does not exist or has no passing validation."""


@dataclass(frozen=True)
class GoldSnapshot:
    snapshots: dict[str, int]  # table -> snapshot id
    validation_id: str | None  # None: not validated (only with --skip-validation)

    @property
    def key(self) -> str:
        text = json.dumps(sorted(self.snapshots.items()))
        return hashlib.sha1(text.encode()).hexdigest()[:16]


def pin_gold(spark: SparkSession, snapshot: str | None, skip_validation: bool) -> GoldSnapshot:
    """The gold snapshots to train on: `snapshot` (an id of one gold table, or a timestamp),
    or the newest one with a passing validation."""
    from expectations.records import latest_passed, passed_with

    try:
        if snapshot is None:
            passed = latest_passed(spark, "gold")
            if passed is not None:
                return GoldSnapshot(passed.snapshots, passed.validation_id)
            pinned = resolve(spark, GOLD_TABLES, None)
        else:
            pinned = resolve(spark, GOLD_TABLES, snapshot)
    except SnapshotError as err:
        raise SnapshotRefused(str(err)) from err
    passed = passed_with(spark, GOLD_TRAINING_SET, pinned[GOLD_TRAINING_SET])
    if passed is not None and passed.snapshots == pinned:
        return GoldSnapshot(pinned, passed.validation_id)
    if skip_validation:
        return GoldSnapshot(pinned, None)
    problem = (
        f"gold snapshot {snapshot} has no passing validation"
        if snapshot
        else "no gold snapshot has passed validation"
    )
    raise SnapshotRefused(
        f"{problem}: run `topolake validate --layer gold` first "
        "(or train with --skip-validation, which the run will record)."
    )


#: The parts of an extract a model sees: it is fitted on "train" (the training split less the
#: validation fifth), stopped early and tuned on "validation", and evaluated once on "test".
PARTS = ("train", "validation", "test")
#: The validation fifth: the training events whose shuffle key, Spark's
#: `xxhash64(content_hash, entry, SHUFFLE_SALT)` (a hash of the event's identity only, salted
#: to be independent of the train/test split's hash), is 0 modulo 5. The same
#: event is in it on every run, engine and grid point, and it never holds a test event: it is
#: drawn from the training split's files.
VALIDATION_SHARE = 5
SHUFFLE_SALT = "shuffle"
#: Granularity of `fraction` (a grid search's share of the fitted part), by the same key.
QUOTA = 1000

RowFilter = Callable[[pa.RecordBatch], np.ndarray]


def in_validation(shuffle_key: np.ndarray) -> np.ndarray:
    """Which events (by shuffle key) belong to the validation fifth of the training split."""
    return np.remainder(shuffle_key, VALIDATION_SHARE) == 0


def part_rows(part: str, fraction: float = 1.0) -> RowFilter | None:
    """The row filter of `part` over its split's files (None: every row): the validation
    fifth, or `fraction` of the rest of the training split (chosen by the same key, so a
    smaller fraction is a subset of a larger one)."""
    if part not in PARTS:
        raise ValueError(f"unknown part {part!r}: one of {', '.join(PARTS)}")
    if part == "test":
        return None

    def rows(record: pa.RecordBatch) -> np.ndarray:
        key = record.column("shuffle_key").to_numpy()
        held_out = in_validation(key)
        if part == "validation":
            return held_out
        return ~held_out & ((key // VALIDATION_SHARE) % QUOTA < round(fraction * QUOTA))

    return rows


@dataclass(frozen=True)
class Scaling:
    """Fitted on the training split only (PHYSICS.md); saved with the model.

    The training split here includes its validation fifth: the scaling uses no labels, so
    the validation events' features shaping a minimum or a mean tells the early stopping and
    the grid search nothing about how well a model classifies them; and one scaling per
    extract keeps every model trained on it evaluable with the scaling saved beside it.
    """

    hlf_min: list[float]
    hlf_max: list[float]
    particle_mean: list[float]
    particle_std: list[float]

    def hlf(self, x: np.ndarray) -> np.ndarray:
        low, high = np.asarray(self.hlf_min), np.asarray(self.hlf_max)
        return ((x - low) / np.where(high > low, high - low, 1.0)).astype(np.float32)

    def particles(self, x: np.ndarray) -> np.ndarray:
        std = np.asarray(self.particle_std)
        return ((x - np.asarray(self.particle_mean)) / np.where(std > 0, std, 1.0)).astype(
            np.float32
        )

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Scaling:
        return cls(**json.loads(text))


@dataclass(frozen=True)
class Extract:
    path: Path
    gold: GoldSnapshot
    events: dict[str, int]  # split -> events
    scaling: Scaling

    def files(self, split: str) -> list[Path]:
        return sorted((self.path / f"split={split}").glob("*.parquet"))

    def part(self, name: str, fraction: float = 1.0) -> tuple[list[Path], RowFilter | None]:
        """(files, row filter) of a part (`PARTS`): "train" and "validation" read the
        training split's files, "test" the test split's."""
        split = "test" if name == "test" else "train"
        return self.files(split), part_rows(name, fraction)

    def part_events(self, name: str, fraction: float = 1.0) -> int:
        """Events in a part (the training split's parts are counted from their shuffle keys:
        one column, streamed)."""
        files, where = self.part(name, fraction)
        if where is None:
            return self.events.get(name, 0)
        return sum(
            int(where(record).sum())
            for file in files
            for record in pq.ParquetFile(file).iter_batches(columns=["shuffle_key"])
        )


def extract(spark: SparkSession, settings: Settings, gold: GoldSnapshot) -> Extract:
    """Write (once per gold snapshot) the joined training rows and the fitted scaling."""
    path = settings.home / "ml" / "extracts" / gold.key
    meta = path / "extract.json"
    if not meta.exists():
        _write_extract(spark, gold, path)
    info = json.loads(meta.read_text())
    return Extract(path, gold, info["events"], Scaling(**info["scaling"]))


def _write_extract(spark: SparkSession, gold: GoldSnapshot, path: Path) -> None:
    from pyspark.sql import functions as F

    def at(table: str):
        return spark.read.option("snapshot-id", gold.snapshots[table]).table(table)

    rows = (
        at(GOLD_TRAINING_SET)
        .select("source_file", "content_hash", "entry", "label", "split")
        .join(
            at(GOLD_HLF_FEATURES).select("content_hash", "entry", *HLF_FEATURES),
            ["content_hash", "entry"],
        )
        .join(
            at(GOLD_PARTICLE_SEQUENCES).select("content_hash", "entry", "particles"),
            ["content_hash", "entry"],
        )
        .select(
            "source_file",
            "content_hash",
            "entry",
            "label",
            "split",
            F.array(*[F.col(f).cast("float") for f in HLF_FEATURES]).alias("hlf"),
            "particles",
            F.xxhash64("content_hash", "entry", F.lit(SHUFFLE_SALT)).alias("shuffle_key"),
        )
    )
    staging = path.with_name(path.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    (
        rows.repartition(4, "shuffle_key")  # deterministic: the same files on a rewrite
        # the writer needs rows grouped by its partition column: sort by it first
        .sortWithinPartitions("split", "shuffle_key")
        .write.partitionBy("split")
        .parquet(str(staging))
    )
    written = spark.read.parquet(str(staging))
    events = {r.split: r["count"] for r in written.groupBy("split").count().collect()}
    train = written.where("split = 'train'")
    hlf = train.select(*[F.col("hlf")[i].alias(f) for i, f in enumerate(HLF_FEATURES)])
    hlf_range = hlf.agg(*[F.min(f) for f in HLF_FEATURES], *[F.max(f) for f in HLF_FEATURES])
    hlf_range = hlf_range.first()
    particles = train.select(F.explode("particles").alias("p")).select("p.*")
    moments = particles.agg(
        *[F.avg(f) for f in PARTICLE_FEATURES], *[F.stddev_pop(f) for f in PARTICLE_FEATURES]
    ).first()
    n, m = len(HLF_FEATURES), len(PARTICLE_FEATURES)
    scaling = Scaling(
        hlf_min=[float(v) for v in hlf_range[:n]],
        hlf_max=[float(v) for v in hlf_range[n:]],
        particle_mean=[float(v) for v in moments[:m]],
        particle_std=[float(v) for v in moments[m:]],
    )
    info = {"gold": asdict(gold), "events": events, "scaling": asdict(scaling)}
    (staging / "extract.json").write_text(json.dumps(info, indent=2))
    shutil.rmtree(path, ignore_errors=True)
    staging.rename(path)


def kept_particles(
    column: pa.ListArray,
    max_particles: int,
    scaling: Scaling | None,
    rows: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """list<struct<19 floats>> -> (the kept particles' features, (kept, 19) float32, scaled;
    the number kept per event) of the events `rows` (ascending; None: all): each event keeps
    its last `max_particles` (the closest to the lepton, the lepton itself last), as Keras's
    pad_sequences truncates by default. Rows are chosen on the flat NumPy arrays: taking them
    from the nested Arrow column first would copy it."""
    column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    counts = np.diff(column.offsets.to_numpy())
    flat = column.flatten()
    values = np.column_stack(
        [flat.field(f).to_numpy(zero_copy_only=False) for f in PARTICLE_FEATURES]
    )
    row = np.repeat(np.arange(len(counts)), counts)
    position = np.arange(len(values)) - np.repeat(np.cumsum(counts) - counts, counts)
    keep = position >= counts[row] - max_particles  # drop the first ones of long events
    if rows is not None:
        chosen = np.zeros(len(counts), bool)
        chosen[rows] = True
        keep &= chosen[row]
        counts = counts[rows]
    values = values[keep]
    values = scaling.particles(values) if scaling else values.astype(np.float32)
    return values, np.minimum(counts, max_particles)


def pad_particles(
    column: pa.ListArray,
    max_particles: int,
    scaling: Scaling | None,
    padding: str = "post",
    fit: bool = False,
) -> np.ndarray:
    """list<struct<19 floats>> -> (events, width, 19): each event's last `max_particles`
    particles (`kept_particles`), zero rows after them ("post", for a Masking layer to skip)
    or before them ("pre", for recurrent layers that cannot skip them: the real particles then
    come last, next to the output). The width is `max_particles`, or with `fit` the longest
    kept sequence's (a masked model computes the same on any width)."""
    values, counts = kept_particles(column, max_particles, scaling)
    width = int(counts.max(initial=0)) if fit else max_particles
    row = np.repeat(np.arange(len(counts)), counts)
    position = np.arange(len(values)) - np.repeat(np.cumsum(counts) - counts, counts)
    if padding == "pre":
        position = position + (width - counts)[row]
    out = np.zeros((len(counts), width, len(PARTICLE_FEATURES)), np.float32)
    out[row, position] = values
    return out


def records(
    files: list[Path],
    columns: list[str],
    shard: tuple[int, int] = (0, 1),
    where: RowFilter | None = None,
) -> Iterator[tuple[pa.RecordBatch, np.ndarray | None]]:
    """This worker's share of the rows of `files` that `where` (a mask over a record batch
    with `shuffle_key`) keeps, a record batch at a time: (record, the indices of its rows
    that are this worker's, ascending; None if all are). Every n-th kept row is a worker's,
    so the workers' shares differ by one row at most."""
    rank, workers = shard
    columns = [*columns, *(["shuffle_key"] if where and "shuffle_key" not in columns else [])]
    seen = 0
    for file in files:
        for record in pq.ParquetFile(file).iter_batches(batch_size=4096, columns=columns):
            kept = np.nonzero(where(record))[0] if where else np.arange(record.num_rows)
            mine = kept[(np.arange(seen, seen + len(kept)) % workers) == rank]
            seen += len(kept)
            if len(mine):
                yield record, None if len(mine) == record.num_rows else mine


def input_columns(inputs: tuple[str, ...]) -> list[str]:
    """The extract's columns a model with `inputs` reads, its label first."""
    return ["label", *(name for name in ("hlf", "particles") if name in inputs)]


def batches(
    files: list[Path],
    batch_size: int,
    max_particles: int,
    scaling: Scaling | None,
    inputs: tuple[str, ...],
    shard: tuple[int, int] = (0, 1),
    padding: str = "post",
    where: RowFilter | None = None,
    fixed_width: bool = False,
) -> Iterator[tuple[tuple[np.ndarray, ...], np.ndarray]]:
    """Scaled (inputs, labels) batches of this worker's share (`records`) of `files`.

    Post-padded particles fill each batch to its own longest kept sequence (a masked model
    computes the same on any width), or to `max_particles` with `fixed_width` (a model saved
    with a fixed sequence length); pre-padded ones (BigDL's) always to `max_particles`."""
    fit = not fixed_width and padding == "post"
    pending: list[pa.RecordBatch] = []
    pending_rows = 0
    for record, rows in records(files, input_columns(inputs), shard, where):
        record = record if rows is None else record.take(pa.array(rows))
        pending.append(record)
        pending_rows += record.num_rows
        while pending_rows >= batch_size:
            table = pa.Table.from_batches(pending)
            batch = table.slice(0, batch_size)
            yield _arrays(batch, max_particles, scaling, inputs, padding, fit)
            rest = table.slice(batch_size)
            pending, pending_rows = rest.to_batches(), rest.num_rows
    if pending_rows:
        table = pa.Table.from_batches(pending)
        yield _arrays(table, max_particles, scaling, inputs, padding, fit)


def hlf_values(
    table: pa.Table | pa.RecordBatch, scaling: Scaling | None, rows: np.ndarray | None = None
) -> np.ndarray:
    """The 14 high-level features of the rows `rows` (None: all), (rows, 14) float32,
    scaled with `scaling`."""
    column = table.column("hlf")
    column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    values = column.flatten().to_numpy(zero_copy_only=False).reshape(-1, len(HLF_FEATURES))
    values = values if rows is None else values[rows]
    return scaling.hlf(values) if scaling else values.astype(np.float32)


def _arrays(table: pa.Table, max_particles, scaling, inputs, padding, fit):
    x = []
    for name in inputs:
        if name == "particles":
            particles = table["particles"].combine_chunks()
            x.append(pad_particles(particles, max_particles, scaling, padding, fit))
        else:
            x.append(hlf_values(table, scaling))
    return tuple(x), table["label"].to_numpy().astype(np.int32)
