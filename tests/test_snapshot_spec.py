"""How a `--snapshot` value is read: a snapshot id or an ISO timestamp, else refused (fast)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from expectations.snapshots import SnapshotError, parse_snapshot_spec, resolve


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("5012366364035100137", 5012366364035100137),
        ("0", 0),
        (" 42\n", 42),  # blanks around an id are allowed
    ],
)
def test_digits_are_a_snapshot_id(text, expected):
    parsed = parse_snapshot_spec(text)
    assert parsed == expected and type(parsed) is int


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-01", datetime(2024, 5, 1)),
        ("2024-05-01T12:30:05", datetime(2024, 5, 1, 12, 30, 5)),
        ("2024-05-01 12:30:05.250", datetime(2024, 5, 1, 12, 30, 5, 250000)),
        ("2024-05-01T12:30:05+00:00", datetime(2024, 5, 1, 12, 30, 5, tzinfo=UTC)),
    ],
)
def test_anything_else_is_read_as_an_iso_timestamp(text, expected):
    assert parse_snapshot_spec(text) == expected


def test_eight_digits_are_an_id_not_a_basic_format_date():
    assert parse_snapshot_spec("20240501") == 20240501


@pytest.mark.parametrize("text", ["latest", "", "-5", "12abc", "2024-13-01", "yesterday noon"])
def test_neither_an_id_nor_a_timestamp_is_refused_in_one_sentence(text):
    with pytest.raises(SnapshotError) as refused:
        parse_snapshot_spec(text)
    assert str(refused.value) == (
        f"--snapshot {text!r} is neither a snapshot id nor an ISO timestamp."
    )


def test_resolve_refuses_a_bad_value_before_asking_spark_anything():
    with pytest.raises(SnapshotError, match="'last week' is neither a snapshot id"):
        resolve(None, ("lake.gold.training_set",), "last week")  # no session: nothing is read
