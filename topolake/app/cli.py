"""The `topolake` command line: one command per stage, plus `sql` and `snapshots` to look."""

from __future__ import annotations

import csv
import json
import sys
import time
from dataclasses import replace
from enum import StrEnum
from functools import partial
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from topolake.app.console import console
from topolake.core.settings import PROJECT_ROOT, ConfigurationError, Settings, load_settings
from topolake.core.tables import BRONZE_EVENTS
from topolake.core.vocabulary import SAMPLE_LABELS

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
    from topolake.core.spark import get_spark

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
        absent = survey.absent_fields
        console.print(
            f"landed {survey.path}: {survey.entries} events"
            + (f" (without the optional {', '.join(absent)}: null)" if absent else ""),
            highlight=False,
        )
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


Sample = StrEnum("Sample", {name: name for name in SAMPLE_LABELS})


@app.command()
def simulate(
    sample: Annotated[Sample, typer.Option(help="Which process to generate.")],
    events: Annotated[int, typer.Option(help="Accepted events to store (after the filter).")],
    out: Annotated[Path, typer.Option(help="Output directory; files go to OUT/SAMPLE/.")],
    seed: Annotated[int, typer.Option(help="Seed; each file derives its own from it.")] = 1,
    files: Annotated[int | None, typer.Option(help="Files (tasks); default one per core.")] = None,
    isolation_filter: Annotated[
        bool, typer.Option(help="Require the generator-level lepton to be isolated.")
    ] = True,
    spark: Annotated[bool, typer.Option(help="Run the tasks as Spark tasks.")] = False,
    plots: Annotated[bool, typer.Option(help="Plot the samples under OUT as PNG.")] = False,
) -> None:
    """Generate labelled pp collisions at 13 TeV (Pythia 8 + detector model) as Delphes files."""
    from simulation import tasks as generation
    from simulation.plots import plot_samples

    workers = generation.default_workers()
    try:
        tasks = generation.plan(sample.value, events, out, seed, files or workers, isolation_filter)
    except generation.SimulationArgumentError as err:
        raise fail(str(err), 2) from err
    started = time.perf_counter()
    if spark:
        from topolake.app.console import spark_progress

        session = spark_session()
        with spark_progress(session, f"simulating {events} {sample.value} events"):
            results = generation.generate_on_spark(session, tasks)
    else:
        results = simulate_locally(tasks, events, f"simulating {sample.value}")
    elapsed = time.perf_counter() - started
    for result in results:
        state = "exists, kept" if result.skipped else f"{result.events} events"
        console.print(f"{result.path}: {state}", highlight=False)
    made = [r for r in results if not r.skipped]
    if made:
        generated = sum(r.generated for r in made)
        passed = sum(r.passed for r in made)
        console.print(
            f"{sample.value}: {sum(r.events for r in made)} events stored; the lepton filter "
            f"accepted {passed} of {generated} generated ({passed / generated:.1%}); "
            f"{elapsed:.0f} s",
            highlight=False,
        )
    if plots:
        for path in plot_samples(out, out / "plots"):
            console.print(f"plot {path}", highlight=False)


class Layer(StrEnum):
    bronze = "bronze"
    silver = "silver"
    gold = "gold"


def print_validation(validation) -> None:
    """One line per table, then the worst failures with examples."""
    for t in validation.tables:
        if not t.success:
            mark = "[bold red]FAILED[/]"
        elif t.warnings:
            mark = f"[yellow]passed with {len(t.warnings)} warning(s)[/]"
        else:
            mark = "[green]passed[/]"
        passed = t.evaluated - len(t.failed)
        console.print(
            f"{t.table}@{t.snapshot_id} (suite {t.suite}): {mark}, "
            f"{passed}/{t.evaluated} expectations met",
            highlight=False,
        )
        for failure in t.failures[:5]:
            console.print(f"    {failure.sentence()}", highlight=False, markup=False)
        for warning in t.warnings[:5]:
            console.print(
                f"    warning (a producer assumption): {warning.sentence()}",
                highlight=False,
                markup=False,
            )


def run_validation(spark, layer: str, snapshot: str | None = None):
    """Validate a layer, print the summary; a failing layer exits with the Data Docs path."""
    from expectations.snapshots import SnapshotError
    from expectations.validate import validate_layer

    try:
        validation = validate_layer(spark, State.settings, layer, snapshot)
    except SnapshotError as err:
        raise fail(str(err), 2) from err
    print_validation(validation)
    if not validation.success:
        failed = ", ".join(t.table for t in validation.tables if not t.success)
        raise fail(
            f"the {layer} quality gate failed on {failed}; Data Docs: {validation.data_docs}"
        )
    return validation


@app.command()
def validate(
    layer: Annotated[
        Layer | None, typer.Option(help="Validate one layer (default: all three).")
    ] = None,
    snapshot: Annotated[
        str | None,
        typer.Option(
            help="A snapshot id of one of the layer's tables (the others as of its commit), "
            "or a timestamp. Default: the current snapshots."
        ),
    ] = None,
) -> None:
    """Run the Great Expectations checkpoints on table snapshots; write Data Docs."""
    if snapshot is not None and layer is None:
        raise fail("--snapshot needs --layer: a snapshot id belongs to one layer's tables.", 2)
    spark = spark_session()
    for name in [layer] if layer else list(Layer):
        validation = run_validation(spark, str(name), snapshot)
    console.print(f"Data Docs: {validation.data_docs}", highlight=False)


@app.command()
def build(
    full_refresh: Annotated[
        bool, typer.Option(help="Rebuild silver and gold from all of bronze.")
    ] = False,
    select: Annotated[
        str | None, typer.Option(help="dbt node selection (validates silver and gold after).")
    ] = None,
    skip_validation: Annotated[bool, typer.Option(help="Build without the quality gates.")] = False,
) -> None:
    """Build silver and gold from bronze with dbt (incremental), each layer behind its gate.

    Bronze is validated first, then silver is built and validated, then gold: the first
    failing layer stops the build.
    """
    spark = spark_session()  # a configuration problem gets its one-line message here
    if skip_validation:
        console.print("[bold yellow]warning:[/] building without the quality gates.")
    if select:
        dbt_build([*(["--full-refresh"] if full_refresh else []), "--select", select])
        for layer in [] if skip_validation else ["silver", "gold"]:
            run_validation(spark, layer)
    else:
        build_layers(spark, full_refresh, skip_validation)


def build_layers(
    spark, full_refresh: bool = False, skip_validation: bool = False, timings=None
) -> None:
    """bronze gate -> silver -> silver gate -> gold -> gold gate; stops at the first failure."""
    from ingestion.bronze import migrate
    from topolake.app.dbt_runner import built_before_content_identity

    if spark.catalog.tableExists(BRONZE_EVENTS) and migrate(spark):
        console.print("bronze upgraded: events are identified by (content_hash, entry) now.")
    if not full_refresh and (outdated := built_before_content_identity(spark)):
        console.print(
            f"{', '.join(outdated)} predate(s) events identified by content: "
            "rebuilding silver and gold from all of bronze (--full-refresh).",
            highlight=False,
        )
        full_refresh = True
    refresh = ["--full-refresh"] if full_refresh else []
    timings = {} if timings is None else timings
    steps = [("validate", "bronze"), ("build", "silver"), ("validate", "silver"),
             ("build", "gold"), ("validate", "gold")]  # fmt: skip
    for action, layer in steps:
        if action == "validate" and skip_validation:
            continue
        started = time.perf_counter()
        if action == "build":
            # buildable: a test runs with the layer only when all it reads is built by then
            dbt_build([*refresh, "--select", layer_selection(layer),
                       "--indirect-selection", "buildable"])  # fmt: skip
        else:
            run_validation(spark, layer)
        timings[f"{action} {layer}"] = time.perf_counter() - started


def layer_selection(layer: str) -> str:
    """dbt's selection for a layer; silver's includes the tests on the bronze source."""
    return "source:bronze silver" if layer == "silver" else layer


def dbt_build(args: list[str]) -> None:
    from topolake.app.dbt_runner import BuildError, run_dbt

    try:
        result = run_dbt(State.settings, "build", *args)
    except BuildError as err:
        raise fail(str(err)) from err
    models = [n for n in result.nodes if n[0].startswith("model.")]
    tests = [n for n in result.nodes if n[0].startswith("test.")]
    for name, status, seconds in models:
        console.print(f"{name.split('.')[-1]:>22}: {status} in {seconds:.1f} s", highlight=False)
    console.print(f"{len(models)} models built, {len(tests)} dbt tests passed.", highlight=False)


class Model(StrEnum):
    hlf = "hlf"
    particles = "particles"
    inclusive = "inclusive"


class Engine(StrEnum):
    tf = "tf"
    bigdl = "bigdl"


@app.command()
def train(
    model: Annotated[Model, typer.Option(help="Which classifier.")] = Model.hlf,
    engine: Annotated[Engine, typer.Option(help="Training engine on Spark.")] = Engine.tf,
    workers: Annotated[int, typer.Option(min=1, help="Spark barrier tasks (TF workers).")] = 1,
    epochs: Annotated[int, typer.Option(min=1)] = 5,
    batch_size: Annotated[int, typer.Option(min=1, help="Per-worker batch size.")] = 128,
    max_particles: Annotated[
        int, typer.Option(min=1, max=801, help="Sequence length after padding.")
    ] = 801,
    learning_rate: Annotated[float, typer.Option(min=0.0)] = 1e-3,
    hidden: Annotated[
        str, typer.Option(help="The HLF classifier's Dense widths, comma-separated.")
    ] = "50,20,10",
    seed: Annotated[int, typer.Option()] = 0,
    snapshot: Annotated[
        str | None,
        typer.Option(
            help="Gold snapshot: an id of a gold table or a timestamp. Default: the newest "
            "gold snapshot with a passing validation."
        ),
    ] = None,
    skip_validation: Annotated[
        bool, typer.Option(help="Train on a snapshot without a passing validation (recorded).")
    ] = False,
) -> None:
    """Train a classifier on a pinned, validated gold snapshot; track it in MLflow."""
    from ml.models import Architecture
    from ml.spec import TrainSpec

    try:
        widths = tuple(int(w) for w in hidden.split(","))
    except ValueError:
        raise fail(f"--hidden {hidden!r} is not a comma-separated list of widths.", 2) from None
    spec = TrainSpec(str(model), epochs, batch_size, max_particles, learning_rate, seed,
                     Architecture(hidden=widths))  # fmt: skip
    spark = spark_session()
    data = training_extract(spark, snapshot, skip_validation, workers)
    trained = train_tracked(spark, spec, str(engine), workers, data)
    console.print(f"MLflow run {trained.run_id}", highlight=False)


def training_extract(spark, snapshot: str | None, skip_validation: bool, workers: int):
    """The extract of the pinned gold snapshot, after refusing bad settings."""
    import ml  # noqa: F401  (Keras 2 before TensorFlow loads)
    from ml.data import SnapshotRefused, extract, pin_gold
    from ml.tf_engine import EngineError, check_workers

    try:
        check_workers(spark, workers)
        gold = pin_gold(spark, snapshot, skip_validation)
    except (EngineError, SnapshotRefused) as err:
        raise fail(str(err), 2) from err
    if gold.validation_id is None:
        console.print(
            "[bold yellow]warning: training on a gold snapshot WITHOUT a passing validation "
            "(--skip-validation); the run records it.[/]"
        )
    with console.status("preparing the training extract"):
        data = extract(spark, State.settings, gold)
    console.print(
        f"gold snapshots {gold.snapshots} (validation {gold.validation_id or 'skipped'}): "
        f"{data.events.get('train', 0)} training, {data.events.get('test', 0)} test events",
        highlight=False,
    )
    return data


def train_tracked(spark, spec, engine: str, workers: int, data):
    """Train one model with per-epoch progress, track it; a failure exits with its reason."""
    from ml.tf_engine import EngineError
    from ml.training import train_and_track

    console.print(f"training {spec.model} with {engine} x {workers}", highlight=False)

    def log(line: str) -> None:
        console.print(f"  {line}", highlight=False)

    try:
        trained = train_and_track(spark, State.settings, spec, engine, workers, data, log)
    except EngineError as err:
        raise fail(str(err)) from err
    result = trained.result
    console.print(
        f"trained {spec.model} with {engine} x {workers} ({result.replicas} replicas in sync) "
        f"in {result.seconds:.1f} s, {result.samples_per_second:,.0f} samples/s",
        highlight=False,
    )
    return trained


@app.command()
def tune(
    grid: Annotated[Path, typer.Option(help="YAML grid file (see grids/).")],
    model: Annotated[Model | None, typer.Option(help="Overrides the grid's model.")] = None,
    fraction: Annotated[
        float | None,
        typer.Option(min=0.0, max=1.0, help="Share of the training split per point."),
    ] = None,
    parallelism: Annotated[
        int | None, typer.Option(min=1, help="Points trained at once (default: task slots).")
    ] = None,
    seed: Annotated[int, typer.Option()] = 0,
    snapshot: Annotated[
        str | None, typer.Option(help="Gold snapshot (default: validated).")
    ] = None,
) -> None:
    """Grid search on Spark, one task per point; resumable; results in lake.ml.tuning_results."""
    from ml.tuning import GridError, load_grid

    try:
        search = load_grid(grid, str(model) if model else None, fraction)
    except GridError as err:
        raise fail(str(err), 2) from err
    spark = spark_session()
    data = training_extract(spark, snapshot, False, 1)
    tune_tracked(spark, search, data, seed, parallelism)


def tune_tracked(spark, search, data, seed: int = 0, parallelism: int | None = None):
    """Run a search behind a progress bar, print its table; a failed point exits 1."""
    from ml.tuning import train_arguments
    from ml.tuning import tune as run_search
    from topolake.app.console import make_progress

    with make_progress() as progress:
        bar = progress.add_task(f"tune {search.model}", total=len(search.points))

        def on_point(result, line: str) -> None:
            progress.console.print(f"  {line}", highlight=False)
            progress.advance(bar)

        outcome = run_search(spark, State.settings, search, data, seed, parallelism, on_point)
        progress.update(bar, completed=len(search.points))
    if outcome.done_before:
        console.print(f"{outcome.done_before} of {len(search.points)} points were already done "
                      "(lake.ml.tuning_results): not trained again.", highlight=False)  # fmt: skip
    if outcome.best:
        best = outcome.best
        console.print(
            f"best point: val AUC {best['val_auc']:.4f}, val loss {best['val_loss']:.4f}: "
            f"topolake train {' '.join(train_arguments(best))}",
            highlight=False,
        )
    if outcome.failed:
        raise fail(f"{len(outcome.failed)} point(s) failed; the first: {outcome.failed[0][1]} "
                   "Run the same command again to retry them.")  # fmt: skip
    return outcome


@app.command()
def evaluate(
    run: Annotated[
        str | None, typer.Argument(help="MLflow run id; default: the latest training run.")
    ] = None,
) -> None:
    """Evaluate a training run on its test split: accuracy, ROC/AUC, confusion, plots."""
    evaluation = evaluate_tracked(spark_session(), run)
    console.print(f"plots: {Path(evaluation.plots['roc']).parent}", highlight=False)


def evaluate_tracked(spark, run: str | None):
    import ml  # noqa: F401  (Keras 2 before TensorFlow loads)
    from ml.evaluate import COMPARISON_COLUMNS, EvaluationError, comparison_rows, evaluate_run

    try:
        with console.status("evaluating on the test split"):
            evaluation = evaluate_run(spark, State.settings, run)
    except EvaluationError as err:
        raise fail(str(err), 2) from err
    console.print(f"run {evaluation.run_id}: {evaluation.model} ({evaluation.engine})",
                  highlight=False)  # fmt: skip
    print_rows(list(COMPARISON_COLUMNS), comparison_rows([evaluation]), OutputFormat.table)
    return evaluation


def simulate_locally(tasks, events: int, description: str):
    """Run simulation tasks on this machine's cores behind one progress bar."""
    from simulation import tasks as generation
    from topolake.app.console import make_progress

    with make_progress() as progress:
        bar = progress.add_task(description, total=events)
        results = generation.generate_locally(
            tasks, generation.default_workers(), partial(progress.advance, bar)
        )
        progress.update(bar, completed=events)
    return results


DEFAULT_GRID = PROJECT_ROOT / "grids" / "hlf-small.yaml"


class StageFailed(Exception):
    """A pipeline stage stopped; its own message has been printed."""


@app.command("run")
def run_pipeline(
    events: Annotated[int, typer.Option(min=1, help="Simulated events per sample.")] = 2000,
    epochs: Annotated[int, typer.Option(min=1, help="Training epochs per model.")] = 5,
    seed: Annotated[int, typer.Option(help="Simulation seed.")] = 1,
    grid: Annotated[Path, typer.Option(help="Grid searched for the HLF model.")] = DEFAULT_GRID,
    max_particles: Annotated[
        int, typer.Option(min=1, max=801, help="Sequence length of the inclusive model.")
    ] = 801,
) -> None:
    """The whole pipeline on the embedded default: simulate -> ingest -> build and validate ->
    tune -> train (HLF and inclusive) -> evaluate -> report.

    A second run reuses what exists: files with the same seed are not regenerated, files
    already landed are not ingested again, an unchanged validated gold is not rebuilt and
    grid points already done are not retrained; the models are trained afresh.
    """
    from datetime import datetime

    from ml.tuning import GridError, load_grid

    try:
        search = load_grid(grid, "hlf")
    except GridError as err:
        raise fail(str(err), 2) from err
    settings = State.settings or load_settings()
    State.settings = settings
    log = settings.home / "logs" / f"run-{datetime.now():%Y%m%d-%H%M%S}.log"
    console.record = True
    stages = ["simulate", "ingest", "build", "tune", "train", "evaluate", "report"]
    timings: dict[str, float] = {}
    started = time.perf_counter()
    try:
        report = _pipeline(settings, events, epochs, seed, search, max_particles, stages, timings)
    except StageFailed:
        raise typer.Exit(1) from None
    finally:
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(console.export_text())
        console.record = False
    console.rule(f"done in {time.perf_counter() - started:.0f} s")
    console.print(f"report: {report}\nlakehouse: {settings.home}\nlog: {log}", highlight=False)


class _Stage:
    """One pipeline stage: a heading, its time, and a failure that names the stage and log."""

    def __init__(self, stages: list[str], timings: dict[str, float], log_hint: str):
        self.stages, self.timings, self.log_hint = stages, timings, log_hint

    def __call__(self, name: str):
        from contextlib import contextmanager

        @contextmanager
        def stage():
            number = self.stages.index(name) + 1
            console.rule(f"stage {number}/{len(self.stages)}: {name}")
            began = time.perf_counter()
            try:
                yield
            except typer.Exit as stop:
                if stop.exit_code:
                    console.print(f"[bold red]stage {name} failed[/]; {self.log_hint}")
                    raise StageFailed(name) from None
                raise
            except Exception as err:
                console.print(f"[bold red]stage {name} failed:[/] {err}; {self.log_hint}",
                              highlight=False)  # fmt: skip
                raise StageFailed(name) from err
            self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - began

        return stage()


def _pipeline(settings, events, epochs, seed, search, max_particles, stages, timings) -> Path:
    from ingestion.bronze import ingest as run_ingest
    from simulation import tasks as generation

    stage = _Stage(stages, timings, f"the run's log: {settings.home / 'logs'}, dbt's: "
                   f"{settings.logs_dir}")  # fmt: skip
    data_dir = settings.home / "simulated"
    with stage("simulate"):
        for sample in SAMPLE_LABELS:
            tasks = generation.plan(sample, events, data_dir, seed, generation.default_workers())
            results = simulate_locally(tasks, events, f"simulate {sample}")
            made = sum(r.events for r in results if not r.skipped)
            kept = sum(r.skipped for r in results)
            console.print(f"{sample}: {made} events generated, {kept} file(s) already there",
                          highlight=False)  # fmt: skip
    spark = spark_session()
    landed = 0
    with stage("ingest"):
        for sample, label in SAMPLE_LABELS.items():
            report = run_ingest(spark, [str(data_dir / sample)], sample=sample, label=label)
            if report.rejected:
                bad = report.rejected[0]
                raise fail(f"ingest of {sample} rejected {bad.path}: {bad.reason}.")
            landed += len(report.landed)
            console.print(f"{sample}: {report.events} events landed from {len(report.landed)} "
                          f"file(s), {len(report.skipped)} already landed",
                          highlight=False)  # fmt: skip
    with stage("build"):
        if landed == 0 and gold_is_validated(spark):
            console.print("nothing new landed and gold is validated: not rebuilt")
        else:
            build_layers(spark, timings=timings)
        print_counts(spark)
    import ml  # noqa: F401  (Keras 2 before TensorFlow loads)
    from ml.spec import TrainSpec
    from ml.tuning import point_key, spec_of
    from topolake.app.report import ReportInputs, write_report

    with stage("tune"):
        data = training_extract(spark, None, False, 1)
        outcome = tune_tracked(spark, search, data)
        keys = [point_key(data, search, 0, p) for p in search.points]
    with stage("train"):
        best = spec_of(outcome.best)
        trained = [
            train_tracked(spark, replace(best, epochs=epochs, max_particles=max_particles),
                          "tf", 1, data),
            train_tracked(spark, TrainSpec("inclusive", epochs=epochs,
                                           max_particles=max_particles), "tf", 1, data),
        ]  # fmt: skip
    with stage("evaluate"):
        evaluations = [evaluate_tracked(spark, t.run_id) for t in trained]
    with stage("report"):
        report = write_report(spark, settings, ReportInputs(evaluations, keys, timings))
        console.print(f"report: {report}", highlight=False)
    return report


def gold_is_validated(spark) -> bool:
    """Whether the current gold snapshots are the newest with a passing validation."""
    from expectations.records import latest_passed
    from expectations.snapshots import SnapshotError, resolve
    from topolake.core.tables import LAYER_TABLES

    try:
        passed = latest_passed(spark, "gold")
        return passed is not None and passed.snapshots == resolve(spark, LAYER_TABLES["gold"], None)
    except SnapshotError:
        return False


def print_counts(spark) -> None:
    from topolake.app.report import sample_table

    rows = [(r["sample"], r["events"], r["selected"], r["train"], r["test"],
             f"{r['efficiency']:.1%}") for r in sample_table(spark)]  # fmt: skip
    print_rows(["sample", "bronze events", "selected", "train", "test", "selection efficiency"],
               rows, OutputFormat.table)  # fmt: skip


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

    from topolake.core.tables import qualify

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


class PublishFormat(StrEnum):
    delta = "delta"


@app.command()
def publish(
    tables: Annotated[
        list[str] | None,
        typer.Argument(help="Tables to publish, e.g. gold.hlf_features gold.training_set."),
    ] = None,
    to: Annotated[
        str | None, typer.Option(help="Where: each table goes to TO/<layer>/<table>.")
    ] = None,
    format: Annotated[
        PublishFormat, typer.Option(help="Table format of the copy.")
    ] = PublishFormat.delta,
    snapshot: Annotated[
        str | None,
        typer.Option(help="Snapshot id or time (default: gold's newest validated, else current)."),
    ] = None,
    list_: Annotated[
        str | None, typer.Option("--list", help="Show what is published under this URI.")
    ] = None,
) -> None:
    """Publish pinned snapshots as Delta tables (delta-rs), or list what is published."""
    from expectations.snapshots import SnapshotError
    from publish.delta import PublishError, published
    from publish.delta import publish as run_publish

    if list_:
        versions = published(list_)
        if not versions:
            raise fail(f"No Delta table is published under {list_}.", 2)
        print_rows(
            ["table", "version", "operation", "iceberg_snapshot", "validation", "from", "path"],
            [(v.table, v.version, v.operation, v.snapshot_id, v.validation_id[:12],
              v.published_from, v.path) for v in versions],
            OutputFormat.table,
        )  # fmt: skip
        return
    if not tables or not to:
        raise fail("Name the tables to publish and --to URI (or use --list URI).", 2)

    def said(p) -> None:
        if p.mode == "unchanged":
            console.print(f"{p.table}@{p.snapshot_id}: already published at {p.path}, "
                          "nothing committed.", highlight=False)  # fmt: skip
        else:
            console.print(
                f"{p.table}@{p.snapshot_id} -> {p.path}: Delta version {p.version} ({p.mode}, "
                f"{p.rows} rows" + (f", validation {p.validation_id[:12]}" if p.validation_id
                                    else "") + ")",
                highlight=False,
            )  # fmt: skip

    spark = spark_session()
    try:
        run_publish(spark, tables, to, snapshot, on_table=said)
    except (PublishError, SnapshotError) as err:
        raise fail(str(err), 2) from err
