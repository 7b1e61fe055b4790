"""Bootstrap intervals of the test metrics: how much of a number is the luck of the test sample.

The test events are resampled with replacement `REPLICATES` times (an index matrix, turned
into a count per event and replicate); accuracy and every one-vs-rest AUC are recomputed on
each replicate and the interval is the 2.5th to 97.5th percentile of the replicates. The AUC
of a replicate is the Mann-Whitney rank formula with each event weighted by its count, so the
events are sorted once per class, not once per replicate. Two models scored on the same test
events are compared *paired*: the same replicates for both, and the interval of the
difference. The seed is fixed, so the same scores give the same intervals.

Pure NumPy: no Spark, no TensorFlow (it runs in the fast tests).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from topolake.core.vocabulary import CLASSES

#: 500 replicates of 100,000 events take about 2 s of one core (1000: 3.6 s; measured on the
#: 2-core development machine); an interval's ends then vary from seed to seed by about 3 % of
#: its width (standard deviation over 12 seeds, 10,000 events).
REPLICATES = 500
SEED = 20261124
LEVEL = 0.95
CHUNK = 50  # replicates resampled at once: CHUNK x events counts in memory


def present_classes(labels: np.ndarray) -> list[str]:
    """The classes that have an AUC on these labels: some events, and not all of them."""
    return [c for i, c in enumerate(CLASSES) if 0 < np.sum(labels == i) < len(labels)]


def metric_names(labels: np.ndarray) -> list[str]:
    """The names "accuracy" and "auc_<class>" for every class with an AUC."""
    return ["accuracy", *(f"auc_{c}" for c in present_classes(labels))]


def resampled_counts(
    events: int, replicates: int = REPLICATES, seed: int = SEED
) -> Iterator[np.ndarray]:
    """(replicates in this chunk, events) counts: how often each event is drawn into each
    replicate, from a matrix of indices drawn with replacement. Deterministic in the seed."""
    rng = np.random.default_rng(seed)
    for start in range(0, replicates, CHUNK):
        rows = min(CHUNK, replicates - start)
        index = rng.integers(0, events, size=(rows, events))
        index += np.arange(rows)[:, None] * events  # one bin range per replicate
        counts = np.bincount(index.ravel(), minlength=rows * events)
        # an event drawn more than 255 times into one replicate (of a binomial of mean 1)
        # would be a miracle; uint8 quarters the memory the metrics below stream through
        yield counts.reshape(rows, events).astype(np.uint8)


class _RankAUC:
    """The one-vs-rest AUC of one class for any counts of the events: the share of
    (positive, negative) pairs the score orders right, a tie counting half.

    Sorted once: the negatives by score, and for each positive the number of negatives
    scored below it (`lo`) and not above it (`hi`). A replicate's AUC is then a cumulative
    sum of the negatives' counts read at `lo` and `hi`, weighted by the positives' counts."""

    def __init__(self, score: np.ndarray, positive: np.ndarray):
        negatives = np.flatnonzero(~positive)
        order = np.argsort(score[negatives], kind="stable")
        self.negatives = negatives[order]
        ranked = score[self.negatives]
        self.positives = np.flatnonzero(positive)
        self.lo = np.searchsorted(ranked, score[self.positives], side="left")
        self.hi = np.searchsorted(ranked, score[self.positives], side="right")
        self.tied = bool(np.any(self.lo != self.hi))

    def __call__(self, counts: np.ndarray) -> np.ndarray:
        below = np.zeros((len(counts), len(self.negatives) + 1), np.int32)
        np.cumsum(np.take(counts, self.negatives, axis=1), axis=1, out=below[:, 1:])
        low = np.take(below, self.lo, axis=1).astype(np.float64)
        twice = 2 * low if not self.tied else low + np.take(below, self.hi, axis=1)
        weights = np.take(counts, self.positives, axis=1)
        right = np.einsum("ij,ij->i", weights, twice) / 2
        pairs = weights.sum(axis=1, dtype=np.int64) * below[:, -1].astype(np.int64)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(pairs > 0, right / np.where(pairs > 0, pairs, 1), np.nan)


def replicates(
    labels: np.ndarray,
    *scores: np.ndarray,
    count: int = REPLICATES,
    seed: int = SEED,
) -> list[dict[str, np.ndarray]]:
    """Per score matrix (events x classes), metric name -> its value on every replicate;
    every score matrix is resampled with the same replicates (paired)."""
    labels = np.asarray(labels)
    names = metric_names(labels)
    classes = [CLASSES.index(n.removeprefix("auc_")) for n in names[1:]]
    correct = [np.flatnonzero(np.argmax(s, axis=1) == labels) for s in scores]
    aucs = [[_RankAUC(s[:, k], labels == k) for k in classes] for s in scores]
    values: list[dict[str, list[np.ndarray]]] = [{n: [] for n in names} for _ in scores]
    for counts in resampled_counts(len(labels), count, seed):
        for model, (hits, per_class) in enumerate(zip(correct, aucs, strict=True)):
            hit = np.take(counts, hits, axis=1).sum(axis=1, dtype=np.int64)
            values[model]["accuracy"].append(hit / len(labels))
            for name, auc in zip(names[1:], per_class, strict=True):
                values[model][name].append(auc(counts))
    return [{n: np.concatenate(v) for n, v in model.items()} for model in values]


def interval(values: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """The central `level` percentile interval of bootstrap replicates."""
    tail = 100 * (1 - level) / 2
    low, high = np.nanpercentile(values, [tail, 100 - tail])
    return float(low), float(high)


def intervals(
    scores: np.ndarray, labels: np.ndarray, count: int = REPLICATES, seed: int = SEED
) -> dict[str, tuple[float, float]]:
    """Metric name ("accuracy", "auc_<class>") -> its 95 % bootstrap interval."""
    (values,) = replicates(labels, scores, count=count, seed=seed)
    return {name: interval(v) for name, v in values.items()}


def paired_differences(
    labels: np.ndarray,
    first: np.ndarray,
    second: np.ndarray,
    count: int = REPLICATES,
    seed: int = SEED,
) -> dict[str, tuple[float, float]]:
    """Metric name -> the 95 % interval of (first - second) over the same resampled events:
    a difference is significant when its interval excludes 0."""
    a, b = replicates(labels, first, second, count=count, seed=seed)
    return {name: interval(a[name] - b[name]) for name in a}


def excludes_zero(bounds: Sequence[float]) -> bool:
    low, high = bounds
    return low > 0 or high < 0


def overlap(a: Sequence[float], b: Sequence[float]) -> bool:
    """Whether two intervals overlap (all one can say of two models tested on different
    events; overlapping intervals do not prove the models equal)."""
    return a[0] <= b[1] and b[0] <= a[1]
