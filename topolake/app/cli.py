"""The `topolake` command line: it parses arguments, calls the library, formats the result.

The work is in `topolake.app.pipeline` (and the stages under it); every error they raise is a
`TopolakeError` whose message is one sentence, printed once by `_command` with its exit code.
"""

from __future__ import annotations

import functools
import os
import sys
import time
from collections.abc import Callable
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from ml.spec import DEFAULT_PATIENCE
from topolake.app import pipeline
from topolake.app.console import (
    ConsoleHooks,
    OutputFormat,
    console,
    keep_library_noise_out,
    print_rows,
    progress_interval,
)
from topolake.app.queries import TABLE_ROWS
from topolake.core.errors import TopolakeError, UsageError
from topolake.core.settings import Settings, load_settings
from topolake.core.vocabulary import ENGINES, LAYERS, MODELS, SAMPLE_LABELS

app = typer.Typer(
    help="topolake: a lakehouse for LHC event-topology classification.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
hooks = ConsoleHooks()

Sample = StrEnum("Sample", {name: name for name in SAMPLE_LABELS})
Layer = StrEnum("Layer", {name: name for name in LAYERS})
Model = StrEnum("Model", {name: name for name in MODELS})
Engine = StrEnum("Engine", {name: name for name in ENGINES})


def say(text: str, style: str | None = None) -> None:
    console.print(text, style=style, highlight=False, markup=False)


def _print_error(err: TopolakeError) -> None:
    hooks.error(str(err))  # in the run's log too, while one is open


def _command(name: str | None = None, group: typer.Typer = app) -> Callable:
    """A Typer command whose `TopolakeError`s become one red sentence and their exit code."""

    def register(function: Callable) -> Callable:
        @functools.wraps(function)
        def guarded(*args, **kwargs):
            try:
                return function(*args, **kwargs)
            except TopolakeError as err:
                _print_error(err)
                raise typer.Exit(err.exit_code) from err

        return group.command(name)(guarded)

    return register


def _settings(ctx: typer.Context) -> Settings:
    return ctx.obj


def _spark(ctx: typer.Context):
    from topolake.core.spark import get_spark

    return get_spark(_settings(ctx))


@app.callback()
def main(
    ctx: typer.Context,
    master: Annotated[
        str | None, typer.Option(help="Spark master, e.g. spark://host:7077 (env SPARK_MASTER).")
    ] = None,
    home: Annotated[
        str | None,
        typer.Option(help="Where tables and state live (env TOPOLAKE_HOME, default ./lakehouse)."),
    ] = None,
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose",
            envvar="TOPOLAKE_VERBOSE",
            help="Let TensorFlow's C++ notices and dbt's colours through.",
        ),
    ] = False,
) -> None:
    keep_library_noise_out(verbose)  # before TensorFlow, dbt or a Spark JVM loads
    try:
        hooks.interval = progress_interval()
        ctx.obj = load_settings(master=master, home=home)
    except TopolakeError as err:
        _print_error(err)
        raise typer.Exit(err.exit_code) from err


@_command()
def ingest(
    ctx: typer.Context,
    sources: Annotated[
        list[str], typer.Argument(help="ROOT files, directories, globs or root://host:port//path.")
    ],
    sample: Annotated[str, typer.Option(help="Sample name: qcd, ttbar, wjets, or your own.")],
    label: Annotated[int, typer.Option(help="Class label: 0 qcd, 1 ttbar, 2 wjets.")],
    step: Annotated[int, typer.Option(help="Entries per Spark task for large files.")] = 10_000,
) -> None:
    """Land Delphes events in lake.bronze.events (idempotent; bad files are quarantined)."""
    outcome = pipeline.ingest(_spark(ctx), sources, sample, label, step, hooks)
    for survey in outcome.landed:
        absent = survey.absent_fields
        say(
            f"landed {survey.path}: {survey.entries} events"
            + (f" (without the optional {', '.join(absent)}: null)" if absent else "")
        )
    for path, why in outcome.skipped:
        say(f"skipped {path}: {why}, nothing added", "yellow")
    for survey in outcome.rejected:
        say(f"rejected {survey.path} {survey.reason}.", "bold red")
    say(
        f"ingest {outcome.ingest_id}: {outcome.events} events from {len(outcome.landed)} file(s) "
        f"landed in lake.bronze.events"
        + (f" (snapshot {outcome.snapshot_id})" if outcome.snapshot_id else "")
        + f", {len(outcome.skipped)} skipped, {len(outcome.rejected)} rejected"
        + (" (see lake.bronze.rejected_files)" if outcome.rejected else "")
        + "."
    )
    if outcome.rejected:
        raise typer.Exit(1)


@_command()
def simulate(
    ctx: typer.Context,
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

    files = files or generation.default_workers()
    planned = generation.plan(sample.value, events, out, seed, files, isolation_filter)
    started = time.perf_counter()
    results = pipeline.simulate(planned, _spark(ctx) if spark else None, hooks)
    elapsed = time.perf_counter() - started
    for result in results:
        say(f"{result.path}: " + ("exists, kept" if result.skipped else f"{result.events} events"))
    if made := [r for r in results if not r.skipped]:
        generated = sum(r.generated for r in made)
        passed = sum(r.passed for r in made)
        redecays = max(r.redecays for r in made)
        say(
            f"{sample.value}: {sum(r.events for r in made)} events stored; the lepton filter "
            f"accepted {passed} of {generated} generated ({passed / generated:.1%})"
            + (f", hard events decayed {redecays} times each" if redecays > 1 else "")
            + f"; {elapsed:.0f} s"
        )
    if plots:
        for path in plot_samples(out, out / "plots"):
            say(f"plot {path}")


@_command()
def validate(
    ctx: typer.Context,
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
        raise UsageError("--snapshot needs --layer: a snapshot id belongs to one layer's tables.")
    spark = _spark(ctx)
    for name in [layer] if layer else list(Layer):
        validation = pipeline.validate(spark, _settings(ctx), str(name), snapshot, hooks)
    say(f"Data Docs: {validation.data_docs}")


@_command()
def build(
    ctx: typer.Context,
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
    spark, settings = _spark(ctx), _settings(ctx)
    if skip_validation:
        say("warning: building without the quality gates.", "bold yellow")
    if select:
        pipeline.dbt_build(
            settings, [*(["--full-refresh"] if full_refresh else []), "--select", select], hooks
        )
        for layer in [] if skip_validation else ["silver", "gold"]:
            pipeline.validate(spark, settings, layer, hooks=hooks)
    else:
        pipeline.build_lakehouse(spark, settings, full_refresh, skip_validation, hooks)


@_command()
def train(
    ctx: typer.Context,
    model: Annotated[Model, typer.Option(help="Which classifier.")] = Model.hlf,
    engine: Annotated[
        Engine, typer.Option(help="Training engine on Spark (rf and xgboost use Spark ML).")
    ] = Engine.tf,
    workers: Annotated[
        int, typer.Option(min=1, help="Spark tasks: TF or XGBoost workers, rf's partitions.")
    ] = 1,
    epochs: Annotated[int, typer.Option(min=1, help="At most this many epochs.")] = 5,
    patience: Annotated[
        int,
        typer.Option(min=1, help="Stop after this many epochs without a lower validation loss."),
    ] = DEFAULT_PATIENCE,
    batch_size: Annotated[int, typer.Option(min=1, help="Per-worker batch size.")] = 128,
    max_particles: Annotated[
        int, typer.Option(min=1, max=801, help="Sequence length after padding.")
    ] = 801,
    learning_rate: Annotated[float, typer.Option(min=0.0)] = 1e-3,
    hidden: Annotated[
        str, typer.Option(help="The HLF classifier's Dense widths, comma-separated.")
    ] = "50,20,10",
    seed: Annotated[int, typer.Option()] = 0,
    fraction: Annotated[
        float,
        typer.Option(
            min=0.001,
            max=1.0,
            help="Fit on this share of the training split (less its validation fifth), "
            "0.001 to 1: learning curves.",
        ),
    ] = 1.0,
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
    """Train a classifier on a pinned, validated gold snapshot; track it in MLflow.

    It fits on the training split less a fixed fifth of it, stops early on that fifth's loss
    and keeps the best epoch's weights; the test split is for `topolake evaluate` only. The
    reference's baselines on the HLF, rf (a random forest) and xgboost, train with Spark ML
    (xgboost stops early too)."""
    from ml.baselines import refuse_engine
    from ml.models import Architecture
    from ml.spec import TrainSpec

    refuse_engine(str(model), str(engine))

    if engine == Engine.bigdl:  # before Spark starts and the extract is written
        from ml.bigdl_engine import check_bigdl_model

        check_bigdl_model(str(model))
    try:
        widths = tuple(int(w) for w in hidden.split(","))
    except ValueError:
        raise UsageError(f"--hidden {hidden!r} is not a comma-separated list of widths.") from None
    spec = TrainSpec(
        str(model),
        epochs,
        batch_size,
        max_particles,
        learning_rate,
        seed,
        Architecture(hidden=widths),
        patience,
        fraction,
    )
    spark, settings = _spark(ctx), _settings(ctx)
    data = pipeline.training_extract(spark, settings, snapshot, skip_validation, workers, hooks)
    trained = pipeline.train(spark, settings, spec, data, str(engine), workers, hooks)
    say(f"MLflow run {trained.run_id}")


@_command()
def tune(
    ctx: typer.Context,
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
    from ml.tuning import load_grid

    search = load_grid(grid, str(model) if model else None, fraction)
    spark, settings = _spark(ctx), _settings(ctx)
    data = pipeline.training_extract(spark, settings, snapshot, hooks=hooks)
    pipeline.tune(spark, settings, search, data, seed, parallelism, hooks)


@_command()
def evaluate(
    ctx: typer.Context,
    run: Annotated[
        str | None, typer.Argument(help="MLflow run id; default: the latest training run.")
    ] = None,
) -> None:
    """Evaluate a training run on its test split: accuracy, ROC/AUC, confusion, plots."""
    evaluation = pipeline.evaluate(_spark(ctx), _settings(ctx), run, hooks)
    say(f"plots: {Path(evaluation.plots['roc']).parent}")


@_command("run")
def run_all(
    ctx: typer.Context,
    events: Annotated[int, typer.Option(min=1, help="Simulated events per sample.")] = 2000,
    epochs: Annotated[int, typer.Option(min=1, help="At most this many epochs per model.")] = 5,
    patience: Annotated[
        int,
        typer.Option(min=1, help="Stop after this many epochs without a lower validation loss."),
    ] = DEFAULT_PATIENCE,
    seed: Annotated[int, typer.Option(help="Simulation seed.")] = 1,
    grid: Annotated[
        Path | None, typer.Option(help="Grid searched for the HLF model (default: hlf-small).")
    ] = None,
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
    settings = _settings(ctx)
    options = pipeline.PipelineOptions(events, epochs, seed, grid, max_particles, patience)
    log = settings.logs_dir / f"run-{datetime.now():%Y%m%d-%H%M%S}.log"
    started = time.perf_counter()
    with hooks.run_log(log):  # written as the run goes: `tail -f` follows it
        try:
            result = pipeline.run_pipeline(lambda: _spark(ctx), settings, options, hooks)
        except TopolakeError as err:  # in the run's log too
            _print_error(err)
            raise typer.Exit(err.exit_code) from err
    console.rule(f"done in {time.perf_counter() - started:.0f} s")
    say(f"report: {result.report}\nlakehouse: {settings.home}\nlog: {log}")


@_command()
def sql(
    ctx: typer.Context,
    query: Annotated[str, typer.Argument(help="A Spark SQL query; tables live in catalog lake.")],
    format: Annotated[OutputFormat, typer.Option(help="Output format.")] = OutputFormat.table,
    limit: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="At most this many rows (default: every row for csv and json, "
            f"{TABLE_ROWS} for the table view; 0: no limit).",
        ),
    ] = None,
) -> None:
    """Run a SQL query on the lakehouse and print the result."""
    from topolake.app.queries import query_rows

    result = query_rows(_spark(ctx), query, limit, format is OutputFormat.table)
    try:
        print_rows(result.columns, result.rows, format)
    except BrokenPipeError:  # `| head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit
        raise typer.Exit(0) from None
    if result.total is not None:
        say(f"showing {result.shown:,} of {result.total:,} rows (--limit 0 shows all)", "yellow")


@_command()
def snapshots(
    ctx: typer.Context,
    table: Annotated[str, typer.Argument(help="A table, e.g. bronze.events.")],
    format: Annotated[OutputFormat, typer.Option(help="Output format.")] = OutputFormat.table,
) -> None:
    """List a table's snapshots: ids, times, operations, rows added and in total."""
    from topolake.app.queries import SNAPSHOT_COLUMNS, snapshot_rows

    print_rows(list(SNAPSHOT_COLUMNS), snapshot_rows(_spark(ctx), table), format)


class PublishFormat(StrEnum):
    delta = "delta"


@_command()
def publish(
    ctx: typer.Context,
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
    from publish.delta import publish as publish_tables
    from publish.delta import published

    if list_:
        if not (versions := published(list_)):
            raise UsageError(f"No Delta table is published under {list_}.")
        print_rows(
            ["table", "version", "operation", "iceberg_snapshot", "validation", "from", "path"],
            [
                (
                    v.table,
                    v.version,
                    v.operation,
                    v.snapshot_id,
                    v.validation_id[:12],
                    v.published_from,
                    v.path,
                )
                for v in versions
            ],
        )
        return
    if not tables or not to:
        raise UsageError("Name the tables to publish and --to URI (or use --list URI).")

    def said(p) -> None:
        if p.mode == "unchanged":
            say(f"{p.table}@{p.snapshot_id}: already published at {p.path}, nothing committed.")
            return
        validation = f", validation {p.validation_id[:12]}" if p.validation_id else ""
        say(
            f"{p.table}@{p.snapshot_id} -> {p.path}: Delta version {p.version} ({p.mode}, "
            f"{p.rows} rows{validation})"
        )

    publish_tables(_spark(ctx), tables, to, snapshot, on_table=said)


cluster = typer.Typer(help="A Spark standalone cluster on this machine.", no_args_is_help=True)
services = typer.Typer(
    help="PostgreSQL (shared catalog), MLflow and Thrift servers for a team.", no_args_is_help=True
)
app.add_typer(cluster, name="cluster")
app.add_typer(services, name="services")


@_command("start", cluster)
def cluster_start(
    ctx: typer.Context,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 2,
    cores: Annotated[int, typer.Option(min=1, help="Cores per worker.")] = 1,
    memory: Annotated[str, typer.Option(help="Memory per worker, e.g. 2g.")] = "2g",
    port: Annotated[int, typer.Option(help="The master's port.")] = 7077,
    webui_port: Annotated[int, typer.Option(help="The master's web UI port.")] = 8080,
) -> None:
    """Start pyspark's standalone master and workers on 127.0.0.1 (PIDs and logs in the home)."""
    from topolake.app.services import start_cluster

    url = start_cluster(_settings(ctx), workers, cores, memory, port, webui_port)
    say(f"master {url} with {workers} worker(s); web UI http://127.0.0.1:{webui_port}")
    say(
        f"use it: export SPARK_MASTER={url} TOPOLAKE_CORES_MAX={workers * cores}  "
        "(or topolake --master URL ...; BigDL needs the total cores)"
    )


def _print_running(ctx: typer.Context) -> None:
    from topolake.app.services import running

    rows = [
        (r.name, r.pid, "running" if r.is_alive() else "DEAD", r.url, r.log)
        for r in running(_settings(ctx).home).values()
    ]
    print_rows(["service", "pid", "state", "address", "log"], rows)


@_command("status", cluster)
def cluster_status(ctx: typer.Context) -> None:
    """Show the cluster's processes (and the team services, if any)."""
    _print_running(ctx)


@_command("stop", cluster)
def cluster_stop(ctx: typer.Context) -> None:
    """Stop the workers and the master by PID."""
    from topolake.app.services import stop

    stopped = stop(_settings(ctx).home, ["worker", "master"])
    say(f"stopped {', '.join(stopped) or 'nothing (none was running)'}")


@_command("start", services)
def services_start(
    ctx: typer.Context,
    postgres_port: Annotated[int, typer.Option(help="PostgreSQL's port.")] = 5433,
    mlflow_port: Annotated[int, typer.Option(help="The MLflow server's port.")] = 5000,
    thrift_port: Annotated[int, typer.Option(help="The writers' Thrift Server port.")] = 10000,
    analyst_port: Annotated[
        int, typer.Option(help="The analysts' (read-only) Thrift Server port.")
    ] = 10001,
) -> None:
    """Start PostgreSQL (the Iceberg JDBC catalog, MLflow's store), an MLflow server and two
    Spark Thrift Servers (writers; analysts, read-only) on 127.0.0.1."""
    from topolake.app.services import start_services

    team = start_services(_settings(ctx), postgres_port, mlflow_port, thrift_port, analyst_port)
    say(f"PostgreSQL catalog {team.credentials.catalog_uri()}")
    say(f"MLflow {team.mlflow.url}")
    say(f"SQL (writers) {team.thrift.url}; SQL (analysts, read-only) {team.analyst_thrift.url}")
    say('use them: eval "$(topolake services env)"')


@_command("env", services)
def services_env(ctx: typer.Context) -> None:
    """Print the export lines that point topolake at the running services."""
    import shlex

    from topolake.app.services import services_environment

    for key, value in services_environment(_settings(ctx).home).items():
        print(f"export {key}={shlex.quote(value)}")


@_command("status", services)
def services_status(ctx: typer.Context) -> None:
    """Show the services' processes, addresses and logs."""
    _print_running(ctx)


@_command("stop", services)
def services_stop(ctx: typer.Context) -> None:
    """Stop the Thrift Servers, MLflow and PostgreSQL by PID."""
    from topolake.app.services import stop

    stopped = stop(_settings(ctx).home, ["thrift", "mlflow", "postgres"])
    say(f"stopped {', '.join(stopped) or 'nothing (none was running)'}")
