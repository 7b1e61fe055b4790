"""Evaluation of a training run on the test split of its own gold snapshot.

Scores stream through the model batch by batch (the same padding and scaling as in training,
read from the run), or through a baseline's Spark ML model in a Spark job; the metrics are
the reference's: accuracy, one-vs-rest ROC and AUC per class, the confusion matrix, and the
tt̄ and W+jets selector curves (signal efficiency against false-positive rate), accuracy and
AUCs with a 95 % bootstrap interval over the test events (`ml.uncertainty`). Plots and
numbers are logged back to the run; the scores are kept beside them (`scores.npz`) so that two
runs on the same test events can be compared paired.

This is the one place a model meets the test split: training stops early, and the grid
search chooses, on the validation fifth of the training split.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from ml.data import Extract, GoldSnapshot, batches, extract
from ml.spec import INPUTS, TrainSpec, best_epoch
from ml.tracking import EXPERIMENT, load_model, use_tracking
from ml.uncertainty import (
    LEVEL,
    REPLICATES,
    SEED,
    excludes_zero,
    intervals,
    overlap,
    paired_differences,
    present_classes,
)
from topolake.core.errors import UsageError
from topolake.core.settings import Settings
from topolake.core.vocabulary import BASELINES, CLASSES

TITLES = {"qcd": "QCD", "ttbar": r"$t\bar{t}$", "wjets": "W+jets"}

# PHYSICS.md, "Reference results" (3.43 M train / 0.86 M test events)
REFERENCE = {
    "hlf": {"accuracy": 0.9156, "auc": {"qcd": 0.9874, "ttbar": 0.9855, "wjets": 0.9813}},
    "particles": {"accuracy": 0.9394, "auc": {"qcd": 0.9907}},
    "inclusive": {"accuracy": 0.9564, "auc": {"qcd": 0.9950, "ttbar": 0.9969, "wjets": 0.9947}},
    # the reference's Spark ML baselines on the HLF (no QCD AUC is published)
    "rf": {"accuracy": 0.9078, "auc": {"ttbar": 0.9824, "wjets": 0.9769}},
    "xgboost": {"accuracy": 0.9205, "auc": {"ttbar": 0.9865, "wjets": 0.9830}},
}


class EvaluationError(UsageError):
    """The run cannot be evaluated; the message says why."""


@dataclass
class Evaluation:
    run_id: str
    model: str
    engine: str
    events: int
    accuracy: float
    auc: dict[str, float]
    confusion: list[list[int]]  # rows: true class, columns: predicted class
    plots: dict[str, str] = field(default_factory=dict)  # name -> PNG path
    # "accuracy", "auc_<class>" -> [low, high]: the 95 % bootstrap interval over test events
    intervals: dict[str, list[float]] = field(default_factory=dict)
    bootstrap: dict[str, float] = field(default_factory=dict)  # replicates, seed, level
    test_set: str = ""  # which test events: the extract's key (the same events, same order)
    scores: str = ""  # scores.npz: the scores and labels, for paired comparisons

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    def value(self, name: str) -> float:
        """A metric by its `ml.uncertainty` name: "accuracy" or "auc_<class>"."""
        return self.accuracy if name == "accuracy" else self.auc[name.removeprefix("auc_")]

    def metric_names(self) -> list[str]:
        return ["accuracy", *(f"auc_{c}" for c in CLASSES if c in self.auc)]


def latest_training_run(settings: Settings) -> str:
    """The newest finished training run (tuning runs are not training runs)."""
    import mlflow

    use_tracking(settings)
    runs = mlflow.search_runs(
        experiment_names=[EXPERIMENT],
        filter_string="tags.`topolake.kind` = 'train' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
        output_format="list",
    )
    if not runs:
        raise EvaluationError("no finished training run: run `topolake train` first.")
    return runs[0].info.run_id


def predict(model, spec: TrainSpec, data: Extract, part: str = "test"):
    """(class probabilities, true labels) over a part of the extract (`ml.data.PARTS`), in
    the extract's order (the same events in the same order for every run on it).

    A masked model reads the tf.data batches it trained on, unbucketed (in order), each
    padded to its own longest sequence, through one function traced once for any width
    (`predict_on_batch` would trace one per width); a model of fixed length (BigDL's, or one
    saved before per-batch padding) reads NumPy batches of that length."""
    files, where = data.part(part)
    if not data.part_events(part):
        raise EvaluationError(f"the {part} part of {data.path} is empty.")
    if spec.architecture.masked and not fixed_length(model):
        scores, labels = _predict_any_width(model, spec, data, files, where)
    else:
        scores, labels = [], []
        for x, y in batches(
            files,
            PREDICT_BATCH,
            spec.max_particles,
            data.scaling,
            INPUTS[spec.model],
            padding=spec.architecture.padding,
            where=where,
            fixed_width=True,
        ):
            scores.append(model.predict_on_batch(list(x) if len(x) > 1 else x[0]))
            labels.append(y)
    return np.concatenate(scores), np.concatenate(labels)


def _predict_any_width(model, spec: TrainSpec, data: Extract, files, where):
    import tensorflow as tf

    from ml.tf_engine import tf_dataset

    batched = replace(spec, batch_size=PREDICT_BATCH)
    dataset = tf_dataset(files, batched, data.scaling, where=where, repeat=False, buckets=False)
    infer = tf.function(
        lambda x: model(x, training=False), input_signature=[dataset.element_spec[0]]
    )
    scores, labels = [], []
    for x, y in dataset:
        scores.append(infer(x).numpy())
        labels.append(y.numpy())
    return scores, labels


def fixed_length(model) -> bool:
    """Whether a Keras model takes a fixed number of particles (one saved before batches were
    padded to their own longest sequence), rather than any."""
    return any(len(i.shape) == 3 and i.shape[1] is not None for i in model.inputs)


#: Events scored per batch.
PREDICT_BATCH = 1024


def metrics(scores: np.ndarray, labels: np.ndarray) -> tuple[float, dict, list[list[int]]]:
    from sklearn.metrics import confusion_matrix, roc_auc_score

    accuracy = float(np.mean(np.argmax(scores, axis=1) == labels))
    auc = {
        name: float(roc_auc_score(labels == CLASSES.index(name), scores[:, CLASSES.index(name)]))
        for name in present_classes(labels)
    }
    confusion = confusion_matrix(labels, np.argmax(scores, axis=1), labels=range(len(CLASSES)))
    return accuracy, auc, confusion.tolist()


def plot(
    scores, labels, evaluation: Evaluation, history: dict, out: Path, steps: str = "Epoch"
) -> dict[str, str]:
    """roc.png, selectors.png, confusion.png and loss.png (if there is a `history`, by `steps`:
    epochs, or XGBoost's boosting rounds) under `out`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mplhep as hep
    from sklearn.metrics import roc_curve

    hep.style.use("CMS")
    out.mkdir(parents=True, exist_ok=True)
    title = f"{evaluation.model} ({evaluation.engine}), {evaluation.events:,} test events"
    paths = {}

    curves = {
        name: roc_curve(labels == i, scores[:, i])[:2]
        for i, name in enumerate(CLASSES)
        if name in evaluation.auc
    }
    fig, ax = plt.subplots(figsize=(9, 8))
    for name, (fpr, tpr) in curves.items():
        ax.plot(fpr, tpr, label=f"{TITLES[name]} (AUC {evaluation.auc[name]:.4f})")
    ax.plot([0, 1], [0, 1], "k:", lw=1)
    ax.set(xlabel="False-positive rate", ylabel="True-positive rate", title=title)
    ax.legend(loc="lower right")
    paths["roc"] = _save(fig, out / "roc.png")

    fig, ax = plt.subplots(figsize=(9, 8))
    for name in ("ttbar", "wjets"):
        if name in curves:
            fpr, tpr = curves[name]
            ax.plot(fpr, tpr, label=f"{TITLES[name]} selector")
    ax.set_xscale("log")
    ax.set(
        xlim=(1e-4, 1),
        ylim=(0, 1.02),
        xlabel="False-positive rate",
        ylabel="Signal efficiency",
        title="Selectors, one class against the rest",
    )
    ax.legend(loc="lower right")
    paths["selectors"] = _save(fig, out / "selectors.png")

    confusion = np.asarray(evaluation.confusion, dtype=float)
    shares = confusion / np.maximum(confusion.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(8, 7))
    ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for (i, j), share in np.ndenumerate(shares):
        ax.text(
            j,
            i,
            f"{share:.3f}\n({int(confusion[i, j])})",
            ha="center",
            va="center",
            color="white" if share > 0.5 else "black",
            fontsize=14,
        )
    ticks = [TITLES[c] for c in CLASSES]
    ax.set(
        xticks=range(3),
        yticks=range(3),
        xticklabels=ticks,
        yticklabels=ticks,
        xlabel="Predicted class",
        ylabel="True class",
        title=f"Accuracy {evaluation.accuracy:.4f}",
    )
    paths["confusion"] = _save(fig, out / "confusion.png")

    if history.get("loss"):
        fig, ax = plt.subplots(figsize=(9, 7))
        epochs = range(1, len(history["loss"]) + 1)
        labels_of = (("loss", "training"), ("val_loss", "validation fifth of the training split"))
        for key, label in labels_of:
            if history.get(key):
                ax.plot(epochs, history[key], marker="o", label=label)
        if best := best_epoch(history):
            ax.axvline(
                best, color="gray", ls=":", label=f"best {steps.lower()} ({best}): model kept"
            )
        ax.set(xlabel=steps, ylabel="Cross-entropy loss", title=title)
        ax.legend()
        paths["loss"] = _save(fig, out / "loss.png")
    return paths


def _save(fig, path: Path) -> str:
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)
    return str(path)


def history_of(run_id: str) -> dict[str, list[float]]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    return {
        key: [m.value for m in sorted(client.get_metric_history(run_id, key), key=lambda m: m.step)]
        for key in ("loss", "val_loss", "accuracy", "val_accuracy")
    }


#: (class probabilities, true labels) of the test split in the extract's order, the run's
#: history and what its steps are
Scored = tuple[np.ndarray, np.ndarray, dict[str, list[float]], str]


def _score_keras(spark, model, spec: TrainSpec, data: Extract, run_id: str) -> Scored:
    return *predict(model, spec, data), history_of(run_id), "Epoch"


def _score_baseline(spark, model, spec: TrainSpec, data: Extract, run_id: str) -> Scored:
    """A Spark ML model scores in a Spark job. A forest is fitted in one go: it has no loss
    curve to draw; XGBoost's boosting rounds have one."""
    from ml.baselines import predict_test

    scores, labels = predict_test(spark, model, data)
    if not len(labels):
        raise EvaluationError(f"the test part of {data.path} is empty.")
    history = history_of(run_id) if spec.model == "xgboost" else {}
    return scores, labels, history, "Boosting round"


def evaluate_run(
    spark, settings: Settings, run_id: str | None = None, out: Path | None = None
) -> Evaluation:
    """Evaluate a training run (default: the latest) on its test split; log the results."""
    import mlflow

    run_id = run_id or latest_training_run(settings)
    use_tracking(settings)
    try:
        run = mlflow.get_run(run_id)
    except mlflow.exceptions.MlflowException as err:
        raise EvaluationError(f"no MLflow run {run_id}.") from err
    if run.data.tags.get("topolake.kind") != "train":
        raise EvaluationError(f"MLflow run {run_id} is not a training run.")
    model, scaling, saved = load_model(settings, run_id)
    spec = TrainSpec.from_dict(saved)
    gold = GoldSnapshot(
        json.loads(run.data.tags["topolake.gold_snapshots"]),
        run.data.tags.get("topolake.validation_id") or None,
    )
    data = extract(spark, settings, gold)
    if data.scaling != scaling:
        raise EvaluationError(f"the extract at {data.path} no longer matches run {run_id}.")
    score = _score_baseline if spec.model in BASELINES else _score_keras
    scores, labels, history, steps = score(spark, model, spec, data, run_id)
    accuracy, auc, confusion = metrics(scores, labels)
    out = out or settings.home / "evaluations" / run_id
    evaluation = Evaluation(
        run_id,
        spec.model,
        run.data.params.get("engine", "?"),
        len(labels),
        accuracy,
        auc,
        confusion,
        intervals={k: list(v) for k, v in intervals(scores, labels).items()},
        bootstrap={"replicates": REPLICATES, "seed": SEED, "level": LEVEL},
        test_set=f"{data.gold.key}/test",
        scores=str(out / "scores.npz"),
    )
    evaluation.plots = plot(scores, labels, evaluation, history, out, steps)
    np.savez_compressed(out / "scores.npz", scores=scores.astype(np.float32), labels=labels)
    (out / "evaluation.json").write_text(evaluation.to_json())
    with mlflow.start_run(run_id=run_id):
        values = {f"test_{name}": evaluation.value(name) for name in evaluation.metric_names()}
        bounds = {
            f"test_{name}_ci_{end}": bound
            for name, (low, high) in evaluation.intervals.items()
            for end, bound in (("low", low), ("high", high))
        }
        mlflow.log_metrics({**values, **bounds})
        mlflow.log_artifacts(str(out), "evaluation")
    return evaluation


def with_interval(evaluation: Evaluation, name: str) -> str:
    """A metric, and its 95 % interval where the evaluation has one: 0.9123 [0.9050, 0.9190]."""
    text = f"{evaluation.value(name):.4f}"
    if name in evaluation.intervals:
        low, high = evaluation.intervals[name]
        text += f" [{low:.4f}, {high:.4f}]"
    return text


def comparison_rows(evaluations: list[Evaluation]) -> list[tuple[str, ...]]:
    """Rows of (model, engine, events, accuracy, AUC per class, each with its 95 % interval)
    beside the reference's."""
    rows = []
    for e in evaluations:
        reference = REFERENCE.get(e.model, {"auc": {}})  # a model beyond the paper: none
        rows.append(
            (
                e.model,
                e.engine,
                f"{e.events:,}",
                with_interval(e, "accuracy"),
                *(with_interval(e, f"auc_{c}") if c in e.auc else "-" for c in CLASSES),
                f"{reference['accuracy']:.4f}" if "accuracy" in reference else "-",
                *(f"{reference['auc'][c]:.4f}" if c in reference["auc"] else "-" for c in CLASSES),
            )
        )
    return rows


COMPARISON_COLUMNS = (
    "model",
    "engine",
    "test events",
    "accuracy",
    *(f"AUC {c}" for c in CLASSES),
    "reference accuracy",
    *(f"reference AUC {c}" for c in CLASSES),
)


def _paired_scores(a: Evaluation, b: Evaluation) -> tuple[np.ndarray, ...] | None:
    """(labels, a's scores, b's scores) if both runs scored the same test events, in the same
    order (the same extract's test split, and the labels agree event by event); else None."""
    if not (a.test_set and a.test_set == b.test_set and a.scores and b.scores):
        return None
    try:
        first, second = np.load(a.scores), np.load(b.scores)
    except OSError:
        return None
    if not np.array_equal(first["labels"], second["labels"]):
        return None
    return first["labels"], first["scores"], second["scores"]


def differences(evaluations: list[Evaluation]) -> list[dict]:
    """For each pair of evaluations and each metric both have: the difference and whether it
    is significant. On the same test events, a paired bootstrap (the same resampled events
    for both models): significant when the 95 % interval of the difference excludes 0. On
    different events, all that can be said is whether the two intervals overlap."""
    rows = []
    for a, b in itertools.combinations(evaluations, 2):
        paired = _paired_scores(a, b)
        bounds = paired_differences(*paired) if paired else {}
        for name in (n for n in a.metric_names() if n in b.metric_names()):
            row = {
                "metric": name,
                "first": f"{a.model} ({a.engine})",
                "second": f"{b.model} ({b.engine})",
                "difference": a.value(name) - b.value(name),
                "interval": bounds.get(name),
            }
            if name in bounds:
                row["method"] = "paired bootstrap, same test events"
                row["verdict"] = "significant" if excludes_zero(bounds[name]) else "not significant"
            elif name in a.intervals and name in b.intervals:
                row["method"] = "different test events: the two intervals"
                row["verdict"] = (
                    "intervals overlap"
                    if overlap(a.intervals[name], b.intervals[name])
                    else "intervals do not overlap"
                )
            else:
                row["method"], row["verdict"] = "no intervals", "-"
            rows.append(row)
    return rows
