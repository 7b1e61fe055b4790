"""One training, whichever the engine: train on an extract, check it synchronised, track it.
The baselines (`ml.baselines`) train with Spark ML instead of an engine."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ml.baselines import refuse_engine, train_baseline
from ml.data import Extract
from ml.models import build_model
from ml.spec import EngineError, TrainResult, TrainSpec
from ml.tf_engine import train_distributed, train_single
from ml.tracking import log_baseline, log_training
from topolake.core.settings import Settings
from topolake.core.vocabulary import BASELINES, ENGINES


@dataclass(frozen=True)
class TrainedRun:
    run_id: str
    spec: TrainSpec  # as trained (the BigDL engine trains unmasked, front-padded models)
    result: TrainResult


def train_and_track(
    spark,
    settings: Settings,
    spec: TrainSpec,
    engine: str,
    workers: int,
    data: Extract,
    log: Callable[[str], None] = print,
) -> TrainedRun:
    """Train `spec` with `engine` on `workers` Spark tasks and log the run to MLflow (a
    baseline with Spark ML, its engine recorded as "spark")."""
    refuse_engine(spec.model, engine)
    if spec.model in BASELINES:
        baseline = train_baseline(spark, spec, data, workers, log)
        run_id = log_baseline(settings, spec, workers, data, baseline)
        return TrainedRun(run_id, spec, baseline.result)
    if engine == "bigdl":
        from ml.bigdl_engine import bigdl_spec, train_bigdl

        spec = bigdl_spec(spec)
        result = train_bigdl(spark, spec, data, workers, log)
    elif engine == "tf":
        if workers == 1:
            result = train_single(spec, data, log)
        else:
            result = train_distributed(spark, spec, data, workers)
    else:
        raise EngineError(f"unknown engine {engine!r}: choose one of {', '.join(ENGINES)}.")
    if not result.identical_weights:
        raise EngineError("the workers ended with different weights: training did not synchronise.")
    trained = build_model(spec.model, spec.max_particles, spec.architecture, spec.seed)
    trained.set_weights(result.weights)
    run_id = log_training(settings, spec, engine, workers, data, result, trained)
    return TrainedRun(run_id, spec, result)
