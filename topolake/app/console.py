"""What the application prints: the Rich console (stderr), progress bars, tables (stdout).

`ConsoleHooks` is how the pipeline library's progress reaches a terminal or a log: lines,
stage headings, counters and Spark-job bars. Results a user may pipe (tables, CSV, JSON) go to
standard output; everything else to standard error.

On a live terminal progress is drawn as Rich bars. Where standard error is not one (a pipe, a
file, CI) progress is written as plain lines (`PlainProgress`): one per stage every
TOPOLAKE_PROGRESS_INTERVAL seconds (30) at most, and one when the stage ends. A run log
(`ConsoleHooks.run_log`) gets the same plain lines, whatever the console is.
"""

from __future__ import annotations

import csv
import json
import math
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, nullcontext
from enum import StrEnum
from pathlib import Path
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
from rich.text import Text

from topolake.core.settings import ConfigurationError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

console = Console(stderr=True, soft_wrap=True)

#: Seconds between two plain progress lines of one stage (where the console is no terminal,
#: and in the run log).
PROGRESS_INTERVAL_VARIABLE = "TOPOLAKE_PROGRESS_INTERVAL"
DEFAULT_PROGRESS_INTERVAL = 30.0
#: The run log's width (its rules; tables are as wide as they need).
LOG_WIDTH = 100


def keep_library_noise_out(verbose: bool = False) -> None:
    """TensorFlow's C++ start-up notices and dbt's colour codes stay out of the console and the
    run log unless `verbose` (a variable a user set stays as it is, unless `verbose`).

    Set in this process's environment before either library loads: dbt runs in this process,
    and Spark's JVM and its Python workers, started later, inherit it (a cluster's executors
    get the level through `spark.executorEnv`, see `topolake.core.spark`). TF_CPP_MIN_LOG_LEVEL
    3 also keeps out "failed call to cuInit" on machines without a GPU; `ml` holds the notices
    TensorFlow writes before it reads the level to it (`topolake.core.native_logs`).
    """
    if verbose:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"
        os.environ["DBT_USE_COLORS"] = "true"
    else:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        os.environ.setdefault("DBT_USE_COLORS", "false")


def progress_interval() -> float:
    """Seconds between plain progress lines: TOPOLAKE_PROGRESS_INTERVAL, default 30."""
    raw = os.environ.get(PROGRESS_INTERVAL_VARIABLE, "").strip()
    if not raw:
        return DEFAULT_PROGRESS_INTERVAL
    try:
        seconds = float(raw)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise ConfigurationError(
            f"{PROGRESS_INTERVAL_VARIABLE}={raw!r} is not a positive number of seconds."
        )
    return seconds


def duration(seconds: float) -> str:
    """`42 s`, `3 min 05 s`, `1 h 02 min`."""
    whole = max(0, round(seconds))
    if whole < 60:
        return f"{whole} s"
    minutes, rest = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {rest:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


class PlainProgress:
    """One stage's progress as plain lines, for a log or a pipe: a line at most every
    `interval` seconds, and one at the end. With a count (`total`, or counts as they come):

        simulating 2000 qcd events: 1,200/2,000 (60%) in 4 min 10 s, 4.8/s, ETA 2 min 47 s
        simulating 2000 qcd events: 2,000/2,000 done in 6 min 57 s, 4.8/s

    without one, `preparing the training extract: 1 min 30 s so far`, then `... done in 2 min
    05 s`. The rate (per second, per minute, or the time each takes) is the mean since the
    start; the ETA what is left at that rate.

    Thread-safe: the stage's callback counts (`advance`, `update`) and writes the line when it is
    due; a ticker (`ConsoleHooks`) calls `tick` so that a quiet callback still gets one every
    `interval`. `clock` is for tests.
    """

    def __init__(
        self,
        description: str,
        total: int | None,
        emit: Callable[[str], None],
        interval: float,
        unit: str = "",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.description, self.total, self.unit, self.interval = description, total, unit, interval
        self.done = 0
        self._emit, self._clock = emit, clock
        self._started = self._last = clock()
        self._closed = False
        self._lock = threading.Lock()

    def advance(self, n: int) -> None:
        with self._lock:
            self.done += n
            self._when_due()

    def update(self, done: int, total: int | None = None) -> None:
        with self._lock:
            self.done = done
            self.total = total or self.total
            self._when_due()

    def tick(self) -> None:
        with self._lock:
            self._when_due()

    def complete(self) -> None:
        """Count it all done (the stage says so), without a line."""
        with self._lock:
            self.done = max(self.done, self.total or 0)

    def close(self, stopped: bool = False) -> None:
        """The last line: `done in`, or `stopped after` if the stage failed."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._emit(self.line(self._clock(), "stopped" if stopped else "done"))

    def _when_due(self) -> None:
        now = self._clock()
        if not self._closed and now - self._last >= self.interval:
            self._last = now
            self._emit(self.line(now))

    def line(self, now: float, ending: str | None = None) -> str:
        """The line at `now`; `ending` "done" or "stopped" for the last one."""
        seconds = now - self._started
        elapsed = duration(seconds)
        if not (self.total or self.done):  # nothing counted (yet)
            if ending == "stopped":
                return f"{self.description}: stopped after {elapsed}"
            return f"{self.description}: " + (
                f"done in {elapsed}" if ending else f"{elapsed} so far"
            )
        unit = f" {self.unit}" if self.unit else ""
        count = (f"{self.done:,}/{self.total:,}" if self.total else f"{self.done:,}") + unit
        if ending == "stopped":
            return f"{self.description}: stopped after {elapsed} at {count}"
        per_second = self.done / seconds if seconds > 0 else 0.0
        if per_second >= 1:
            rate = [f"{per_second:,.1f}{unit}/s"]
        elif per_second >= 1 / 60:
            rate = [f"{per_second * 60:,.1f}{unit}/min"]
        elif per_second > 0:
            rate = [f"{duration(1 / per_second)} each"]
        else:
            rate = []
        if ending:
            return f"{self.description}: " + ", ".join([f"{count} done in {elapsed}", *rate])
        share = f" ({self.done / self.total:.0%})" if self.total else ""
        parts = [f"{count}{share} in {elapsed}", *rate]
        if self.total and self.done < self.total:
            left = (self.total - self.done) / per_second if per_second > 0 else None
            parts.append(f"ETA {duration(left)}" if left is not None else "ETA unknown")
        return f"{self.description}: {', '.join(parts)}"


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
        Console(width=None if sys.stdout.isatty() else 250).print(rows_table(columns, rows))


def rows_table(columns: list[str], rows: Iterable[tuple]) -> Table:
    table = Table(*columns)
    for row in rows:
        table.add_row(*("NULL" if v is None else str(v) for v in row))
    return table


def draws_live() -> bool:
    """Whether the console draws live bars and spinners: a terminal (not TERM=dumb, not
    TTY_INTERACTIVE=0) or Jupyter. Elsewhere progress is written as plain lines."""
    return console.is_interactive or console.is_jupyter


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
def spark_progress(
    spark: SparkSession, description: str, show: Callable[[int, int], None]
) -> Iterator[None]:
    """Tell `show` the completed and total tasks of every Spark job started inside the block,
    every 0.3 s and at the end (total 0: no job yet)."""
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

    def poll() -> None:
        while not stop.wait(0.3):
            show(*task_counts())

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        done, total = task_counts()
        show(done, total or done)
        context.setLocalProperty("spark.jobGroup.id", None)


class ConsoleHooks:
    """The pipeline's hooks on the Rich console (see `topolake.app.pipeline.Hooks`): Rich bars
    on a live terminal, plain progress lines elsewhere, and everything in the run log too while
    one is open (`run_log`).

    `interval`: seconds between plain progress lines (default: `progress_interval()`).
    """

    def __init__(self, interval: float | None = None) -> None:
        self.interval = interval
        self._log: Console | None = None

    @contextmanager
    def run_log(self, path: Path) -> Iterator[Path]:
        """Inside the block, everything the hooks show is written to `path` as well, line by
        line as it happens (`tail -f` follows a run), progress as plain lines, no colours."""
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8", buffering=1) as file:
            self._log = Console(
                file=file, width=LOG_WIDTH, force_terminal=False, no_color=True, soft_wrap=True
            )
            try:
                yield path
            finally:
                self._log = None

    def _outputs(self) -> list[Console]:
        return [console] if self._log is None else [console, self._log]

    def line(self, text: str, style: str | None = None) -> None:
        for output in self._outputs():
            output.print(text, style=style, highlight=False, markup=False)

    def error(self, message: str) -> None:
        """`error: message`, the first word in bold red."""
        for output in self._outputs():
            output.print(Text.assemble(("error: ", "bold red"), message), highlight=False)

    def stage(self, number: int, total: int, name: str) -> None:
        for output in self._outputs():
            output.rule(f"stage {number}/{total}: {name}")

    def table(self, columns: list[str], rows: list[tuple]) -> None:
        print_rows(columns, rows, OutputFormat.table)
        if self._log is not None:
            self._log.print(rows_table(columns, rows), width=250)

    @contextmanager
    def counter(self, description: str, total: int) -> Iterator[Callable[[int], None]]:
        bars = make_progress() if draws_live() else None
        with self._plain(description, total) as plain, bars or nullcontext():
            bar = bars.add_task(description, total=total) if bars else None

            def advance(n: int) -> None:
                if bars is not None and bar is not None:
                    bars.advance(bar, n)
                if plain is not None:
                    plain.advance(n)

            yield advance
            if bars is not None and bar is not None:
                bars.update(bar, completed=total)
            if plain is not None:
                plain.complete()

    @contextmanager
    def spark_jobs(self, spark: SparkSession, description: str) -> Iterator[None]:
        bars = make_progress() if draws_live() else None
        with self._plain(description, None, unit="tasks") as plain, bars or nullcontext():
            bar = bars.add_task(description, total=None) if bars else None

            def show(done: int, total: int) -> None:
                if bars is not None and bar is not None:
                    bars.update(bar, completed=done, total=total or None)
                if plain is not None:
                    plain.update(done, total)

            with spark_progress(spark, description, show):
                yield

    @contextmanager
    def waiting(self, description: str) -> Iterator[None]:
        spinner = console.status(description) if draws_live() else nullcontext()
        with self._plain(description, None), spinner:
            yield

    @contextmanager
    def _plain(
        self, description: str, total: int | None, unit: str = ""
    ) -> Iterator[PlainProgress | None]:
        """The stage's plain progress, written to the console unless it is a live terminal and
        to the run log; None where neither wants it. A ticker writes its line every interval
        when the stage's callback is quiet; the last line says done, or stopped on an error."""
        outputs = [o for o in self._outputs() if o is not console or not draws_live()]
        if not outputs:
            yield None
            return

        def emit(text: str) -> None:
            for output in outputs:
                output.print(text, highlight=False, markup=False)

        interval = self.interval or progress_interval()
        plain = PlainProgress(description, total, emit, interval, unit)
        stop = threading.Event()

        def tick() -> None:
            while not stop.wait(min(1.0, interval)):
                plain.tick()

        ticker = threading.Thread(target=tick, name="plain-progress", daemon=True)
        ticker.start()
        try:
            yield plain
        except BaseException:
            plain.close(stopped=True)
            raise
        else:
            plain.close()
        finally:
            stop.set()
            ticker.join()
