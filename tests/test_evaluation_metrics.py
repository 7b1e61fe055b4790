"""The evaluation's numbers and its comparison table, on hand-made scores (fast, no model)."""

from __future__ import annotations

import numpy as np
import pytest

from ml.evaluate import COMPARISON_COLUMNS, REFERENCE, Evaluation, comparison_rows, metrics
from topolake.core.vocabulary import CLASSES


def test_perfect_scores_give_accuracy_and_every_auc_one_and_a_diagonal_confusion():
    labels = np.array([0, 1, 2, 2, 1, 0])
    scores = np.eye(3)[labels] * 0.8 + 0.1  # rows sum to one
    accuracy, auc, confusion = metrics(scores, labels)
    assert accuracy == 1.0
    assert auc == dict.fromkeys(CLASSES, 1.0)
    assert confusion == [[2, 0, 0], [0, 2, 0], [0, 0, 2]]


def test_the_confusion_matrix_has_true_classes_as_rows():
    labels = np.array([0, 0, 1, 2])
    predicted = np.array([0, 1, 1, 1])  # one qcd event taken for ttbar, the wjets one too
    accuracy, _, confusion = metrics(np.eye(3)[predicted], labels)
    assert accuracy == 0.5
    assert confusion == [[1, 1, 0], [0, 1, 0], [0, 1, 0]]


def test_a_class_absent_from_the_labels_gets_no_auc():
    labels = np.array([0, 1, 0, 1])
    scores = np.array([[0.7, 0.2, 0.1], [0.4, 0.5, 0.1], [0.6, 0.3, 0.1], [0.1, 0.8, 0.1]])
    _, auc, confusion = metrics(scores, labels)
    assert set(auc) == {"qcd", "ttbar"}
    assert auc["qcd"] == pytest.approx(1.0) and auc["ttbar"] == pytest.approx(1.0)
    assert confusion[2] == [0, 0, 0]


def test_comparison_rows_put_each_run_beside_the_reference_and_dash_missing_aucs():
    runs = [
        Evaluation(
            "r1",
            "hlf",
            "tf",
            12345,
            0.91234,
            {"qcd": 0.98765, "ttbar": 0.5, "wjets": 1.0},
            [[0] * 3] * 3,
        ),
        Evaluation("r2", "particles", "bigdl", 10, 0.5, {"ttbar": 0.75}, [[0] * 3] * 3),
    ]
    hlf, particles = comparison_rows(runs)
    assert len(hlf) == len(particles) == len(COMPARISON_COLUMNS) == 11
    assert hlf == (
        "hlf",
        "tf",
        "12,345",
        "0.9123",
        "0.9877",
        "0.5000",
        "1.0000",
        "0.9156",
        "0.9874",
        "0.9855",
        "0.9813",
    )
    reference = f"{REFERENCE['particles']['accuracy']:.4f}"
    assert particles == (
        "particles",
        "bigdl",
        "10",
        "0.5000",
        "-",
        "0.7500",
        "-",
        reference,
        "0.9907",
        "-",
        "-",
    )


def test_the_table_shows_each_number_with_its_interval_where_there_is_one():
    run = Evaluation(
        "r1",
        "hlf",
        "tf",
        100,
        0.91234,
        {"qcd": 0.98765},
        [[0] * 3] * 3,
        intervals={"accuracy": [0.9, 0.925], "auc_qcd": [0.97, 0.995]},
    )
    (row,) = comparison_rows([run])
    assert row[3:7] == ("0.9123 [0.9000, 0.9250]", "0.9877 [0.9700, 0.9950]", "-", "-")


def scored(tmp_path, name: str, scores, labels, test_set: str) -> Evaluation:
    """An evaluation of `scores` with its intervals and its scores file, as evaluate_run
    leaves one."""
    from ml.uncertainty import intervals

    accuracy, auc, confusion = metrics(scores, labels)
    path = tmp_path / f"{name}.npz"
    np.savez_compressed(path, scores=scores, labels=labels)
    bounds = intervals(scores, labels, count=100)
    return Evaluation(
        name, name, "tf", len(labels), accuracy, auc, confusion,
        intervals={k: list(v) for k, v in bounds.items()}, test_set=test_set, scores=str(path),
    )  # fmt: skip


def test_models_on_the_same_test_events_are_compared_paired_else_by_their_intervals(tmp_path):
    from ml.evaluate import differences

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 3000)
    good = np.eye(3)[labels] * 2 + rng.normal(size=(3000, 3))
    worse = good + rng.normal(scale=1.5, size=(3000, 3))
    hlf = scored(tmp_path, "hlf", good, labels, "extract-1/test")
    inclusive = scored(tmp_path, "inclusive", worse, labels, "extract-1/test")
    rows = differences([hlf, inclusive])
    assert [r["metric"] for r in rows] == ["accuracy", "auc_qcd", "auc_ttbar", "auc_wjets"]
    for row in rows:
        assert row["method"] == "paired bootstrap, same test events"
        low, high = row["interval"]
        assert 0 < low < row["difference"] < high and row["verdict"] == "significant"

    elsewhere = scored(tmp_path, "particles", worse, labels, "extract-2/test")
    (accuracy, *_) = differences([hlf, elsewhere])
    assert accuracy["interval"] is None and accuracy["method"].startswith("different test")
    assert accuracy["verdict"] == "intervals do not overlap"
