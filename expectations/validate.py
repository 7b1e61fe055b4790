"""Run the quality gate of a layer on pinned table snapshots and record what it found.

Each table has a GX checkpoint (expectations/gx/checkpoints) that validates the table's check
view (expectations.checks) and updates the Data Docs. The results land in GX's validation
store under $TOPOLAKE_HOME/gx and, one row per table snapshot, in lake.quality.validations:
that table is what training asks before it uses a gold snapshot.

Every expectation has a GX severity. ``critical`` ones are invariants (types, identity,
finiteness, definitional bounds, the selection cuts): one failing fails the gate. ``warning``
ones are assumptions about the producer of the files (a detector's acceptance, a lepton's own
track in its cone): they are reported and recorded, and the gate passes with warnings.
"""

from __future__ import annotations

import json
import math
import os
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from pyspark.sql import DataFrame, SparkSession

from expectations import snapshots
from expectations.checks import CHECK_VIEWS
from topolake.core.project import dbt_project_dir, gx_context_dir
from topolake.core.settings import Settings
from topolake.core.tables import LAYER_TABLES, QUALITY_VALIDATIONS

#: Detector acceptance of the CMS card (Delphes): tracker and calorimeters. The card accepts
#: tracks with |eta| < 2.5 at generation; reconstructed ones reach slightly beyond (2.52 in the
#: shared Delphes file).
TRACKER_ETA_MAX = 2.6
CALORIMETER_ETA_MAX = 5.0
CLASS_BALANCE_TOLERANCE = 0.02
SPLIT_TOLERANCE = 0.02
EXAMPLES = 3


#: GX severities that fail a gate; the others (warning, info) are reported only.
BLOCKING_SEVERITIES = ("critical",)


@dataclass
class Failure:
    expectation: str
    columns: str
    summary: str
    examples: list[Any] = field(default_factory=list)
    unexpected_percent: float = 100.0
    severity: str = "critical"

    @property
    def blocking(self) -> bool:
        return self.severity in BLOCKING_SEVERITIES

    def sentence(self) -> str:
        examples = f", e.g. {self.examples[:EXAMPLES]}" if self.examples else ""
        return f"{self.expectation} on {self.columns}: {self.summary}{examples}"


@dataclass
class TableValidation:
    table: str
    snapshot_id: int
    suite: str
    evaluated: int
    #: failed expectations, critical ones and warnings
    failed: list[Failure]

    @property
    def failures(self) -> list[Failure]:
        """The failed critical expectations: any of them fails the gate."""
        return [f for f in self.failed if f.blocking]

    @property
    def warnings(self) -> list[Failure]:
        """The failed producer assumptions: reported, the gate still passes."""
        return [f for f in self.failed if not f.blocking]

    @property
    def success(self) -> bool:
        return not self.failures


@dataclass
class LayerValidation:
    validation_id: str
    layer: str
    tables: list[TableValidation]
    data_docs: Path
    validated_at: datetime

    @property
    def success(self) -> bool:
        return all(t.success for t in self.tables)

    def snapshots(self) -> dict[str, int]:
        return {t.table: t.snapshot_id for t in self.tables}


def gx_name(table: str) -> str:
    """lake.gold.hlf_features -> gold_hlf_features: the suite and checkpoint names."""
    return "_".join(table.split(".")[-2:])


def data_docs_index(settings: Settings) -> Path:
    return settings.home / "gx" / "data_docs" / "local_site" / "index.html"


def open_context(settings: Settings):
    """The project's GX file context, storing results and Data Docs under TOPOLAKE_HOME.

    The context itself (expectations/gx, in site-packages when installed) is only read:
    great_expectations.yml points the validation results store and the Data Docs site at
    TOPOLAKE_GX_RESULTS, and GX scaffolds nothing (no uncommitted/) into a context that has
    its great_expectations.yml.
    """
    import great_expectations as gx

    os.environ["TOPOLAKE_GX_RESULTS"] = str(settings.home / "gx")
    return gx.get_context(mode="file", context_root_dir=str(gx_context_dir()))


def dbt_vars() -> dict[str, Any]:
    """The dbt project's vars: the cuts the suites check are those the models apply."""
    return yaml.safe_load((dbt_project_dir() / "dbt_project.yml").read_text())["vars"]


def expectation_parameters(view: DataFrame, table: str) -> dict[str, float]:
    cuts = dbt_vars()
    parameters = {
        "lepton_pt_min": float(cuts["lepton_pt_min"]),
        "isolation_max": float(cuts["isolation_max"]),
        "tracker_eta_max": TRACKER_ETA_MAX,
        "calorimeter_eta_max": CALORIMETER_ETA_MAX,
    }
    if table.endswith("training_set"):
        events = max(view.count(), 1)
        share = 1 / 3
        train = float(cuts["train_percent"]) / 100
        # a hash split of n events scatters by sqrt(p(1-p)/n): small samples get 3 sigma
        spread = max(SPLIT_TOLERANCE, 3 * math.sqrt(train * (1 - train) / events))
        parameters |= {
            "class_fraction_min": share - CLASS_BALANCE_TOLERANCE,
            "class_fraction_max": share + CLASS_BALANCE_TOLERANCE,
            "train_fraction_min": train - spread,
            "train_fraction_max": train + spread,
        }
    return parameters


def read_snapshot(spark: SparkSession, table: str, snapshot_id: int) -> DataFrame:
    return spark.read.option("snapshot-id", snapshot_id).table(table)


def failures_of(result) -> list[Failure]:
    failures = []
    for r in result.results:
        if r.success:
            continue
        config = r.expectation_config
        kwargs = config.kwargs
        columns = (
            kwargs.get("column")
            or ", ".join(kwargs.get("column_list") or [])
            or ", ".join(c for c in (kwargs.get("column_A"), kwargs.get("column_B")) if c)
            or "the table"
        )
        severity = str(getattr(config.severity, "value", config.severity) or "critical")
        info = r.exception_info or {}
        details = r.result or {}
        if info.get("raised_exception"):
            message = str(info.get("exception_message", "")).strip().splitlines()
            failures.append(
                Failure(config.type, columns, f"could not run ({message[0]})", severity="critical")
            )
        elif "unexpected_count" in details:
            count = details["unexpected_count"]
            percent = float(details.get("unexpected_percent") or 0.0)
            total = details.get("element_count")
            failures.append(
                Failure(
                    config.type,
                    columns,
                    f"{count} of {total} rows unexpected ({percent:.2g} %)",
                    list(details.get("partial_unexpected_list") or []),
                    percent,
                    severity,
                )
            )
        else:
            observed = details.get("observed_value")
            failures.append(
                Failure(config.type, columns, f"observed {observed!r}", severity=severity)
            )
    return sorted(failures, key=lambda f: -f.unexpected_percent)


def validate_frame(
    context, table: str, snapshot_id: int, frame: DataFrame, validation_id: str
) -> TableValidation:
    """Validate one table snapshot's rows (read from the table, or a copy of them)."""
    from great_expectations.core.run_identifier import RunIdentifier

    view = CHECK_VIEWS[".".join(table.split(".")[-2:])](frame).cache()
    try:
        checkpoint = context.checkpoints.get(gx_name(table))
        result = checkpoint.run(
            batch_parameters={"dataframe": view},
            expectation_parameters=expectation_parameters(view, table),
            run_id=RunIdentifier(run_name=f"{table}@{snapshot_id} ({validation_id})"),
        )
    finally:
        view.unpersist()
    (validation,) = result.run_results.values()
    return TableValidation(
        table=table,
        snapshot_id=snapshot_id,
        suite=gx_name(table),
        evaluated=len(validation.results),
        failed=failures_of(validation),
    )


def validate_layer(
    spark: SparkSession, settings: Settings, layer: str, snapshot: str | None = None
) -> LayerValidation:
    """Validate every table of `layer` at `snapshot` (default: current) and record it."""
    tables = LAYER_TABLES[layer]
    pinned = snapshots.resolve(spark, tables, snapshot)
    context = open_context(settings)
    validation_id = uuid.uuid4().hex
    results = [
        validate_frame(
            context, table, pinned[table], read_snapshot(spark, table, pinned[table]), validation_id
        )
        for table in tables
    ]
    validation = LayerValidation(
        validation_id, layer, results, data_docs_index(settings), datetime.now()
    )
    record(spark, validation)
    return validation


def record(spark: SparkSession, validation: LayerValidation) -> None:
    spark.sql(f"CREATE NAMESPACE IF NOT EXISTS {QUALITY_VALIDATIONS.rsplit('.', 1)[0]}")
    spark.sql(f"""
CREATE TABLE IF NOT EXISTS {QUALITY_VALIDATIONS} (
    validation_id STRING, layer STRING, table_name STRING, snapshot_id BIGINT, suite STRING,
    success BOOLEAN, expectations INT, failed INT, failures STRING, validated_at TIMESTAMP,
    data_docs STRING, warned INT, warnings STRING
) USING iceberg""")
    if "warnings" not in spark.table(QUALITY_VALIDATIONS).columns:  # recorded before severities
        spark.sql(f"ALTER TABLE {QUALITY_VALIDATIONS} ADD COLUMNS (warned INT, warnings STRING)")
    rows = [
        (
            validation.validation_id,
            validation.layer,
            t.table,
            t.snapshot_id,
            t.suite,
            t.success,
            t.evaluated,
            len(t.failures),
            json.dumps([f.sentence() for f in t.failures], default=str),
            validation.validated_at,
            str(validation.data_docs),
            len(t.warnings),
            json.dumps([f.sentence() for f in t.warnings], default=str),
        )
        for t in validation.tables
    ]
    spark.createDataFrame(rows, spark.table(QUALITY_VALIDATIONS).schema).writeTo(
        QUALITY_VALIDATIONS
    ).append()
