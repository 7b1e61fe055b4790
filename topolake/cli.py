"""The `topolake` command line: one command per stage, plus `sql` and `snapshots` to look."""

from __future__ import annotations

import csv
import json
import sys
from enum import StrEnum
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from topolake.progress import console
from topolake.settings import ConfigurationError, Settings, load_settings

app = typer.Typer(
    help="topolake: a lakehouse for LHC event-topology classification.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


class State:
    settings: Settings | None = None


def fail(message: str, code: int = 1) -> typer.Exit:
    console.print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(code)


def spark_session():
    from topolake.spark import get_spark

    try:
        return get_spark(State.settings)
    except ConfigurationError as err:
        raise fail(str(err), 2) from err


@app.callback()
def main(
    master: Annotated[
        str | None, typer.Option(help="Spark master, e.g. spark://host:7077 (env SPARK_MASTER).")
    ] = None,
    home: Annotated[
        str | None,
        typer.Option(help="Where tables and state live (env TOPOLAKE_HOME, default ./lakehouse)."),
    ] = None,
) -> None:
    State.settings = load_settings(master=master, home=home)


@app.command()
def ingest(
    sources: Annotated[
        list[str], typer.Argument(help="ROOT files, directories, globs or root://host:port//path.")
    ],
    sample: Annotated[str, typer.Option(help="Sample name: qcd, ttbar, wjets, or your own.")],
    label: Annotated[int, typer.Option(help="Class label: 0 qcd, 1 ttbar, 2 wjets.")],
    step: Annotated[int, typer.Option(help="Entries per Spark task for large files.")] = 10_000,
) -> None:
    """Land Delphes events in lake.bronze.events (idempotent; bad files are quarantined)."""
    from ingestion.bronze import IngestArgumentError
    from ingestion.bronze import ingest as run_ingest

    spark = spark_session()
    try:
        report = run_ingest(spark, sources, sample=sample, label=label, step=step)
    except IngestArgumentError as err:
        raise fail(str(err), 2) from err
    for survey in report.landed:
        console.print(f"landed {survey.path}: {survey.entries} events", highlight=False)
    for path, why in report.skipped:
        console.print(f"[yellow]skipped[/] {path}: {why}, nothing added", highlight=False)
    for survey in report.rejected:
        console.print(f"[bold red]rejected[/] {survey.path} {survey.reason}.", highlight=False)
    console.print(
        f"ingest {report.ingest_id}: {report.events} events from {len(report.landed)} file(s) "
        f"landed in lake.bronze.events"
        + (f" (snapshot {report.snapshot_id})" if report.snapshot_id else "")
        + f", {len(report.skipped)} skipped, {len(report.rejected)} rejected"
        + (" (see lake.bronze.rejected_files)" if report.rejected else "")
        + ".",
        highlight=False,
    )
    if report.rejected:
        raise typer.Exit(1)


class OutputFormat(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


@app.command()
def sql(
    query: Annotated[str, typer.Argument(help="A Spark SQL query; tables live in catalog lake.")],
    format: Annotated[OutputFormat, typer.Option(help="Output format.")] = OutputFormat.table,
    limit: Annotated[int, typer.Option(help="At most this many rows (0: no limit).")] = 1000,
) -> None:
    """Run a SQL query on the lakehouse and print the result."""
    from pyspark.errors import PySparkException

    spark = spark_session()
    try:
        frame = spark.sql(query)
        if limit:
            frame = frame.limit(limit)
        columns, rows = frame.columns, frame.collect()
    except PySparkException as err:
        raise fail(str(err).strip().splitlines()[0], 2) from err
    print_rows(columns, [tuple(r) for r in rows], format)


def print_rows(columns: list[str], rows: list[tuple], format: OutputFormat) -> None:
    if format is OutputFormat.csv:
        writer = csv.writer(sys.stdout)
        writer.writerow(columns)
        writer.writerows(rows)
    elif format is OutputFormat.json:
        for row in rows:
            sys.stdout.write(json.dumps(dict(zip(columns, row, strict=True)), default=str) + "\n")
    else:
        table = Table(*columns)
        for row in rows:
            table.add_row(*("NULL" if v is None else str(v) for v in row))
        Console(width=None if sys.stdout.isatty() else 250).print(table)


@app.command()
def snapshots(
    table: Annotated[str, typer.Argument(help="A table, e.g. bronze.events.")],
    format: Annotated[OutputFormat, typer.Option(help="Output format.")] = OutputFormat.table,
) -> None:
    """List a table's snapshots: ids, times, operations, rows added and in total."""
    from pyspark.errors import PySparkException

    from topolake.tables import qualify

    name = qualify(table)
    spark = spark_session()
    try:
        rows = spark.sql(f"""
SELECT s.committed_at, s.snapshot_id, s.operation,
       s.summary['added-records'] AS added_records, s.summary['total-records'] AS total_records,
       coalesce(h.is_current_ancestor, false) AS current_ancestor
FROM {name}.snapshots s LEFT JOIN {name}.history h ON h.snapshot_id = s.snapshot_id
ORDER BY s.committed_at""").collect()
    except PySparkException as err:
        raise fail(f"Table {name} cannot be read: {str(err).strip().splitlines()[0]}", 2) from err
    columns = [
        "committed_at",
        "snapshot_id",
        "operation",
        "added_records",
        "total_records",
        "current_ancestor",
    ]
    print_rows(columns, [tuple(r) for r in rows], format)
