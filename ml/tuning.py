"""Grid search on Spark: every grid point trains as its own Spark task.

Each point is a one-task Spark job that trains a single-process model on a share of the
pinned extract (`fraction` of the training split less its validation fifth) for exactly its
`epochs` (the epochs are one of the grid's axes) and scores it on the validation fifth, the
same events `topolake train` stops early on (`ml.data.PARTS`); the test split stays untouched
for evaluation. A finished point is
merged into `lake.ml.tuning_results` at once, keyed by the snapshot, model, fraction, seed and
parameters, so an interrupted search that is run again skips the points already done.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from ml.data import Extract
from ml.models import Architecture
from ml.spec import TrainSpec
from topolake.core.errors import UsageError
from topolake.core.settings import Settings
from topolake.core.tables import ML_TUNING_RESULTS
from topolake.core.vocabulary import MODEL_INPUTS

# grid keys and how each sets a TrainSpec; dense_1..3 are the HLF model's three widths
SPEC_KEYS = {"batch_size": int, "epochs": int, "learning_rate": float, "max_particles": int}
ARCH_KEYS = {"gru_units": int, "inclusive_dense": int, "dropout": float}
DENSE_KEYS = ("dense_1", "dense_2", "dense_3")


class GridError(UsageError):
    """The grid file is unusable; the message names the file and the problem."""


@dataclass(frozen=True)
class Grid:
    model: str
    fraction: float
    points: list[dict]  # grid key -> value


def load_grid(path: Path, model: str | None = None, fraction: float | None = None) -> Grid:
    """A YAML grid: `grid:` maps each key to a list of values; the points are their product."""
    import yaml

    try:
        document = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as err:
        raise GridError(f"grid file {path} cannot be read: {err}") from err
    if not isinstance(document, dict) or not isinstance(document.get("grid"), dict):
        raise GridError(f"grid file {path} has no `grid:` mapping of keys to lists of values.")
    model = model or document.get("model", "hlf")
    if model not in MODEL_INPUTS:
        raise GridError(
            f"grid file {path}: unknown model {model!r} (grids tune {', '.join(MODEL_INPUTS)})."
        )
    fraction = float(fraction if fraction is not None else document.get("fraction", 1.0))
    if not 0 < fraction <= 1:
        raise GridError(f"grid file {path}: fraction {fraction} is not in (0, 1].")
    axes = {}
    for key, values in document["grid"].items():
        kind = {**SPEC_KEYS, **ARCH_KEYS, **dict.fromkeys(DENSE_KEYS, int)}.get(key)
        if kind is None:
            known = ", ".join([*SPEC_KEYS, *ARCH_KEYS, *DENSE_KEYS])
            raise GridError(f"grid file {path}: unknown key {key!r} (known: {known}).")
        values = values if isinstance(values, list) else [values]
        if not values:
            raise GridError(f"grid file {path}: {key} has no values.")
        try:
            axes[key] = [kind(v) for v in values]
        except (TypeError, ValueError) as err:
            raise GridError(
                f"grid file {path}: {key} has a value that is not a {kind.__name__}."
            ) from err
    points = [dict(zip(axes, values, strict=True)) for values in itertools.product(*axes.values())]
    return Grid(model, fraction, points)


def point_spec(model: str, point: dict, seed: int = 0) -> TrainSpec:
    spec = TrainSpec(model, seed=seed, **{k: v for k, v in point.items() if k in SPEC_KEYS})
    arch = {k: v for k, v in point.items() if k in ARCH_KEYS}
    widths = list(spec.architecture.hidden)
    for i, key in enumerate(DENSE_KEYS):
        if key in point:
            widths[i] = point[key]
    return replace(spec, architecture=replace(Architecture(), hidden=tuple(widths), **arch))


def point_key(data: Extract, grid: Grid, seed: int, point: dict) -> str:
    text = json.dumps([data.gold.key, grid.model, grid.fraction, seed, sorted(point.items())])
    return hashlib.sha1(text.encode()).hexdigest()[:20]


def train_point(spec: TrainSpec, data: Extract) -> dict:
    """Runs inside a Spark task: train one grid point in this process on `spec.fraction` of
    the fitted part, score it on the validation fifth."""
    import tensorflow as tf

    from ml.evaluate import predict
    from ml.models import build_model, compile_model
    from ml.tf_engine import tf_dataset

    try:  # one core per task: the points run side by side
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        pass  # this Python worker already trained a point with the same settings
    files, train_rows = data.part("train", spec.fraction)
    events = data.part_events("train", spec.fraction)
    started = time.perf_counter()
    model = compile_model(
        build_model(spec.model, spec.max_particles, spec.architecture, spec.seed),
        spec.learning_rate,
    )
    history = model.fit(
        tf_dataset(files, spec, data.scaling, where=train_rows),
        epochs=spec.epochs,
        steps_per_epoch=max(1, math.ceil(events / spec.batch_size)),
        verbose=0,
    )
    scores, labels = predict(model, spec, data, "validation")
    return {
        "train_events": events,
        "validation_events": len(labels),
        "loss": float(history.history["loss"][-1]),
        **validation_scores(scores, labels),
        "seconds": time.perf_counter() - started,
    }


def validation_scores(scores: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Cross-entropy, accuracy and the mean one-vs-rest AUC of the classes present."""
    from sklearn.metrics import log_loss

    from ml.evaluate import metrics

    accuracy, auc, _ = metrics(scores, labels)
    return {
        "val_loss": float(log_loss(labels, scores, labels=range(scores.shape[1]))),
        "val_accuracy": accuracy,
        "val_auc": float(np.mean(list(auc.values()))) if auc else float("nan"),
    }


@dataclass
class PointResult:
    point_key: str
    params: dict
    scores: dict
    run_id: str | None = None


@dataclass
class TuningOutcome:
    done_before: int
    trained: list[PointResult]
    failed: list[tuple[dict, str]]
    best: dict | None  # a row of the results table


def create_results_table(spark) -> None:
    spark.sql(f"CREATE NAMESPACE IF NOT EXISTS {ML_TUNING_RESULTS.rsplit('.', 1)[0]}")
    spark.sql(f"""
CREATE TABLE IF NOT EXISTS {ML_TUNING_RESULTS} (
    point_key STRING, model STRING, params STRING, batch_size INT, epochs INT,
    learning_rate DOUBLE, hidden STRING, fraction DOUBLE, seed INT, train_events BIGINT,
    validation_events BIGINT, loss DOUBLE, val_loss DOUBLE, val_accuracy DOUBLE, val_auc DOUBLE,
    seconds DOUBLE, gold_snapshots STRING, validation_id STRING, mlflow_run_id STRING,
    finished_at TIMESTAMP
) USING iceberg""")


def done_points(spark, keys: list[str]) -> set[str]:
    rows = spark.table(ML_TUNING_RESULTS).select("point_key").collect()
    return {r.point_key for r in rows} & set(keys)


def _record(spark, lock: threading.Lock, grid: Grid, seed: int, data: Extract, r: PointResult):
    spec = point_spec(grid.model, r.params, seed)
    row = [
        (
            r.point_key,
            grid.model,
            json.dumps(r.params, sort_keys=True),
            spec.batch_size,
            spec.epochs,
            spec.learning_rate,
            "-".join(map(str, spec.architecture.hidden)),
            grid.fraction,
            seed,
            r.scores["train_events"],
            r.scores["validation_events"],
            r.scores["loss"],
            r.scores["val_loss"],
            r.scores["val_accuracy"],
            r.scores["val_auc"],
            r.scores["seconds"],
            json.dumps(data.gold.snapshots),
            data.gold.validation_id or "",
            r.run_id or "",
            datetime.now(UTC).replace(tzinfo=None),
        )
    ]
    with lock:  # one commit at a time; MERGE keeps a point once even if recorded twice
        frame = spark.createDataFrame(row, spark.table(ML_TUNING_RESULTS).schema)
        view = f"tuning_point_{r.point_key}"
        frame.createOrReplaceTempView(view)
        spark.sql(f"""
MERGE INTO {ML_TUNING_RESULTS} t USING {view} s ON t.point_key = s.point_key
WHEN NOT MATCHED THEN INSERT *""")
        spark.catalog.dropTempView(view)


def best_point(spark, keys: list[str]) -> dict | None:
    """The best point of this search: highest validation AUC, then lowest validation loss."""
    from pyspark.sql import functions as F

    rows = (
        spark.table(ML_TUNING_RESULTS)
        .where(F.col("point_key").isin(keys))
        .orderBy(F.col("val_auc").desc_nulls_last(), F.col("val_loss").asc())
        .limit(1)
        .collect()
    )
    return rows[0].asDict() if rows else None


def tune(
    spark,
    settings: Settings,
    grid: Grid,
    data: Extract,
    seed: int = 0,
    parallelism: int | None = None,
    on_point: Callable[[PointResult | None, str], None] = lambda result, line: None,
) -> TuningOutcome:
    """Train the grid's points not done yet, `parallelism` Spark tasks at a time."""
    from ml.tracking import log_tuning_point, start_tuning

    create_results_table(spark)
    keys = {point_key(data, grid, seed, p): p for p in grid.points}
    done = done_points(spark, list(keys))
    todo = {k: p for k, p in keys.items() if k not in done}
    parent = start_tuning(settings, grid, data, seed, len(keys), len(done)) if todo else None
    lock = threading.Lock()
    trained, failed = [], []

    def run_point(key: str, point: dict) -> PointResult:
        spec = replace(point_spec(grid.model, point, seed), fraction=grid.fraction)
        context = spark.sparkContext
        context.setJobDescription(f"tune {grid.model} {point}")
        scores = context.parallelize([0], 1).map(lambda _: train_point(spec, data)).collect()[0]
        result = PointResult(key, point, scores)
        with lock:
            result.run_id = log_tuning_point(settings, parent, spec, point, scores)
        _record(spark, lock, grid, seed, data, result)
        return result

    workers = parallelism or spark.sparkContext.defaultParallelism
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = {pool.submit(run_point, k, p): p for k, p in todo.items()}
        for future in as_completed(futures):
            point = futures[future]
            try:
                result = future.result()
            except Exception as err:  # a point that fails is reported and retried next time
                reason = str(err).strip().splitlines()[0] if str(err).strip() else repr(err)
                failed.append((point, reason))
                on_point(None, f"point {point} failed: {reason}")
                continue
            trained.append(result)
            s = result.scores
            on_point(
                result,
                f"point {point}: val AUC {s['val_auc']:.4f}, val loss "
                f"{s['val_loss']:.4f}, {s['seconds']:.0f} s",
            )
    if parent is not None:
        from ml.tracking import end_tuning

        end_tuning(settings, parent, failed=bool(failed))
    return TuningOutcome(len(done), trained, failed, best_point(spark, list(keys)))


def train_arguments(best: dict) -> list[str]:
    """The `topolake train` options of a results-table row."""
    return [
        "--model",
        best["model"],
        "--batch-size",
        str(best["batch_size"]),
        "--epochs",
        str(best["epochs"]),
        "--learning-rate",
        str(best["learning_rate"]),
        "--hidden",
        best["hidden"].replace("-", ","),
    ]


def spec_of(best: dict, seed: int = 0) -> TrainSpec:
    return point_spec(best["model"], json.loads(best["params"]), seed)
