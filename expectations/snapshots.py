"""Which snapshot of each table a validation reads."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from topolake.core.errors import UsageError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


class SnapshotError(UsageError):
    """A snapshot that does not exist, or a table without one."""


def _latest_ancestor(spark: SparkSession, table: str, condition: str = "true") -> int | None:
    """The newest snapshot of the table's current history that meets `condition`."""
    rows = spark.sql(
        f"SELECT snapshot_id FROM {table}.history WHERE is_current_ancestor AND {condition} "
        "ORDER BY made_current_at DESC LIMIT 1"
    ).collect()
    return rows[0].snapshot_id if rows else None


def current_snapshot(spark: SparkSession, table: str) -> int:
    snapshot = _latest_ancestor(spark, table)
    if snapshot is None:
        raise SnapshotError(f"{table} has no snapshot yet: build it first.")
    return snapshot


def snapshot_time(spark: SparkSession, table: str, snapshot_id: int) -> datetime | None:
    rows = spark.sql(
        f"SELECT committed_at FROM {table}.snapshots WHERE snapshot_id = {int(snapshot_id)}"
    ).collect()
    return rows[0].committed_at if rows else None


def snapshot_as_of(spark: SparkSession, table: str, moment: datetime) -> int:
    snapshot = _latest_ancestor(
        spark, table, f"made_current_at <= timestamp'{moment.isoformat(sep=' ')}'"
    )
    if snapshot is None:
        raise SnapshotError(f"{table} has no snapshot at or before {moment}.")
    return snapshot


def parse_snapshot_spec(text: str) -> int | datetime:
    """What a `--snapshot` value names: digits (surrounding blanks allowed) are a snapshot id,
    anything else must be an ISO timestamp."""
    if text.strip().isdigit():
        return int(text)
    try:
        return datetime.fromisoformat(text)
    except ValueError as err:
        raise SnapshotError(
            f"--snapshot {text!r} is neither a snapshot id nor an ISO timestamp."
        ) from err


def resolve(spark: SparkSession, tables: tuple[str, ...], snapshot: str | None) -> dict[str, int]:
    """The snapshot of every table: the current ones, or those of `snapshot`.

    `snapshot` is a snapshot id of one of the tables (the others are read as of its commit
    time) or a timestamp (every table as of then).
    """
    if snapshot is None:
        return {t: current_snapshot(spark, t) for t in tables}
    wanted = parse_snapshot_spec(snapshot)
    if isinstance(wanted, int):
        for owner in tables:
            moment = snapshot_time(spark, owner, wanted)
            if moment is not None:
                return {
                    t: wanted if t == owner else snapshot_as_of(spark, t, moment) for t in tables
                }
        raise SnapshotError(f"snapshot {snapshot} belongs to none of {', '.join(tables)}.")
    return {t: snapshot_as_of(spark, t, wanted) for t in tables}
