"""The reference's classical baselines on the HLF, trained and scored with Spark ML.

A Spark ML random forest (`rf`: 100 trees of depth 10, the reference's) and XGBoost's PySpark
estimator (`xgboost`: `xgboost.spark.SparkXGBClassifier`, one Spark barrier task per worker,
stopping early on the validation fifth) read the extract's training split with Spark, so they
train distributed where the data is, as the reference's did. They see the same parts as the
Keras models (`ml.data.PARTS`, `ml.data.part_rows`): the same validation fifth, and the same
share of the rest with `TrainSpec.fraction`. The 14 HLF go in unscaled: a tree splits on
thresholds, which a monotone scaling does not change.

The engine a baseline records is "spark"; `--engine` is for the Keras models.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ml.data import QUOTA, VALIDATION_SHARE, Extract
from ml.spec import EngineError, TrainResult, TrainSpec
from topolake.core.vocabulary import BASELINES, CLASSES

if TYPE_CHECKING:  # Spark is imported where it is used: the CLI checks settings without it
    from pyspark.sql import Column, DataFrame, SparkSession

#: What a baseline's run records as its engine.
ENGINE = "spark"
#: The reference's random forest.
RF_TREES, RF_DEPTH = 100, 10
#: The random forest's hyper-parameters a run records (Spark ML's defaults but the two above).
RF_PARAMS = (
    "numTrees",
    "maxDepth",
    "maxBins",
    "impurity",
    "featureSubsetStrategy",
    "subsamplingRate",
    "seed",
)
#: Boosting rounds at most: early stopping on the validation fifth ends it sooner.
XGBOOST_MAX_ROUNDS = 500
#: XGBoost's own defaults, spelt out so that the run records them.
XGBOOST_PARAMS = {"max_depth": 6, "learning_rate": 0.3, "tree_method": "hist"}
#: Distributions a baseline's saved model needs beyond pyspark (pinned in its MLflow model).
MODEL_PACKAGES = {"rf": (), "xgboost": ("xgboost-cpu",)}
#: Probabilities are clipped here in the log loss, as Keras's cross-entropy clips them.
EPSILON = 1e-7

FEATURES = "features"
VALIDATION = "validation"


class BaselineSettingError(EngineError):
    """A setting that does not apply to the baselines: a setting to change."""

    exit_code = 2


@dataclass(frozen=True)
class Baseline:
    """A fitted baseline and what its MLflow run records (`ml.tracking.log_baseline`)."""

    model: Any  # the fitted Spark ML model
    params: dict[str, object]  # the estimator's hyper-parameters, as the run records them
    # history: one entry (rf) or one per boosting round (xgboost); no weights
    result: TrainResult


def refuse_engine(model: str, engine: str) -> None:
    """A baseline trains with Spark ML whatever `--engine` says (its default, tf, goes
    unremarked); naming BigDL for one is a mistake worth stopping before any work."""
    if model in BASELINES and engine == "bigdl":
        raise BaselineSettingError(
            f"--model {model} trains with Spark ML, not BigDL: leave out --engine bigdl."
        )


def validation_fifth(shuffle_key: Column) -> Column:
    """`ml.data.in_validation` as a Spark expression, value for value: Spark's `pmod`, like
    numpy's remainder, is never negative (its `%` takes the dividend's sign)."""
    from pyspark.sql import functions as F

    return F.pmod(shuffle_key, F.lit(VALIDATION_SHARE)) == 0


def in_share(shuffle_key: Column, fraction: float) -> Column:
    """`ml.data.part_rows`' share of the fitted part, `(key // 5) % 1000 < round(fraction *
    1000)` in numpy, as a Spark expression with no division to round: with key = 5000 a + m
    (0 <= m < 5000, Spark's `pmod`), key // 5 is 1000 a + m // 5, so the test is m < 5 times
    the bound."""
    from pyspark.sql import functions as F

    share = VALIDATION_SHARE * QUOTA
    return F.pmod(shuffle_key, F.lit(share)) < VALIDATION_SHARE * round(fraction * QUOTA)


def training_rows(spark: SparkSession, data: Extract, fraction: float = 1.0) -> DataFrame:
    """The events of the validation fifth and of `fraction` of the fitted part (`ml.data.PARTS`)
    as Spark ML reads them: label, the HLF as a vector, whether in the validation fifth."""
    from pyspark.ml.functions import array_to_vector
    from pyspark.sql import functions as F

    rows = spark.read.parquet(*(str(file) for file in data.files("train")))
    key = F.col("shuffle_key")
    return rows.where(validation_fifth(key) | in_share(key, fraction)).select(
        "label",
        array_to_vector("hlf").alias(FEATURES),
        validation_fifth(key).alias(VALIDATION),
    )


def train_baseline(
    spark: SparkSession,
    spec: TrainSpec,
    data: Extract,
    workers: int,
    log: Callable[[str], None] = print,
) -> Baseline:
    """Fit `spec.model` (one of BASELINES) on `spec.fraction` of the training split less its
    validation fifth, in `workers` Spark tasks; its history holds the validation fifth's
    accuracy and log loss."""
    from pyspark.sql import functions as F

    if spec.model not in BASELINES:
        raise EngineError(f"{spec.model!r} is not a baseline: one of {', '.join(BASELINES)}.")
    rows = training_rows(spark, data, spec.fraction).persist()
    try:
        fitted, validation = _part_sizes(rows, data)
        log(
            f"{spec.model}: fitting on {fitted:,} events in {workers} Spark task(s), "
            f"validating on the {validation:,} of the validation fifth"
        )
        if spec.model == "rf":
            started = time.perf_counter()
            model, params = _fit_rf(spec, rows.where(~F.col(VALIDATION)), workers)
            seconds = time.perf_counter() - started
            history = _one_epoch(model, rows)
        else:
            started = time.perf_counter()
            model, params, history = _fit_xgboost(spark, spec, rows, workers)
            seconds = time.perf_counter() - started
    finally:
        rows.unpersist()
    result = TrainResult(
        weights=[],  # the model is Spark ML's, saved as it is
        history=history,
        replicas=workers,
        identical_weights=True,  # one model: the driver's forest, or XGBoost's all-reduced trees
        seconds=seconds,
        samples_per_second=fitted / seconds,  # events fitted on per second of fitting
    )
    kept = result.best_epoch
    log(
        (
            f"rf: {RF_TREES} trees of depth at most {RF_DEPTH}"
            if spec.model == "rf"
            else f"xgboost: {result.epochs_run} boosting rounds of at most {XGBOOST_MAX_ROUNDS} "
            f"(patience {spec.patience}), the first {kept} kept"
        )
        + f", in {seconds:.1f} s; validation accuracy {history['val_accuracy'][kept - 1]:.4f}, "
        f"log loss {history['val_loss'][kept - 1]:.4f}"
    )
    return Baseline(model, params, result)


def _part_sizes(rows: DataFrame, data: Extract) -> tuple[int, int]:
    """(events fitted on, events in the validation fifth), after refusing a training split
    that lacks a class (a baseline learns as many classes as it sees) or a validation fifth."""
    counts = {
        (r[VALIDATION], r["label"]): r["count"]
        for r in rows.groupBy(VALIDATION, "label").count().collect()
    }
    missing = [name for label, name in enumerate(CLASSES) if not counts.get((False, label))]
    if missing:
        raise EngineError(
            f"the training split of {data.path} has no {', '.join(missing)} events to fit on: "
            f"a baseline learns the {len(CLASSES)} classes from it."
        )
    validation = sum(n for (held_out, _), n in counts.items() if held_out)
    if not validation:
        raise EngineError(f"the validation fifth of {data.path} is empty: too few events.")
    return sum(counts.values()) - validation, validation


def _fit_rf(spec: TrainSpec, fitted: DataFrame, workers: int):
    """The reference's forest on `workers` partitions of the fitted part."""
    from pyspark.ml.classification import RandomForestClassifier

    estimator = RandomForestClassifier(
        featuresCol=FEATURES,
        labelCol="label",
        numTrees=RF_TREES,
        maxDepth=RF_DEPTH,
        seed=spec.seed,
    )
    model = estimator.fit(fitted.repartition(workers))
    return model, {name: estimator.getOrDefault(name) for name in RF_PARAMS}


def _one_epoch(model, rows: DataFrame) -> dict[str, list[float]]:
    """A forest is fitted in one go: one "epoch" of accuracy and log loss, on the fitted part
    and on the validation fifth (as Keras names them)."""
    from pyspark.ml.functions import vector_to_array
    from pyspark.sql import functions as F

    label = F.col("label")
    chosen = F.element_at(vector_to_array("probability"), label + 1)
    metrics = (
        model.transform(rows)
        .groupBy(VALIDATION)
        .agg(
            F.avg((F.col("prediction") == label).cast("double")).alias("accuracy"),
            F.avg(-F.log(F.greatest(chosen, F.lit(EPSILON)))).alias("loss"),
        )
        .collect()
    )
    history = {}
    for row in metrics:
        prefix = "val_" if row[VALIDATION] else ""
        history |= {f"{prefix}accuracy": [row["accuracy"]], f"{prefix}loss": [row["loss"]]}
    return history


def _fit_xgboost(spark: SparkSession, spec: TrainSpec, rows: DataFrame, workers: int):
    """XGBoost in `workers` barrier tasks, stopping once the validation fifth's log loss has
    not fallen for `spec.patience` rounds (the model keeps the rounds up to the lowest)."""
    from xgboost.spark import SparkXGBClassifier

    from ml.tf_engine import check_workers

    check_workers(spark, workers)  # a barrier stage needs all its tasks at once
    _quiet_xgboost()
    params = {
        "num_workers": workers,
        "n_estimators": XGBOOST_MAX_ROUNDS,
        "early_stopping_rounds": spec.patience,
        "eval_metric": ["merror", "mlogloss"],  # the last one stops it early
        "random_state": spec.seed,
        **XGBOOST_PARAMS,
    }
    estimator = SparkXGBClassifier(
        features_col=FEATURES,
        label_col="label",
        validation_indicator_col=VALIDATION,
        verbose=False,  # no line per round
        **params,
    )
    model = estimator.fit(rows)
    fitted = model.training_summary.train_objective_history
    held_out = model.training_summary.validation_objective_history
    history = {
        "loss": fitted["mlogloss"],
        "accuracy": [1 - error for error in fitted["merror"]],
        "val_loss": held_out["mlogloss"],
        "val_accuracy": [1 - error for error in held_out["merror"]],
    }
    return model, {**params, "eval_metric": ",".join(params["eval_metric"])}, history


def _quiet_xgboost() -> None:
    """XGBoost's PySpark INFO lines (its parameters, "Finished xgboost training!", "Do the
    inference on the CPUs") would break the console's progress lines: warnings only. The
    level set here reaches its Spark tasks with the job."""
    logging.getLogger("XGBoost-PySpark").setLevel(logging.WARNING)


def predict_test(spark: SparkSession, model, data: Extract) -> tuple[np.ndarray, np.ndarray]:
    """(class probabilities, true labels) of the test split, in the extract's order: its files
    sorted and each file's rows in order, as `ml.evaluate.predict` reads them for a Keras
    model, so that the scores of any two runs on the extract pair event by event."""
    from pyspark.ml.functions import array_to_vector, vector_to_array
    from pyspark.sql import functions as F

    _quiet_xgboost()
    files = data.files("test")
    if not files:
        return np.empty((0, len(CLASSES)), np.float32), np.empty(0, np.int32)
    order = F.create_map(*(F.lit(v) for i, file in enumerate(files) for v in (file.name, i)))
    rows = spark.read.parquet(*(str(file) for file in files)).select(
        order[F.col("_metadata.file_name")].alias("file"),
        F.col("_metadata.row_index").alias("row"),
        "label",
        array_to_vector("hlf").alias(FEATURES),
    )
    scored = (
        model.transform(rows)
        .select("file", "row", "label", vector_to_array("probability").alias("scores"))
        .orderBy("file", "row")
        .collect()
    )
    return (
        np.asarray([r["scores"] for r in scored], np.float32).reshape(-1, len(CLASSES)),
        np.asarray([r["label"] for r in scored], np.int32),
    )
