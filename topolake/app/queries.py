"""The reads behind `topolake sql` and `topolake snapshots`: rows out of the lakehouse."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from topolake.core.errors import UsageError
from topolake.core.tables import qualify

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

#: A table view on a terminal shows at most this many rows unless told otherwise.
TABLE_ROWS = 1000

SNAPSHOT_COLUMNS = (
    "committed_at",
    "snapshot_id",
    "operation",
    "added_records",
    "total_records",
    "current_ancestor",
)


@dataclass
class QueryRows:
    columns: list[str]
    rows: Iterable[tuple]
    shown: int = 0
    total: int | None = None  # set when the rows were capped: how many there are in all


def _first_line(err: Exception) -> str:
    return str(err).strip().splitlines()[0]


def _streamed(rows: Iterator) -> Iterator[tuple]:
    """Rows as they come; a query that fails while they are read ends in one sentence."""
    from pyspark.errors import PySparkException

    try:
        for row in rows:
            yield tuple(row)
    except PySparkException as err:
        raise UsageError(_first_line(err)) from err


def query_rows(spark: SparkSession, query: str, limit: int | None, for_a_person: bool) -> QueryRows:
    """The rows of `query`: all of them unless `limit` says otherwise (0: no limit), except for
    a view for a person, which shows `TABLE_ROWS` by default and says how many there are in
    all. Exports stream (`toLocalIterator`) rather than collect everything in the driver."""
    from pyspark.errors import PySparkException

    try:
        frame = spark.sql(query)
        columns = frame.columns
        cap = limit if limit is not None else (TABLE_ROWS if for_a_person else 0)
        if not for_a_person:
            capped = frame.limit(cap) if cap else frame
            return QueryRows(columns, _streamed(capped.toLocalIterator()))
        rows = [tuple(r) for r in (frame.limit(cap + 1) if cap else frame).collect()]
        if cap and len(rows) > cap:
            return QueryRows(columns, rows[:cap], cap, frame.count())
        return QueryRows(columns, rows, len(rows))
    except PySparkException as err:
        raise UsageError(_first_line(err)) from err


def snapshot_rows(spark: SparkSession, table: str) -> list[tuple]:
    """A table's snapshots, oldest first, with whether each is an ancestor of the current one."""
    from pyspark.errors import PySparkException

    name = qualify(table)
    try:
        rows = spark.sql(f"""
SELECT s.committed_at, s.snapshot_id, s.operation,
       s.summary['added-records'] AS added_records, s.summary['total-records'] AS total_records,
       coalesce(h.is_current_ancestor, false) AS current_ancestor
FROM {name}.snapshots s LEFT JOIN {name}.history h ON h.snapshot_id = s.snapshot_id
ORDER BY s.committed_at""").collect()
    except PySparkException as err:
        raise UsageError(f"Table {name} cannot be read: {_first_line(err)}") from err
    return [tuple(r) for r in rows]
