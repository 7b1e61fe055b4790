"""Rich progress bars fed by Spark's status tracker, so long Spark jobs show their tasks."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
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

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

console = Console(stderr=True, soft_wrap=True)


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
