"""What the application prints: the Rich console (stderr), progress bars, tables (stdout).

`ConsoleHooks` is how the pipeline library's progress reaches a terminal or a log: lines,
stage headings, counters and Spark-job bars. Results a user may pipe (tables, CSV, JSON) go to
standard output; everything else to standard error.
"""

from __future__ import annotations

import csv
import json
import sys
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

console = Console(stderr=True, soft_wrap=True)


class OutputFormat(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


def print_rows(
    columns: list[str], rows: Iterable[tuple], format: OutputFormat = OutputFormat.table
) -> None:
    """Rows to standard output: a table for people, CSV or JSON lines for programs."""
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


def make_progress() -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


@contextmanager
def spark_progress(spark: SparkSession, description: str) -> Iterator[None]:
    """Show the completed/total tasks of every Spark job started inside the block."""
    context = spark.sparkContext
    tracker = context.statusTracker()
    group = f"topolake-{uuid.uuid4().hex[:8]}"
    context.setJobGroup(group, description)
    stop = threading.Event()

    def task_counts() -> tuple[int, int]:
        done = total = 0
        for job_id in tracker.getJobIdsForGroup(group):
            job = tracker.getJobInfo(job_id)
            for stage_id in job.stageIds if job else []:
                if stage := tracker.getStageInfo(stage_id):
                    done += stage.numCompletedTasks
                    total += stage.numTasks
        return done, total

    with make_progress() as progress:
        bar = progress.add_task(description, total=None)

        def poll() -> None:
            while not stop.wait(0.3):
                done, total = task_counts()
                progress.update(bar, completed=done, total=total or None)

        thread = threading.Thread(target=poll, daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()
            done, total = task_counts()
            progress.update(bar, completed=done, total=total or done)
            context.setLocalProperty("spark.jobGroup.id", None)


class ConsoleHooks:
    """The pipeline's hooks on the Rich console (see `topolake.app.pipeline.Hooks`)."""

    def line(self, text: str, style: str | None = None) -> None:
        console.print(text, style=style, highlight=False, markup=False)

    def stage(self, number: int, total: int, name: str) -> None:
        console.rule(f"stage {number}/{total}: {name}")

    def table(self, columns: list[str], rows: list[tuple]) -> None:
        print_rows(columns, rows, OutputFormat.table)

    @contextmanager
    def counter(self, description: str, total: int) -> Iterator[Callable[[int], None]]:
        with make_progress() as progress:
            bar = progress.add_task(description, total=total)
            yield lambda n: progress.advance(bar, n)
            progress.update(bar, completed=total)

    def spark_jobs(self, spark: SparkSession, description: str):
        return spark_progress(spark, description)

    def waiting(self, description: str):
        return console.status(description)
