"""The pipeline as a library: every stage as a function that returns its result.

A notebook, a scheduler or the CLI calls these. They say what they do through the `Hooks` they
are given (lines, progress bars, Spark jobs; `console.ConsoleHooks` prints them, `QuietHooks`
drops them) and they raise the stages' own errors, all `TopolakeError`s with a one-sentence
message; `run_pipeline` wraps a stage's failure in `StageFailed(stage, cause)`. Nothing here
exits the process or knows of Typer.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from topolake.core.errors import TopolakeError
from topolake.core.settings import Settings
from topolake.core.tables import BRONZE_EVENTS, LAYER_TABLES
from topolake.core.vocabulary import BASELINES, SAMPLE_LABELS

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from expectations.validate import LayerValidation
    from ingestion.bronze import IngestOutcome
    from ml.data import Extract
    from ml.evaluate import Evaluation
    from ml.spec import TrainSpec
    from ml.training import TrainedRun
    from ml.tuning import Grid, TuningOutcome
    from simulation.tasks import Task, TaskResult
    from topolake.app.dbt_runner import BuildResult

#: The stages of `run_pipeline`, in order.
STAGES = ("simulate", "ingest", "build", "tune", "train", "evaluate", "report")


class Hooks(Protocol):
    """How the library tells what it is doing. Lines are plain text, one event each."""

    def line(self, text: str, style: str | None = None) -> None: ...

    def stage(self, number: int, total: int, name: str) -> None: ...

    def table(self, columns: list[str], rows: list[tuple]) -> None: ...

    def counter(
        self, description: str, total: int
    ) -> AbstractContextManager[Callable[[int], None]]:
        """A progress count to `total`; the context gives the function that advances it."""
        ...

    def spark_jobs(self, spark: SparkSession, description: str) -> AbstractContextManager[None]:
        """Show the progress of the Spark jobs started inside the block."""
        ...

    def waiting(self, description: str) -> AbstractContextManager[None]:
        """Something that takes a while and has no count."""
        ...


class QuietHooks:
    """Hooks that say nothing: for schedulers and tests that only want the results."""

    def line(self, text: str, style: str | None = None) -> None:
        pass

    def stage(self, number: int, total: int, name: str) -> None:
        pass

    def table(self, columns: list[str], rows: list[tuple]) -> None:
        pass

    @contextmanager
    def counter(self, description: str, total: int) -> Iterator[Callable[[int], None]]:
        yield lambda n: None

    def spark_jobs(self, spark: SparkSession, description: str) -> AbstractContextManager[None]:
        return nullcontext()

    def waiting(self, description: str) -> AbstractContextManager[None]:
        return nullcontext()


def _default(hooks: Hooks | None) -> Hooks:
    if hooks is not None:
        return hooks
    from topolake.app.console import ConsoleHooks

    return ConsoleHooks()


class StageFailed(TopolakeError):
    """A stage of `run_pipeline` stopped; `cause` is the stage's own error."""

    def __init__(self, stage: str, cause: BaseException, logs: str = ""):
        self.stage, self.cause = stage, cause
        detail = str(cause).strip().splitlines()[0] if str(cause).strip() else repr(cause)
        super().__init__(f"stage {stage} failed: {detail}" + (f"; {logs}" if logs else ""))


class QualityGateFailed(TopolakeError):
    """A layer's critical expectations failed; the validation holds the details."""

    def __init__(self, validation: LayerValidation):
        self.validation = validation
        failed = ", ".join(t.table for t in validation.tables if not t.success)
        super().__init__(
            f"the {validation.layer} quality gate failed on {failed}; "
            f"Data Docs: {validation.data_docs}"
        )


class IngestRejected(TopolakeError):
    """The pipeline's own simulated files must all land; one did not."""


class TuningFailed(TopolakeError):
    """Some grid points failed; the ones that trained are recorded, the rest retried next time."""


# --- simulate ------------------------------------------------------------------------------


def simulate(
    tasks: list[Task], spark: SparkSession | None = None, hooks: Hooks | None = None
) -> list[TaskResult]:
    """Generate the planned files on this machine's cores, or as Spark tasks if given `spark`."""
    from simulation import tasks as generation

    hooks = _default(hooks)
    events = sum(t.events for t in tasks)
    description = f"simulating {events} {tasks[0].sample} events" if tasks else "simulating"
    if spark is not None:
        with hooks.spark_jobs(spark, description):
            return generation.generate_on_spark(spark, tasks)
    with hooks.counter(description, events) as advance:
        return generation.generate_locally(tasks, generation.default_workers(), advance)


# --- ingest --------------------------------------------------------------------------------


def ingest(
    spark: SparkSession,
    sources: list[str],
    sample: str,
    label: int,
    step: int | None = None,
    hooks: Hooks | None = None,
) -> IngestOutcome:
    """Land Delphes files in bronze (idempotent; bad files quarantined), showing its jobs."""
    from ingestion import bronze

    hooks = _default(hooks)

    def watch(description: str) -> AbstractContextManager[None]:
        return hooks.spark_jobs(spark, description)

    return bronze.ingest(
        spark,
        sources,
        sample=sample,
        label=label,
        step=bronze.DEFAULT_STEP if step is None else step,
        watch=watch,
    )


# --- build and validate ----------------------------------------------------------------------


def validate(
    spark: SparkSession,
    settings: Settings,
    layer: str,
    snapshot: str | None = None,
    hooks: Hooks | None = None,
) -> LayerValidation:
    """Validate a layer's tables at a snapshot; a failing gate raises `QualityGateFailed`."""
    from expectations.validate import validate_layer

    hooks = _default(hooks)
    validation = validate_layer(spark, settings, layer, snapshot)
    for t in validation.tables:
        if not t.success:
            mark, style = "FAILED", "bold red"
        elif t.warnings:
            mark, style = f"passed with {len(t.warnings)} warning(s)", "yellow"
        else:
            mark, style = "passed", "green"
        hooks.line(
            f"{t.table}@{t.snapshot_id} (suite {t.suite}): {mark}, "
            f"{t.evaluated - len(t.failed)}/{t.evaluated} expectations met",
            style,
        )
        for failure in t.failures[:5]:
            hooks.line(f"    {failure.sentence()}")
        for warning in t.warnings[:5]:
            hooks.line(f"    warning (a producer assumption): {warning.sentence()}")
    if not validation.success:
        raise QualityGateFailed(validation)
    return validation


def dbt_build(settings: Settings, args: list[str], hooks: Hooks | None = None) -> BuildResult:
    """`dbt build` with `args`, one line per model built."""
    from topolake.app.dbt_runner import invoke_dbt

    hooks = _default(hooks)
    result = invoke_dbt(settings, "build", *args)
    models = [n for n in result.nodes if n[0].startswith("model.")]
    tests = [n for n in result.nodes if n[0].startswith("test.")]
    for name, status, seconds in models:
        hooks.line(f"{name.split('.')[-1]:>22}: {status} in {seconds:.1f} s")
    hooks.line(f"{len(models)} models built, {len(tests)} dbt tests passed.")
    return result


def layer_selection(layer: str) -> str:
    """dbt's selection for a layer; silver's includes the tests on the bronze source."""
    return "source:bronze silver" if layer == "silver" else layer


def build_lakehouse(
    spark: SparkSession,
    settings: Settings,
    full_refresh: bool = False,
    skip_validation: bool = False,
    hooks: Hooks | None = None,
) -> dict[str, float]:
    """bronze gate -> silver -> silver gate -> gold -> gold gate; the first failure stops it.

    Returns the seconds each step took.
    """
    from ingestion.bronze import migrate
    from topolake.app.dbt_runner import built_before_content_identity

    hooks = _default(hooks)
    if spark.catalog.tableExists(BRONZE_EVENTS) and migrate(spark):
        hooks.line("bronze upgraded: events are identified by (content_hash, entry) now.")
    if not full_refresh and (outdated := built_before_content_identity(spark)):
        hooks.line(
            f"{', '.join(outdated)} predate(s) events identified by content: "
            "rebuilding silver and gold from all of bronze (--full-refresh)."
        )
        full_refresh = True
    refresh = ["--full-refresh"] if full_refresh else []
    timings: dict[str, float] = {}
    steps = [
        ("validate", "bronze"),
        ("build", "silver"),
        ("validate", "silver"),
        ("build", "gold"),
        ("validate", "gold"),
    ]
    for action, layer in steps:
        if action == "validate" and skip_validation:
            continue
        started = time.perf_counter()
        if action == "build":
            # buildable: a test runs with the layer only when all it reads is built by then
            selection = ["--select", layer_selection(layer), "--indirect-selection", "buildable"]
            dbt_build(settings, [*refresh, *selection], hooks)
        else:
            validate(spark, settings, layer, hooks=hooks)
        timings[f"{action} {layer}"] = time.perf_counter() - started
    return timings


def gold_is_validated(spark: SparkSession) -> bool:
    """Whether the current gold snapshots are the newest with a passing validation."""
    from expectations.records import latest_passed
    from expectations.snapshots import SnapshotError, resolve

    try:
        passed = latest_passed(spark, "gold")
        return passed is not None and passed.snapshots == resolve(spark, LAYER_TABLES["gold"], None)
    except SnapshotError:
        return False


def sample_counts(spark: SparkSession) -> tuple[list[str], list[tuple]]:
    """Events per sample through the layers: bronze, selected, train/test, efficiency."""
    from topolake.app.report import sample_table

    columns = ["sample", "bronze events", "selected", "train", "test", "selection efficiency"]
    rows = [
        (r["sample"], r["events"], r["selected"], r["train"], r["test"], f"{r['efficiency']:.1%}")
        for r in sample_table(spark)
    ]
    return columns, rows


# --- train, tune, evaluate -----------------------------------------------------------------


def training_extract(
    spark: SparkSession,
    settings: Settings,
    snapshot: str | None = None,
    skip_validation: bool = False,
    workers: int = 1,
    hooks: Hooks | None = None,
) -> Extract:
    """The extract of the pinned gold snapshot, after refusing settings that cannot train."""
    from ml.data import extract, pin_gold
    from ml.tf_engine import check_workers

    hooks = _default(hooks)
    check_workers(spark, workers)
    gold = pin_gold(spark, snapshot, skip_validation)
    if gold.validation_id is None:
        hooks.line(
            "warning: training on a gold snapshot WITHOUT a passing validation "
            "(--skip-validation); the run records it.",
            "bold yellow",
        )
    with hooks.waiting("preparing the training extract"):
        data = extract(spark, settings, gold)
    hooks.line(
        f"gold snapshots {gold.snapshots} (validation {gold.validation_id or 'skipped'}): "
        f"{data.events.get('train', 0)} training, {data.events.get('test', 0)} test events"
    )
    return data


def train(
    spark: SparkSession,
    settings: Settings,
    spec: TrainSpec,
    data: Extract,
    engine: str = "tf",
    workers: int = 1,
    hooks: Hooks | None = None,
) -> TrainedRun:
    """Train one model, a line per epoch, and track it in MLflow."""
    from ml.training import train_and_track

    hooks = _default(hooks)
    baseline = spec.model in BASELINES  # Spark ML: it says how it went in its own lines
    hooks.line(f"training {spec.model} with {'Spark ML' if baseline else engine} x {workers}")
    trained = train_and_track(
        spark, settings, spec, engine, workers, data, lambda line: hooks.line(f"  {line}")
    )
    result = trained.result
    if baseline:
        hooks.line(
            f"trained {spec.model} with Spark ML x {workers} in {result.seconds:.1f} s, "
            f"{result.samples_per_second:,.0f} samples/s"
        )
        return trained
    hooks.line(
        f"trained {spec.model} with {engine} x {workers} ({result.replicas} replicas in sync) "
        f"in {result.seconds:.1f} s, {result.samples_per_second:,.0f} samples/s"
    )
    stopped = "stopped early" if result.epochs_run < spec.epochs else "no early stop"
    hooks.line(
        f"{result.epochs_run} of at most {spec.epochs} epochs ran ({stopped}, patience "
        f"{spec.patience}); kept the weights of epoch {result.best_epoch}, the lowest "
        "validation loss"
    )
    return trained


def tune(
    spark: SparkSession,
    settings: Settings,
    search: Grid,
    data: Extract,
    seed: int = 0,
    parallelism: int | None = None,
    hooks: Hooks | None = None,
) -> TuningOutcome:
    """A grid search on Spark, a line per point; failed points raise `TuningFailed` at the end
    (the others are recorded, so the same call again retries only those)."""
    from ml.tuning import train_arguments
    from ml.tuning import tune as search_grid

    hooks = _default(hooks)
    with hooks.counter(f"tune {search.model}", len(search.points)) as advance:

        def on_point(result, line: str) -> None:
            hooks.line(f"  {line}")
            advance(1)

        outcome = search_grid(spark, settings, search, data, seed, parallelism, on_point)
    if outcome.done_before:
        hooks.line(
            f"{outcome.done_before} of {len(search.points)} points were already done "
            "(lake.ml.tuning_results): not trained again."
        )
    if outcome.best:
        best = outcome.best
        hooks.line(
            f"best point: val AUC {best['val_auc']:.4f}, val loss {best['val_loss']:.4f}: "
            f"topolake train {' '.join(train_arguments(best))}"
        )
    if outcome.failed:
        raise TuningFailed(
            f"{len(outcome.failed)} point(s) failed; the first: {outcome.failed[0][1]} "
            "Run the same search again to retry them."
        )
    return outcome


def evaluate(
    spark: SparkSession, settings: Settings, run_id: str | None = None, hooks: Hooks | None = None
) -> Evaluation:
    """Score a training run (default: the latest) on its test split; log it to MLflow."""
    from ml.evaluate import COMPARISON_COLUMNS, comparison_rows, evaluate_run

    hooks = _default(hooks)
    with hooks.waiting("evaluating on the test split"):
        evaluation = evaluate_run(spark, settings, run_id)
    hooks.line(f"run {evaluation.run_id}: {evaluation.model} ({evaluation.engine})")
    hooks.table(list(COMPARISON_COLUMNS), comparison_rows([evaluation]))
    if evaluation.bootstrap:
        hooks.line(
            f"in brackets: 95 % intervals, a bootstrap over the {evaluation.events:,} test "
            f"events ({evaluation.bootstrap['replicates']} resamplings, seed "
            f"{evaluation.bootstrap['seed']})"
        )
    return evaluation


# --- the whole pipeline ----------------------------------------------------------------------


@dataclass(frozen=True)
class PipelineOptions:
    events: int = 2000  # simulated per sample
    epochs: int = 5  # per model
    seed: int = 1  # simulation seed
    grid: Path | None = None  # searched for the HLF model; default grids/hlf-small.yaml
    max_particles: int = 801  # the inclusive model's sequence length
    patience: int | None = None  # early stopping's; None: TrainSpec's default


@dataclass
class PipelineResult:
    report: Path
    evaluations: list[Evaluation]
    timings: dict[str, float] = field(default_factory=dict)


def default_grid() -> Path:
    from topolake.core.project import grids_dir

    return grids_dir() / "hlf-small.yaml"


@contextmanager
def _stage(name: str, hooks: Hooks, timings: dict[str, float], logs: str) -> Iterator[None]:
    hooks.stage(STAGES.index(name) + 1, len(STAGES), name)
    began = time.perf_counter()
    try:
        yield
    except Exception as err:
        raise StageFailed(name, err, logs) from err
    timings[name] = timings.get(name, 0.0) + time.perf_counter() - began


def run_pipeline(
    spark_factory: Callable[[], SparkSession],
    settings: Settings,
    options: PipelineOptions = PipelineOptions(),
    hooks: Hooks | None = None,
) -> PipelineResult:
    """simulate -> ingest -> build and validate -> tune -> train (HLF and inclusive) ->
    evaluate -> report, on `settings`' lakehouse.

    A second run reuses what exists: files with the same seed are not regenerated, files
    already landed are not ingested again, an unchanged validated gold is not rebuilt and grid
    points already done are not retrained; the models are trained afresh. The Spark session
    comes from `spark_factory` once simulation is done (simulation needs none).
    """
    from ml.tuning import load_grid
    from simulation import tasks as generation

    hooks = _default(hooks)
    search = load_grid(options.grid or default_grid(), "hlf")  # a bad grid stops it first
    timings: dict[str, float] = {}
    logs = f"the run's log: {settings.logs_dir}, dbt's: {settings.home / 'dbt' / 'logs'}"
    data_dir = settings.home / "simulated"

    with _stage("simulate", hooks, timings, logs):
        for sample in SAMPLE_LABELS:
            planned = generation.plan(
                sample, options.events, data_dir, options.seed, generation.default_workers()
            )
            results = simulate(planned, hooks=hooks)
            made = sum(r.events for r in results if not r.skipped)
            kept = sum(r.skipped for r in results)
            hooks.line(f"{sample}: {made} events generated, {kept} file(s) already there")
    spark = spark_factory()
    landed = 0
    with _stage("ingest", hooks, timings, logs):
        for sample, label in SAMPLE_LABELS.items():
            outcome = ingest(spark, [str(data_dir / sample)], sample, label, hooks=hooks)
            if outcome.rejected:
                bad = outcome.rejected[0]
                raise IngestRejected(f"ingest of {sample} rejected {bad.path}: {bad.reason}.")
            landed += len(outcome.landed)
            hooks.line(
                f"{sample}: {outcome.events} events landed from {len(outcome.landed)} file(s), "
                f"{len(outcome.skipped)} already landed"
            )
    with _stage("build", hooks, timings, logs):
        if landed == 0 and gold_is_validated(spark):
            hooks.line("nothing new landed and gold is validated: not rebuilt")
        else:
            timings.update(build_lakehouse(spark, settings, hooks=hooks))
        hooks.table(*sample_counts(spark))

    from ml.spec import TrainSpec
    from ml.tuning import point_key, spec_of
    from topolake.app.report import ReportInputs, write_report

    with _stage("tune", hooks, timings, logs):
        data = training_extract(spark, settings, hooks=hooks)
        outcome = tune(spark, settings, search, data, hooks=hooks)
        keys = [point_key(data, search, 0, p) for p in search.points]
    with _stage("train", hooks, timings, logs):
        sized = {"epochs": options.epochs, "max_particles": options.max_particles}
        if options.patience is not None:
            sized["patience"] = options.patience
        specs = [replace(spec_of(outcome.best), **sized), TrainSpec("inclusive", **sized)]
        trained = [train(spark, settings, spec, data, hooks=hooks) for spec in specs]
    with _stage("evaluate", hooks, timings, logs):
        evaluations = [evaluate(spark, settings, t.run_id, hooks) for t in trained]
    with _stage("report", hooks, timings, logs):
        report = write_report(spark, settings, ReportInputs(evaluations, keys, timings))
        hooks.line(f"report: {report}")
    return PipelineResult(report, evaluations, timings)
