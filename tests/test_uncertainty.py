"""Bootstrap intervals of accuracy and the AUCs, and paired comparisons of two models (fast)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from ml.evaluate import metrics
from ml.uncertainty import (
    excludes_zero,
    intervals,
    overlap,
    paired_differences,
    replicates,
    resampled_counts,
)
from topolake.core.vocabulary import CLASSES


def classifier(events: int, skill: float = 1.5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(scores, labels) of a softmax classifier of the three classes that is right more often
    the larger `skill`; scores rounded so that some tie."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, events)
    logits = rng.normal(size=(events, 3)) + skill * np.eye(3)[labels]
    scores = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return np.round(scores, 3).astype(np.float32), labels


def width(bounds: tuple[float, float]) -> float:
    return bounds[1] - bounds[0]


def test_each_interval_contains_its_point_estimate_and_shrinks_with_more_events():
    small, large = classifier(1_000), classifier(16_000, seed=1)
    found = {}
    for name, (scores, labels) in {"small": small, "large": large}.items():
        accuracy, auc, _ = metrics(scores, labels)
        bounds = intervals(scores, labels, count=200)
        assert set(bounds) == {"accuracy", *(f"auc_{c}" for c in CLASSES)}
        point = {"accuracy": accuracy, **{f"auc_{c}": v for c, v in auc.items()}}
        for metric, (low, high) in bounds.items():
            assert low < point[metric] < high, metric
        found[name] = bounds
    for metric in found["small"]:  # 16 times the events: about a quarter of the width
        assert width(found["large"][metric]) < 0.45 * width(found["small"][metric]), metric


def test_a_replicate_is_the_metric_of_the_resampled_events_and_the_seed_fixes_them():
    scores, labels = classifier(2_000)
    (values,) = replicates(labels, scores, count=3, seed=7)
    counts = next(resampled_counts(len(labels), 3, seed=7))
    assert counts.shape == (3, 2_000) and (counts.sum(axis=1) == 2_000).all()
    for r in range(3):  # the rank formula with counts = sklearn on the drawn events
        drawn = np.repeat(np.arange(len(labels)), counts[r])
        assert values["accuracy"][r] == pytest.approx(
            np.mean(np.argmax(scores[drawn], axis=1) == labels[drawn])
        )
        for i, c in enumerate(CLASSES):
            expected = roc_auc_score(labels[drawn] == i, scores[drawn, i])
            assert values[f"auc_{c}"][r] == pytest.approx(expected, abs=1e-12)
    again = intervals(scores, labels, count=50, seed=7)
    assert intervals(scores, labels, count=50, seed=7) == again
    assert intervals(scores, labels, count=50, seed=8) != again


def test_a_paired_difference_is_significant_only_when_its_interval_excludes_zero():
    scores, labels = classifier(5_000)
    same = paired_differences(labels, scores, scores.copy(), count=200)
    assert all(bounds == (0.0, 0.0) and not excludes_zero(bounds) for bounds in same.values())

    rng = np.random.default_rng(3)
    worse = scores + rng.normal(scale=0.3, size=scores.shape).astype(np.float32)
    better_by = paired_differences(labels, scores, worse, count=200)
    assert all(excludes_zero(bounds) and bounds[0] > 0 for bounds in better_by.values())

    # a handful of changed events: too small a difference to tell from the sample's luck
    nudged = scores.copy()
    nudged[:5] = nudged[:5, ::-1]
    tiny = paired_differences(labels, scores, nudged, count=200)
    assert not excludes_zero(tiny["accuracy"])
    # pairing cancels the luck both models share: the difference's interval is far narrower
    # than either model's own, which overlap
    alone = intervals(scores, labels, count=200)["accuracy"]
    nudged_alone = intervals(nudged, labels, count=200)["accuracy"]
    assert overlap(alone, nudged_alone)
    assert width(tiny["accuracy"]) < 0.2 * width(alone)


def test_a_class_without_events_gets_no_interval():
    scores, labels = classifier(600)
    two = labels != 2
    assert set(intervals(scores[two], labels[two], count=20)) == {
        "accuracy",
        "auc_qcd",
        "auc_ttbar",
    }
