"""MLflow runs: what was trained, on which validated snapshot, with what result."""

from __future__ import annotations

import json
import logging
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING

from ml.data import Extract, GoldSnapshot, Scaling
from ml.spec import TrainResult, TrainSpec
from topolake.core.project import source_root
from topolake.core.settings import Settings
from topolake.core.vocabulary import BASELINES

if TYPE_CHECKING:
    from ml.baselines import Baseline

EXPERIMENT = "topolake"
PACKAGES = ("tensorflow", "tf-keras", "pyspark", "numpy", "pyarrow", "mlflow", "topolake")


def git_revision() -> str:
    """The code a run was trained with: git's HEAD in a source checkout. An installed wheel has
    no repository (and the current directory may be some other one), so its version, e.g.
    v0.1.0, stands in."""
    root = source_root()
    if root is not None:
        try:
            return subprocess.run(
                ["git", "rev-parse", "HEAD"],
                cwd=root,
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            pass  # a checkout without git (an unpacked sdist): the version says what it is
    try:
        return f"v{version('topolake')}"
    except PackageNotFoundError:
        return "unknown"


def use_tracking(settings: Settings) -> None:
    import mlflow

    mlflow.set_tracking_uri(settings.tracking_uri)
    if mlflow.get_experiment_by_name(EXPERIMENT) is None:
        artifacts = None if settings.mlflow_uri else (settings.home / "mlartifacts").as_uri()
        mlflow.create_experiment(EXPERIMENT, artifact_location=artifacts)
    mlflow.set_experiment(EXPERIMENT)


def _lineage(gold: GoldSnapshot) -> dict[str, str]:
    """The tags that say what a run learnt from: the gold snapshots, their validation, the
    code."""
    return {
        "topolake.gold_snapshots": json.dumps(gold.snapshots),
        "topolake.validation_id": gold.validation_id or "",
        "topolake.git_revision": git_revision(),
    }


@contextmanager
def training_run(
    settings: Settings,
    spec: TrainSpec,
    params: dict,
    engine: str,
    workers: int,
    extract: Extract,
    tags: dict | None = None,
    packages: tuple[str, ...] = (),
) -> Iterator[str]:
    """An open MLflow training run of `spec` (its id) with what every training run records:
    `params`, the engine, the workers and the events of each part (those fitted on: the
    spec's share); the lineage tags (gold snapshots, validation, git revision) and the versions
    of PACKAGES and `packages`."""
    import mlflow

    use_tracking(settings)
    gold = extract.gold
    with mlflow.start_run(run_name=f"{spec.model}-{engine}-{workers}w") as run:
        mlflow.log_params(
            {
                **params,
                "engine": engine,
                "workers": workers,
                "train_events": extract.part_events("train", spec.fraction),  # fitted on
                "validation_events": extract.part_events("validation"),
                "test_events": extract.events.get("test", 0),
            }
        )
        mlflow.set_tags(
            {
                "topolake.kind": "train",
                **_lineage(gold),
                "topolake.validated": str(gold.validation_id is not None).lower(),
                "topolake.skipped_validation": str(gold.validation_id is None).lower(),
                **{f"version.{p}": version(p) for p in (*PACKAGES, *packages)},
                **(tags or {}),
            }
        )
        yield run.info.run_id


def log_result(result: TrainResult) -> None:
    """In the open run: a metric per epoch (val_* on the validation fifth of the training
    split), the epoch whose weights were kept and how many ran, the time it took."""
    import mlflow

    for metric, values in result.history.items():
        for epoch, value in enumerate(values):
            mlflow.log_metric(metric, value, step=epoch + 1)
    best = result.best_epoch
    mlflow.log_metrics(
        {
            "train_seconds": result.seconds,
            "samples_per_second": result.samples_per_second,
            "epochs_run": result.epochs_run,
            "best_epoch": best,
            **({"best_val_loss": result.history["val_loss"][best - 1]} if best else {}),
        }
    )


def log_training(
    settings: Settings,
    spec: TrainSpec,
    engine: str,
    workers: int,
    extract: Extract,
    result: TrainResult,
    model,
) -> str:
    """One MLflow run of a Keras model: params (`patience` among the spec's), its history,
    lineage tags, the model with its scaling."""
    import mlflow

    params = {k: v for k, v in asdict(spec).items() if k != "architecture"}
    params |= {f"arch_{k}": v for k, v in asdict(spec.architecture).items()}
    tags = {
        "topolake.replicas": result.replicas,
        "topolake.identical_weights": str(result.identical_weights).lower(),
    }
    with training_run(settings, spec, params, engine, workers, extract, tags) as run_id:
        log_result(result)
        with tempfile.TemporaryDirectory() as tmp:
            save_model(Path(tmp), model, extract.scaling, spec)
            mlflow.log_artifacts(tmp, "model")
    return run_id


def log_baseline(
    settings: Settings, spec: TrainSpec, workers: int, extract: Extract, baseline: Baseline
) -> str:
    """One MLflow run of a baseline (`ml.baselines`), recorded as a Keras model's is: its
    hyper-parameters, its history, lineage tags; the Spark ML model in MLflow's Spark flavour
    with the spec and the extract's scaling beside it (the scaling identifies the extract)."""
    import mlflow
    import mlflow.spark

    from ml.baselines import ENGINE, MODEL_PACKAGES

    packages = MODEL_PACKAGES[spec.model]
    params = {"model": spec.model, "fraction": spec.fraction, **baseline.params}
    with training_run(
        settings, spec, params, ENGINE, workers, extract, packages=packages
    ) as run_id:
        log_result(baseline.result)
        with tempfile.TemporaryDirectory() as tmp:
            directory = Path(tmp) / "model"
            # a uv environment has no pip: MLflow warns that it cannot pin one in conda.yaml
            with _quiet("mlflow.utils.environment", logging.ERROR):
                mlflow.spark.save_model(
                    baseline.model,
                    str(directory),
                    pip_requirements=[f"{p}=={version(p)}" for p in ("pyspark", *packages)],
                )
            (directory / "scaling.json").write_text(extract.scaling.to_json())
            (directory / "spec.json").write_text(json.dumps(asdict(spec)))
            mlflow.log_artifacts(str(directory), "model")
    return run_id


def save_model(directory: Path, model, scaling: Scaling, spec: TrainSpec) -> None:
    model.save(directory / "model.keras")
    (directory / "scaling.json").write_text(scaling.to_json())
    (directory / "spec.json").write_text(json.dumps(asdict(spec)))


def load_model(settings: Settings, run_id: str):
    """(model, Scaling, spec dict) of a training run: a Keras model, or a baseline's Spark ML
    pipeline (`ml.baselines`; loading it needs the process's Spark session)."""
    import mlflow

    use_tracking(settings)
    local = Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="model"))
    scaling = Scaling.from_json((local / "scaling.json").read_text())
    spec = json.loads((local / "spec.json").read_text())
    if spec["model"] in BASELINES:
        import mlflow.spark

        with _quiet("mlflow.spark", logging.WARNING):  # that it copies it where Spark reads it
            model = mlflow.spark.load_model(str(local))
    else:
        import tf_keras as keras

        import ml.pooling  # noqa: F401  registers the pfn's ParticleSum layer, which Keras must find

        model = keras.models.load_model(local / "model.keras")
    return model, scaling, spec


@contextmanager
def _quiet(logger: str, level: int) -> Iterator[None]:
    """`logger` at `level` for the block: MLflow's lines about its own bookkeeping would break
    the console's progress lines."""
    log = logging.getLogger(logger)
    before = log.level
    log.setLevel(level)
    try:
        yield
    finally:
        log.setLevel(before)


def _experiment_id(settings: Settings) -> str:
    import mlflow

    use_tracking(settings)
    return mlflow.get_experiment_by_name(EXPERIMENT).experiment_id


def start_tuning(settings: Settings, grid, data: Extract, seed: int, points: int, done: int) -> str:
    """The parent run of one tuning invocation; its points become child runs."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(settings.tracking_uri)
    run = client.create_run(
        _experiment_id(settings),
        run_name=f"tune-{grid.model}",
        tags={
            "topolake.kind": "tune",
            **_lineage(data.gold),
        },
    )
    client.log_param(run.info.run_id, "model", grid.model)
    client.log_param(run.info.run_id, "fraction", grid.fraction)
    client.log_param(run.info.run_id, "seed", seed)
    client.log_param(run.info.run_id, "points", points)
    client.log_param(run.info.run_id, "points_done_before", done)
    return run.info.run_id


def log_tuning_point(
    settings: Settings, parent: str, spec: TrainSpec, point: dict, scores: dict
) -> str:
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    client = MlflowClient(settings.tracking_uri)
    run = client.create_run(
        _experiment_id(settings),
        run_name=f"{spec.model} " + " ".join(f"{k}={v}" for k, v in point.items()),
        tags={"mlflow.parentRunId": parent, "topolake.kind": "tune-point"},
    )
    now = int(time.time() * 1000)
    client.log_batch(
        run.info.run_id,
        params=[Param(k, str(v)) for k, v in point.items()],
        metrics=[Metric(k, float(v), now, 0) for k, v in scores.items()],
    )
    client.set_terminated(run.info.run_id)
    return run.info.run_id


def end_tuning(settings: Settings, parent: str, failed: bool) -> None:
    from mlflow.tracking import MlflowClient

    MlflowClient(settings.tracking_uri).set_terminated(parent, "FAILED" if failed else "FINISHED")
