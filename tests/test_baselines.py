"""The reference's baselines on Spark: rf and xgboost train through the CLI on the validated
lakehouse, are evaluated as the Keras models are, pair with each other event by event, and
reload from MLflow to the scores they had; they see the Keras models' validation fifth."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from ml.data import part_rows
from tests.helpers import run_topolake
from topolake.core.settings import load_settings

#: Published accuracies (ml.evaluate.REFERENCE), shown beside ours in `topolake evaluate`.
REFERENCE_ACCURACY = {"rf": "0.9078", "xgboost": "0.9205"}


def test_a_baseline_with_bigdl_is_refused_before_spark_starts(tmp_path):
    home = tmp_path / "lakehouse"
    refused = run_topolake(
        "train", "--model", "xgboost", "--engine", "bigdl", home=home, cwd=tmp_path
    )
    assert refused.returncode == 2
    assert "--model xgboost trains with Spark ML, not BigDL" in refused.stderr
    assert not home.exists()  # no Spark configuration written, no session started


@pytest.mark.slow
def test_spark_picks_the_parts_part_rows_picks(spark):
    from pyspark.sql import functions as F

    from ml.baselines import in_share, validation_fifth

    int64 = np.iinfo(np.int64)
    keys = [
        *range(-5010, 5010, 7),
        int64.min,
        int64.max,
        *np.random.default_rng(5).integers(int64.min, int64.max, 2000, dtype=np.int64).tolist(),
    ]
    frame = spark.createDataFrame([(k,) for k in keys], "shuffle_key long")
    record = pa.RecordBatch.from_pydict({"shuffle_key": pa.array(keys, pa.int64())})
    key = F.col("shuffle_key")
    fractions = (1.0, 0.4, 0.05, 0.0015)
    picked = frame.select(
        validation_fifth(key), *(~validation_fifth(key) & in_share(key, f) for f in fractions)
    ).collect()
    columns = list(zip(*picked, strict=True))
    assert list(columns[0]) == part_rows("validation")(record).tolist()
    for fraction, column in zip(fractions, columns[1:], strict=True):
        assert list(column) == part_rows("train", fraction)(record).tolist(), fraction


@pytest.fixture(scope="module")
def evaluated(topolake_home, validated_gold) -> dict[str, dict]:
    """Each baseline trained and evaluated by the CLI: model -> its outputs and evaluation."""
    current, work = validated_gold
    assert current().returncode == 0
    outcomes = {}
    for model, workers in (("rf", "1"), ("xgboost", "2")):
        trained = run_topolake(
            "train", "--model", model, "--workers", workers, home=topolake_home, cwd=work
        )
        assert trained.returncode == 0, trained.stderr[-3000:]
        run_id = re.search(r"MLflow run (\w+)", trained.stderr)[1]
        evaluated = run_topolake("evaluate", run_id, home=topolake_home, cwd=work)
        assert evaluated.returncode == 0, evaluated.stderr[-3000:]
        out = Path(topolake_home) / "evaluations" / run_id
        outcomes[model] = {
            "run_id": run_id,
            "trained": trained,
            "evaluated": evaluated,
            "evaluation": json.loads((out / "evaluation.json").read_text()),
        }
    return outcomes


@pytest.mark.slow
@pytest.mark.parametrize("model", ["rf", "xgboost"])
def test_a_baseline_trains_on_spark_and_is_evaluated_like_a_keras_model(
    topolake_home, evaluated, model
):
    import mlflow

    outcome = evaluated[model]
    trained, shown = outcome["trained"], outcome["evaluated"]
    assert f"training {model} with Spark ML x " in trained.stderr
    assert "validating on the" in trained.stderr and "validation accuracy" in trained.stderr
    for noise in ("XGBoost-PySpark", "Failed to resolve installed pip", "does not point to"):
        assert noise not in trained.stderr + shown.stderr
    assert f"{model} (spark)" in shown.stderr and REFERENCE_ACCURACY[model] in shown.stdout

    evaluation = outcome["evaluation"]
    assert evaluation["model"] == model and evaluation["engine"] == "spark"
    low, high = evaluation["intervals"]["accuracy"]
    assert low <= evaluation["accuracy"] <= high
    assert set(evaluation["auc"]) == {"qcd", "ttbar", "wjets"}
    assert np.asarray(evaluation["confusion"]).sum() == evaluation["events"]

    mlflow.set_tracking_uri(load_settings(home=topolake_home).tracking_uri)
    run = mlflow.get_run(outcome["run_id"])
    params, metrics, tags = run.data.params, run.data.metrics, run.data.tags
    assert params["engine"] == "spark" and params["model"] == model
    assert int(params["validation_events"]) > 0 and int(params["train_events"]) > 0
    assert tags["topolake.kind"] == "train" and tags["topolake.validation_id"]
    assert metrics["test_accuracy"] == pytest.approx(evaluation["accuracy"])
    assert 0 < metrics["val_accuracy"] <= 1 and metrics["best_epoch"] >= 1
    artifacts = {
        a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id, "evaluation")
    }
    assert {f"evaluation/{p}.png" for p in ("roc", "selectors", "confusion")} <= artifacts
    if model == "rf":
        assert params["numTrees"] == "100" and params["maxDepth"] == "10"
        assert metrics["epochs_run"] == 1
    else:
        assert params["num_workers"] == "2" and params["early_stopping_rounds"] == "3"
        assert metrics["epochs_run"] >= metrics["best_epoch"]
        assert tags["version.xgboost-cpu"]
        assert "evaluation/loss.png" in artifacts  # its boosting rounds


@pytest.mark.slow
def test_the_baselines_scores_pair_event_by_event(evaluated):
    from ml.evaluate import Evaluation, differences

    first, second = (Evaluation(**evaluated[m]["evaluation"]) for m in ("rf", "xgboost"))
    assert first.test_set == second.test_set
    rows = differences([first, second])
    assert rows and all(r["method"] == "paired bootstrap, same test events" for r in rows)


@pytest.mark.slow
@pytest.mark.parametrize("model", ["rf", "xgboost"])
def test_a_baseline_reloaded_from_mlflow_scores_as_it_did(spark, topolake_home, evaluated, model):
    import mlflow
    from pyspark.sql import functions as F

    from ml.baselines import VALIDATION, predict_test, training_rows
    from ml.data import GoldSnapshot, batches, extract
    from ml.tracking import load_model

    settings = load_settings(home=topolake_home)
    run_id = evaluated[model]["run_id"]
    reloaded, scaling, saved = load_model(settings, run_id)
    assert saved["model"] == model
    run = mlflow.get_run(run_id)
    gold = GoldSnapshot(
        json.loads(run.data.tags["topolake.gold_snapshots"]),
        run.data.tags["topolake.validation_id"],
    )
    data = extract(spark, settings, gold)
    assert scaling == data.scaling

    # the evaluation's scores, in the order the Keras models' are read in
    scores, labels = predict_test(spark, reloaded, data)
    kept = np.load(evaluated[model]["evaluation"]["scores"])
    np.testing.assert_array_equal(scores, kept["scores"])
    read = np.concatenate([y for _, y in batches(data.files("test"), 64, 1, None, ("hlf",))])
    np.testing.assert_array_equal(labels, read)
    np.testing.assert_array_equal(kept["labels"], read)

    # the validation fifth's accuracy at training time, from the reloaded model
    rows = training_rows(spark, data).where(F.col(VALIDATION))
    assert rows.count() == data.part_events("validation")
    scored = reloaded.transform(rows)
    accuracy = scored.select(F.avg((F.col("prediction") == F.col("label")).cast("double")))
    history = mlflow.MlflowClient().get_metric_history(run_id, "val_accuracy")
    at_training = {m.step: m.value for m in history}[int(run.data.metrics["best_epoch"])]
    assert accuracy.first()[0] == pytest.approx(at_training, abs=1e-6)
