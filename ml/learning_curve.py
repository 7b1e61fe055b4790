"""Learning curves: test accuracy against the number of training events, per model.

Each point is one training run on a share (`TrainSpec.fraction`) of the fitted part of the
training split, evaluated once on the whole test split; a smaller share is a subset of a
larger one (`ml.data.part_rows`), and every run of a curve sees the same validation fifth and
the same test events, so the points differ by the training events only.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass
from pathlib import Path

from ml.evaluate import Evaluation


@dataclass(frozen=True)
class LearningPoint:
    model: str
    fraction: float  # of the fitted part
    train_events: int
    accuracy: float
    interval: tuple[float, float]  # 95 % bootstrap over the test events
    run_id: str

    @classmethod
    def of(cls, evaluation: Evaluation, fraction: float, train_events: int) -> LearningPoint:
        low, high = evaluation.intervals.get("accuracy", (evaluation.accuracy,) * 2)
        return cls(
            evaluation.model,
            fraction,
            train_events,
            evaluation.accuracy,
            (low, high),
            evaluation.run_id,
        )

    def to_dict(self) -> dict:
        return asdict(self)


def curves(points: list[LearningPoint]) -> dict[str, list[LearningPoint]]:
    """The points of each model, by training events."""
    by_model: dict[str, list[LearningPoint]] = {}
    for point in sorted(points, key=lambda p: (p.model, p.train_events)):
        by_model.setdefault(point.model, []).append(point)
    return by_model


def plot_learning_curve(points: list[LearningPoint], path: Path, title: str = "") -> Path:
    """Test accuracy (with its 95 % interval) against training events, one line per model,
    the training events on a log scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mplhep as hep

    hep.style.use("CMS")
    fig, ax = plt.subplots(figsize=(10, 8))
    for model, line in curves(points).items():
        events = [p.train_events for p in line]
        accuracy = [p.accuracy for p in line]
        errors = [
            [p.accuracy - p.interval[0] for p in line],
            [p.interval[1] - p.accuracy for p in line],
        ]
        ax.errorbar(events, accuracy, yerr=errors, marker="o", capsize=4, label=model)
    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())  # labels overlap on log x
    ax.set(xlabel="Training events", ylabel="Test accuracy (95 % interval)", title=title)
    ax.legend(loc="lower right")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)
    return path


def ordering_from(points: list[LearningPoint], order: tuple[str, ...]) -> int | None:
    """The fewest training events from which `order`'s models rank in that order, each
    accuracy interval wholly below the next, at that share and every larger one measured;
    None if they do not at the largest share."""
    by_fraction: dict[float, dict[str, LearningPoint]] = {}
    for point in points:
        by_fraction.setdefault(point.fraction, {})[point.model] = point
    holding: int | None = None
    for fraction in sorted(by_fraction):
        at = by_fraction[fraction]
        ordered = all(m in at for m in order) and all(
            at[a].interval[1] < at[b].interval[0] for a, b in itertools.pairwise(order)
        )
        if not ordered:
            holding = None
        elif holding is None:
            holding = min(at[m].train_events for m in order)
    return holding
