"""`--epochs` is a maximum: training stops once the validation fifth's loss has not fallen for
`--patience` epochs and keeps the weights of the epoch where it was lowest.

The rule itself is pinned without TensorFlow (fast; BigDL's loop uses it); one tiny Keras run
on a hand-made extract pins that the TF engine validates on the validation fifth, stops and
restores the best epoch (slow: it imports TensorFlow).
"""

from __future__ import annotations

import numpy as np
import pytest

from ml.spec import Patience, TrainSpec, best_epoch
from tests.helpers import write_extract


def epochs_until_stopped(losses: list[float], patience: int) -> int:
    rule = Patience(patience)
    for epoch, loss in enumerate(losses, 1):
        rule.improved(loss)
        if rule.exhausted:
            return epoch
    return len(losses)


def test_patience_stops_after_that_many_epochs_without_a_lower_loss_and_keeps_the_best():
    losses = [1.0, 0.8, 0.9, 0.85, 0.95, 0.7]
    assert epochs_until_stopped(losses, patience=2) == 4  # epochs 3 and 4 did not beat 0.8
    assert best_epoch({"val_loss": losses[:4]}) == 2
    assert epochs_until_stopped(losses, patience=3) == 5
    assert epochs_until_stopped(losses, patience=4) == 6  # 0.7 came in time: no stop
    assert best_epoch({"val_loss": losses}) == 6


def test_an_equal_loss_is_no_improvement_and_the_earlier_epoch_is_kept():
    losses = [1.0, 0.8, 0.8]
    assert epochs_until_stopped(losses, patience=1) == 3
    assert best_epoch({"val_loss": losses}) == 2
    assert best_epoch({"val_loss": [float("nan"), 0.9]}) == 2
    assert best_epoch({"loss": [0.5]}) == 0  # nothing validated


def contrarian_extract(path, seed: int = 0):
    """Training events labelled by the largest of their first three features; in the
    validation fifth (shuffle key 0 mod 5) half are labelled the next class instead, so the
    validation loss falls while the model grows confident up to a probability of 1/2 for
    the rule's class and rises after; the test split follows the rule, so a run validated on
    it would not stop."""
    rng = np.random.default_rng(seed)

    def events(n: int, keys: np.ndarray, contrary: np.ndarray) -> dict:
        hlf = rng.random((n, 14))
        label = np.argmax(hlf[:, :3], axis=1)
        label = np.where(contrary, (label + 1) % 3, label)
        return {
            "content_hash": [f"{i:064x}" for i in range(n)],
            "entry": list(range(n)),
            "label": label,
            "hlf": hlf,
            "shuffle_key": keys,
        }

    keys = rng.permutation(1500)
    validation = keys % 5 == 0
    contrary = validation & (rng.random(1500) < 0.5)
    test_keys = rng.permutation(300) + 10_000
    return write_extract(
        path,
        {
            "train": events(1500, keys, contrary),
            "test": events(300, test_keys, np.zeros(300, bool)),
        },
    )


@pytest.mark.slow
def test_early_stopping_on_the_validation_fifth_restores_the_best_epoch(tmp_path):
    from sklearn.metrics import log_loss

    from ml.evaluate import predict
    from ml.models import build_model
    from ml.tf_engine import train_single

    data = contrarian_extract(tmp_path)
    spec = TrainSpec("hlf", epochs=25, batch_size=32, patience=2)
    result = train_single(spec, data, log=lambda line: None)

    losses = result.history["val_loss"]
    best = result.best_epoch
    assert best >= 2 and result.epochs_run == best + spec.patience < spec.epochs
    assert losses[best - 1] == min(losses) and losses[-1] > losses[best - 1]
    # the weights kept are the best epoch's, not the last's
    model = build_model("hlf", spec.max_particles, spec.architecture, spec.seed)
    model.set_weights(result.weights)
    scores, labels = predict(model, spec, data, "validation")
    assert len(labels) == data.part_events("validation") == 300
    kept = log_loss(labels, scores, labels=range(3))
    assert kept == pytest.approx(losses[best - 1], rel=1e-4)
    assert kept < losses[-1] - 1e-3
