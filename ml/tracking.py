"""MLflow runs: what was trained, on which validated snapshot, with what result."""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
from dataclasses import asdict
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from ml.data import Extract, Scaling
from ml.spec import TrainResult, TrainSpec
from topolake.core.project import source_root
from topolake.core.settings import Settings

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


def log_training(
    settings: Settings,
    spec: TrainSpec,
    engine: str,
    workers: int,
    extract: Extract,
    result: TrainResult,
    model,
) -> str:
    """One MLflow run: params (`patience` among the spec's), a metric per epoch (val_* on the
    validation fifth of the training split), the epoch whose weights were kept and how many
    ran, lineage tags, the model with its scaling."""
    import mlflow

    use_tracking(settings)
    gold = extract.gold
    with mlflow.start_run(run_name=f"{spec.model}-{engine}-{workers}w") as run:
        params = {k: v for k, v in asdict(spec).items() if k != "architecture"}
        params |= {f"arch_{k}": v for k, v in asdict(spec.architecture).items()}
        mlflow.log_params(
            {
                **params,
                "engine": engine,
                "workers": workers,
                "train_events": extract.part_events("train"),  # fitted on
                "validation_events": extract.part_events("validation"),
                "test_events": extract.events.get("test", 0),
            }
        )
        mlflow.set_tags(
            {
                "topolake.kind": "train",
                "topolake.gold_snapshots": json.dumps(gold.snapshots),
                "topolake.validation_id": gold.validation_id or "",
                "topolake.validated": str(gold.validation_id is not None).lower(),
                "topolake.skipped_validation": str(gold.validation_id is None).lower(),
                "topolake.git_revision": git_revision(),
                "topolake.replicas": result.replicas,
                "topolake.identical_weights": str(result.identical_weights).lower(),
                **{f"version.{p}": version(p) for p in PACKAGES},
            }
        )
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
        with tempfile.TemporaryDirectory() as tmp:
            save_model(Path(tmp), model, extract.scaling, spec)
            mlflow.log_artifacts(tmp, "model")
        return run.info.run_id


def save_model(directory: Path, model, scaling: Scaling, spec: TrainSpec) -> None:
    model.save(directory / "model.keras")
    (directory / "scaling.json").write_text(scaling.to_json())
    (directory / "spec.json").write_text(json.dumps(asdict(spec)))


def load_model(settings: Settings, run_id: str):
    """(Keras model, Scaling, spec dict) of a training run."""
    import mlflow
    import tf_keras as keras

    use_tracking(settings)
    local = Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="model"))
    model = keras.models.load_model(local / "model.keras")
    scaling = Scaling.from_json((local / "scaling.json").read_text())
    return model, scaling, json.loads((local / "spec.json").read_text())


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
            "topolake.gold_snapshots": json.dumps(data.gold.snapshots),
            "topolake.validation_id": data.gold.validation_id or "",
            "topolake.git_revision": git_revision(),
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
