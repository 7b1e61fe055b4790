"""Training from validated gold snapshots: every model trains, two TF workers synchronise,
an unvalidated snapshot is refused, a model reloaded from MLflow predicts the same."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from expectations.snapshots import current_snapshot
from ml.bigdl_engine import BIGDL_MODELS
from ml.data import extract, pin_gold
from ml.models import build_model
from ml.spec import INPUTS, TrainSpec
from ml.tf_engine import train_distributed, train_single
from ml.tracking import load_model, log_training
from tests.helpers import run_topolake
from topolake.core.settings import load_settings

pytestmark = pytest.mark.slow
SMALL = {"epochs": 1, "batch_size": 32, "max_particles": 64}
#: What TensorFlow writes as it starts on a machine without a GPU (only with --verbose)
TF_START_UP_NOTICES = ("oneDNN custom operations", "Could not find cuda drivers", "cuInit")


@pytest.fixture
def gold_extract(spark, topolake_home, validated_gold):
    current, _ = validated_gold
    assert current().returncode == 0
    gold = pin_gold(spark, None, skip_validation=False)
    assert gold.validation_id is not None
    return extract(spark, load_settings(home=topolake_home), gold)


def test_the_extract_pads_after_the_real_particles_and_scales_on_the_training_split(
    gold_extract,
):
    from ml.data import batches

    (particles, hlf), labels = next(
        batches(gold_extract.files("train"), 64, 801, gold_extract.scaling, ("particles", "hlf"))
    )
    real = np.any(particles != 0, axis=2)
    # padded to the batch's longest sequence (at most 801)
    assert particles.shape == (64, real.sum(axis=1).max(), 19) and hlf.shape == (64, 14)
    # padding rows are exactly zero and only after the real particles
    assert all(np.all(row[: row.sum()]) and not np.any(row[row.sum() :]) for row in real)
    assert hlf.min() >= 0 and hlf.max() <= 1
    assert set(np.unique(labels)) <= {0, 1, 2}

    (front,), _ = next(
        batches(
            gold_extract.files("train"),
            64,
            801,
            gold_extract.scaling,
            ("particles",),
            padding="pre",
        )
    )
    real_front = np.any(front != 0, axis=2)
    assert front.shape == (64, 801, 19)  # BigDL's fixed length
    np.testing.assert_array_equal(real_front.sum(axis=1), real.sum(axis=1))
    assert all(np.all(row[len(row) - row.sum() :]) for row in real_front)


@pytest.mark.parametrize("model", sorted(INPUTS))
def test_each_model_trains_in_one_process(gold_extract, model):
    result = train_single(TrainSpec(model, **SMALL), gold_extract, log=lambda line: None)
    assert np.isfinite(result.history["loss"]).all() and "val_accuracy" in result.history


@pytest.mark.parametrize("model", ["hlf", "inclusive"])
def test_two_tf_workers_are_in_sync_and_end_with_identical_weights(spark, gold_extract, model):
    # up to 3 epochs, patience 1: each rank's EarlyStopping must stop at the same epoch
    spec = TrainSpec(model, **{**SMALL, "epochs": 3, "patience": 1})
    result = train_distributed(spark, spec, gold_extract, workers=2)
    assert result.replicas == 2
    assert result.identical_weights  # the same epoch's weights restored on both ranks
    assert 1 <= result.best_epoch <= result.epochs_run <= 3


@pytest.mark.parametrize("model", BIGDL_MODELS)
def test_a_bigdl_model_and_its_tf_keras_twin_compute_the_same_scores(spark, gold_extract, model):
    from ml.bigdl_engine import (
        bigdl_spec,
        bigdl_to_keras,
        build_bigdl,
        keras_to_bigdl,
        start_bigdl,
    )
    from ml.data import batches

    start_bigdl(spark)
    spec = bigdl_spec(TrainSpec(model, **SMALL))
    twin = build_model(model, spec.max_particles, spec.architecture, seed=7)
    bigdl_model = build_bigdl(model, spec.max_particles, spec)
    bigdl_model.set_weights(keras_to_bigdl(twin.get_weights(), model))
    for ours, back in zip(
        twin.get_weights(), bigdl_to_keras(bigdl_model.get_weights(), model), strict=True
    ):
        np.testing.assert_array_equal(ours, back)
    x, _ = next(
        batches(
            gold_extract.files("test"),
            32,
            spec.max_particles,
            gold_extract.scaling,
            INPUTS[model],
            padding="pre",
        )
    )
    x = list(x) if len(x) > 1 else x[0]
    expected = twin.predict(x, verbose=0)
    np.testing.assert_allclose(
        np.asarray(bigdl_model.predict(x, distributed=False)), expected, atol=1e-5
    )


@pytest.mark.parametrize("model", ["hlf", "inclusive"])
def test_bigdl_trains_distributed_over_every_executor_core(spark, gold_extract, model):
    from ml.bigdl_engine import train_bigdl

    spec = TrainSpec(model, epochs=2, batch_size=32, max_particles=64)
    result = train_bigdl(spark, spec, gold_extract, workers=2, log=lambda line: None)
    assert result.replicas == spark.sparkContext.defaultParallelism == 2
    assert len(result.history["val_accuracy"]) == 2
    assert np.isfinite(result.history["loss"]).all()
    assert result.history["loss"][1] < result.history["loss"][0]


def test_a_bigdl_run_is_tracked_and_evaluated_like_a_tf_run(topolake_home, validated_gold):
    current, work = validated_gold
    assert current().returncode == 0
    trained = run_topolake(
        "train",
        "--model",
        "hlf",
        "--engine",
        "bigdl",
        "--workers",
        "2",
        "--epochs",
        "2",
        home=topolake_home,
        cwd=work,
    )
    assert trained.returncode == 0, trained.stderr[-2000:]
    assert "epoch 2/2" in trained.stderr and "(2 replicas in sync)" in trained.stderr
    assert "2 of at most 2 epochs ran (no early stop, patience 3)" in trained.stderr
    evaluated = run_topolake("evaluate", home=topolake_home, cwd=work)
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    assert "hlf (bigdl)" in evaluated.stderr and "0.9156" in evaluated.stdout  # the reference
    assert "in brackets: 95 % intervals, a bootstrap over the" in evaluated.stderr

    import mlflow

    mlflow.set_tracking_uri(load_settings(home=topolake_home).tracking_uri)
    (run,) = mlflow.search_runs(
        experiment_names=["topolake"], output_format="list", filter_string="params.engine = 'bigdl'"
    )
    assert {f"test_auc_{c}" for c in ("qcd", "ttbar", "wjets")} <= set(run.data.metrics)
    assert run.data.params["patience"] == "3" and int(run.data.params["validation_events"]) > 0
    assert run.data.metrics["epochs_run"] == 2 and run.data.metrics["best_epoch"] in (1, 2)
    artifacts = {
        a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id, "evaluation")
    }
    assert {f"evaluation/{p}.png" for p in ("roc", "selectors", "confusion", "loss")} <= artifacts
    evaluation = json.loads(
        (Path(topolake_home) / "evaluations" / run.info.run_id / "evaluation.json").read_text()
    )
    confusion = np.asarray(evaluation["confusion"])
    assert confusion.sum() == evaluation["events"]
    assert run.data.metrics["test_accuracy"] == pytest.approx(np.trace(confusion) / confusion.sum())
    # every number with its 95 % bootstrap interval: in the JSON, in MLflow, in the table
    low, high = evaluation["intervals"]["accuracy"]
    assert low <= evaluation["accuracy"] <= high
    assert run.data.metrics["test_accuracy_ci_low"] == pytest.approx(low)
    assert run.data.metrics["test_accuracy_ci_high"] == pytest.approx(high)
    assert f"{evaluation['accuracy']:.4f} [{low:.4f}, {high:.4f}]" in evaluated.stdout
    for name, value in evaluation["auc"].items():
        low, high = evaluation["intervals"][f"auc_{name}"]
        assert low <= value <= high
        assert run.data.metrics[f"test_auc_{name}_ci_high"] == pytest.approx(high)
    assert evaluation["bootstrap"]["replicates"] > 0 and evaluation["test_set"].endswith("/test")

    missing = run_topolake("evaluate", "no-such-run", home=topolake_home, cwd=work)
    assert missing.returncode == 2 and "no MLflow run no-such-run" in missing.stderr


def test_a_model_reloaded_from_mlflow_predicts_the_same(topolake_home, gold_extract):
    from ml.data import batches

    settings = load_settings(home=topolake_home)
    spec = TrainSpec("inclusive", **SMALL)
    result = train_single(spec, gold_extract, log=lambda line: None)
    model = build_model(spec.model, spec.max_particles)
    model.set_weights(result.weights)
    run_id = log_training(settings, spec, "tf", 1, gold_extract, result, model)

    reloaded, scaling, saved_spec = load_model(settings, run_id)
    assert scaling == gold_extract.scaling and saved_spec["model"] == "inclusive"
    x, _ = next(batches(gold_extract.files("test"), 16, 64, scaling, INPUTS["inclusive"]))
    np.testing.assert_array_equal(
        model.predict(list(x), verbose=0), reloaded.predict(list(x), verbose=0)
    )


def test_train_refuses_an_unvalidated_snapshot_and_bad_settings_before_any_work(
    spark, topolake_home, validated_gold
):
    current, work = validated_gold
    assert current().returncode == 0
    validated = current_snapshot(spark, "lake.gold.training_set")
    spark.sql("INSERT INTO lake.gold.training_set SELECT * FROM lake.gold.training_set LIMIT 1")
    unvalidated = current_snapshot(spark, "lake.gold.training_set")
    try:
        refused = run_topolake(
            "train", "--snapshot", str(unvalidated), home=topolake_home, cwd=work
        )
        assert refused.returncode == 2
        assert f"gold snapshot {unvalidated} has no passing validation" in refused.stderr
        assert "topolake validate --layer gold" in refused.stderr

        too_many = run_topolake("train", "--workers", "3", home=topolake_home, cwd=work)
        assert too_many.returncode == 2 and "exceeds the 2 task slots" in too_many.stderr

        skipped = run_topolake(
            "train",
            "--snapshot",
            str(unvalidated),
            "--skip-validation",
            "--epochs",
            "1",
            "--max-particles",
            "32",
            home=topolake_home,
            cwd=work,
        )
        assert skipped.returncode == 0, skipped.stderr
        assert "WITHOUT a passing validation" in skipped.stderr
        for notice in TF_START_UP_NOTICES:  # it imported TensorFlow; no --verbose
            assert notice not in skipped.stderr
        import mlflow

        mlflow.set_tracking_uri(load_settings(home=topolake_home).tracking_uri)
        (run,) = mlflow.search_runs(
            experiment_names=["topolake"],
            output_format="list",
            filter_string="tags.`topolake.skipped_validation` = 'true'",
        )
        assert (
            json.loads(run.data.tags["topolake.gold_snapshots"])["lake.gold.training_set"]
            == unvalidated
        )
    finally:
        spark.sql(f"CALL lake.system.rollback_to_snapshot('gold.training_set', {validated})")


def test_a_process_that_loaded_tensorflow_can_still_read_over_xrootd():
    import subprocess
    import sys

    code = "import ml, tensorflow; import XRootD.client; print('ok')"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-500:]
    for notice in TF_START_UP_NOTICES:  # written before TF reads its level: held by `ml`
        assert notice not in done.stderr
