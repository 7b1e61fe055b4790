"""From a pinned, validated gold snapshot to scaled, padded training batches.

The driver never collects rows: Spark joins the three gold tables at their pinned snapshots
and writes the result once as Parquet (an *extract*, keyed by the snapshot ids, reused by
every run on the same snapshot, as Petastorm's Spark converter does); training workers stream
their share of it with pyarrow. Padding to `max_particles` happens here, per batch.
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


def pad_particles(
    column: pa.ListArray, max_particles: int, scaling: Scaling | None, padding: str = "post"
) -> np.ndarray:
    """list<struct<19 floats>> -> (events, max_particles, 19), zero rows after the real ones
    ("post", for a Masking layer to skip) or before them ("pre", for recurrent layers that
    cannot skip them: the real particles then come last, next to the output).

    Events with more particles keep their last `max_particles` (the closest to the lepton,
    the lepton itself last), as Keras's pad_sequences truncates by default.
    """
    column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    counts = np.diff(column.offsets.to_numpy())
    flat = column.flatten()
    values = np.column_stack(
        [flat.field(f).to_numpy(zero_copy_only=False) for f in PARTICLE_FEATURES]
    )
    if scaling is not None:
        values = scaling.particles(values)
    events = len(counts)
    row = np.repeat(np.arange(events), counts)
    position = np.arange(len(values)) - np.repeat(np.cumsum(counts) - counts, counts)
    kept = counts[row] - max_particles  # drop the first ones of long events
    keep = position >= kept
    position = position - np.maximum(kept, 0)
    if padding == "pre":
        position = position + np.maximum(-kept, 0)
    out = np.zeros((events, max_particles, len(PARTICLE_FEATURES)), np.float32)
    out[row[keep], position[keep]] = values[keep]
    return out


def batches(
    files: list[Path],
    batch_size: int,
    max_particles: int,
    scaling: Scaling | None,
    inputs: tuple[str, ...],
    shard: tuple[int, int] = (0, 1),
    padding: str = "post",
    where: Callable[[pa.RecordBatch], np.ndarray] | None = None,
) -> Iterator[tuple[tuple[np.ndarray, ...], np.ndarray]]:
    """Scaled (inputs, labels) batches of this worker's share of the rows of `files` that
    `where` (a mask over a record batch with `shuffle_key`) keeps: every n-th kept row, so
    the workers' shares differ by one row at most."""
    rank, workers = shard
    columns = [
        "label",
        *(["hlf"] if "hlf" in inputs else []),
        *(["particles"] if "particles" in inputs else []),
        *(["shuffle_key"] if where else []),
    ]
    seen = 0
    pending: list[pa.RecordBatch] = []
    pending_rows = 0
    for file in files:
        for record in pq.ParquetFile(file).iter_batches(batch_size=4096, columns=columns):
            kept = np.nonzero(where(record))[0] if where else np.arange(record.num_rows)
            mine = kept[(np.arange(seen, seen + len(kept)) % workers) == rank]
            seen += len(kept)
            pending.append(record.take(pa.array(mine)))
            pending_rows += len(mine)
            while pending_rows >= batch_size:
                table = pa.Table.from_batches(pending)
                yield _arrays(table.slice(0, batch_size), max_particles, scaling, inputs, padding)
                rest = table.slice(batch_size)
                pending, pending_rows = rest.to_batches(), rest.num_rows
    if pending_rows:
        yield _arrays(pa.Table.from_batches(pending), max_particles, scaling, inputs, padding)


def _arrays(table: pa.Table, max_particles: int, scaling: Scaling | None, inputs, padding):
    x = []
    for name in inputs:
        if name == "particles":
            particles = table["particles"].combine_chunks()
            x.append(pad_particles(particles, max_particles, scaling, padding))
        else:
            hlf = table["hlf"].combine_chunks()
            values = hlf.flatten().to_numpy(zero_copy_only=False).reshape(-1, len(HLF_FEATURES))
            x.append(scaling.hlf(values) if scaling else values)
    return tuple(x), table["label"].to_numpy().astype(np.int32)
