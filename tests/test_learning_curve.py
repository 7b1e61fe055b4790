"""Learning-curve points: grouped per model, plotted, and the ordering read off them (fast)."""

from __future__ import annotations

from ml.learning_curve import LearningPoint, curves, ordering_from, plot_learning_curve

ORDER = ("hlf", "particles", "inclusive")


def point(model: str, fraction: float, accuracy: float, half_width: float = 0.01):
    events = int(10_000 * fraction)
    interval = (accuracy - half_width, accuracy + half_width)
    return LearningPoint(model, fraction, events, accuracy, interval, f"{model}-{fraction}")


def test_each_models_points_are_sorted_by_training_events():
    points = [point("hlf", 1.0, 0.9), point("hlf", 0.05, 0.8), point("pfn", 0.4, 0.85)]
    lines = curves(points)
    assert [p.fraction for p in lines["hlf"]] == [0.05, 1.0] and list(lines) == ["hlf", "pfn"]


def test_the_ordering_holds_from_the_first_share_where_it_holds_at_every_larger_one():
    points = [
        *(point(m, 0.05, a) for m, a in zip(ORDER, (0.80, 0.79, 0.81), strict=True)),  # not ordered
        *(point(m, 0.15, a) for m, a in zip(ORDER, (0.80, 0.83, 0.86), strict=True)),
        *(point(m, 0.40, a) for m, a in zip(ORDER, (0.81, 0.84, 0.88), strict=True)),
        *(point(m, 1.00, a) for m, a in zip(ORDER, (0.82, 0.86, 0.90), strict=True)),
    ]
    assert ordering_from(points, ORDER) == 1_500


def test_overlapping_intervals_at_the_largest_share_mean_no_ordering():
    points = [
        *(point(m, 0.40, a) for m, a in zip(ORDER, (0.80, 0.83, 0.86), strict=True)),
        *(point(m, 1.00, a, 0.02) for m, a in zip(ORDER, (0.82, 0.84, 0.88), strict=True)),
    ]
    assert ordering_from(points, ORDER) is None
    assert ordering_from(points[:3], ORDER) == 4_000  # a missing model at 1.0: only 0.4 counts


def test_the_plot_is_a_png(tmp_path):
    points = [point(m, f, 0.8 + f / 10) for m in ORDER for f in (0.05, 1.0)]
    path = plot_learning_curve(points, tmp_path / "curve.png", "test")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
