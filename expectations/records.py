"""What the recorded validations say: the gate other stages (training) ask before using data."""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import SparkSession

from topolake.core.tables import LAYER_TABLES, QUALITY_VALIDATIONS


@dataclass(frozen=True)
class PassedValidation:
    validation_id: str
    layer: str
    snapshots: dict[str, int]  # table -> snapshot id
    validated_at: str


def _passed(spark: SparkSession, layer: str, where: str = "true") -> list[PassedValidation]:
    if not spark.catalog.tableExists(QUALITY_VALIDATIONS):
        return []
    tables = len(LAYER_TABLES[layer])
    rows = spark.sql(f"""
WITH passed AS (
    SELECT validation_id, max(validated_at) AS validated_at,
           map_from_entries(collect_list(struct(table_name, snapshot_id))) AS snapshots
    FROM {QUALITY_VALIDATIONS}
    WHERE layer = '{layer}'
    GROUP BY validation_id
    HAVING bool_and(success) AND count(*) = {tables}
)
SELECT * FROM passed WHERE {where} ORDER BY validated_at DESC""").collect()
    return [
        PassedValidation(r.validation_id, layer, dict(r.snapshots), str(r.validated_at))
        for r in rows
    ]


def latest_passed(spark: SparkSession, layer: str = "gold") -> PassedValidation | None:
    """The newest validation of `layer` in which every table passed."""
    passed = _passed(spark, layer)
    return passed[0] if passed else None


def passed_with(
    spark: SparkSession, table: str, snapshot_id: int, layer: str = "gold"
) -> PassedValidation | None:
    """The newest passing validation of `layer` that validated `table` at `snapshot_id`."""
    passed = _passed(spark, layer, f"snapshots['{table}'] = {int(snapshot_id)}")
    return passed[0] if passed else None
