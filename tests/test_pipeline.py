"""`topolake run` end to end on a tiny configuration, then again: every artefact is there and
filled in, and the second run reuses what exists and only retrains."""

from __future__ import annotations

import re
import shutil

import pytest

from tests.helpers import run_topolake
from topolake.app.pipeline import (
    IngestRejected,
    PipelineOptions,
    QuietHooks,
    StageFailed,
    run_pipeline,
)
from topolake.core.settings import load_settings

pytestmark = pytest.mark.slow
TINY = ("run", "--events", "200", "--epochs", "1", "--max-particles", "64")


def sql(spark, home, query: str) -> list[dict]:
    """`query` on the tables of the lakehouse at `home`, read by path in this process (a
    `topolake sql` process per query would start a JVM each time)."""

    def view(name: re.Match) -> str:
        layer, table = name.groups()
        path = home / "warehouse" / layer / table
        spark.read.format("iceberg").load(str(path)).createOrReplaceTempView(f"{layer}_{table}")
        return f"{layer}_{table}"

    return [r.asDict() for r in spark.sql(re.sub(r"lake\.(\w+)\.(\w+)", view, query)).collect()]


def test_the_pipeline_runs_end_to_end_and_a_second_run_only_retrains(spark, tmp_path):
    home = tmp_path / "lakehouse"
    first = run_topolake(*TINY, home=home, cwd=tmp_path, timeout=1200)
    assert first.returncode == 0, first.stderr[-3000:]
    # no --verbose: neither TensorFlow's start-up notices nor dbt's colours
    output = first.stdout + first.stderr
    assert not re.search(r"oneDNN custom operations|cuda drivers|cuInit|\x1b\[", output)
    for number, stage in enumerate(
        ["simulate", "ingest", "build", "tune", "train", "evaluate", "report"], 1
    ):
        assert f"stage {number}/7: {stage}" in first.stderr

    # tables, per class, through every layer
    counts = sql(
        spark, home, "SELECT sample, count(*) AS n FROM lake.gold.training_set GROUP BY sample"
    )
    assert {r["sample"] for r in counts} == {"qcd", "ttbar", "wjets"}
    assert sql(spark, home, "SELECT count(*) AS n FROM lake.bronze.events")[0]["n"] == 600
    # every layer validated, all passed
    validations = sql(spark, home, "SELECT table_name, success FROM lake.quality.validations")
    assert len({v["table_name"] for v in validations}) == 5
    assert all(v["success"] for v in validations)
    # the tuning table: the small grid's four points
    assert len(sql(spark, home, "SELECT * FROM lake.ml.tuning_results")) == 4

    # MLflow: two evaluated training runs and a search with its child runs
    import mlflow

    from topolake.core.settings import load_settings

    mlflow.set_tracking_uri(load_settings(home=home).tracking_uri)
    runs = mlflow.search_runs(experiment_names=["topolake"], output_format="list")
    trained = [r for r in runs if r.data.tags.get("topolake.kind") == "train"]
    assert sorted(r.data.params["model"] for r in trained) == ["hlf", "inclusive"]
    assert all("test_auc_ttbar" in r.data.metrics for r in trained)
    assert sum(r.data.tags.get("topolake.kind") == "tune-point" for r in runs) == 4

    # the report: self-contained, images inlined, numbers filled in
    report = home / "report" / "report.html"
    html = report.read_text()
    assert html.count("data:image/png;base64,") >= 9  # features + 4 per model
    for png in ("features", "hlf-roc", "inclusive-roc", "hlf-selectors", "inclusive-loss"):
        assert (report.parent / f"{png}.png").stat().st_size > 10_000
    hlf = next(r for r in trained if r.data.params["model"] == "hlf")
    assert f"{hlf.data.metrics['test_auc_ttbar']:.4f}" in html
    assert "0.9855" in html  # the reference's HLF tt̄ AUC beside it
    assert hlf.info.run_id in html and hlf.data.tags["topolake.validation_id"] in html
    assert re.search(r"<td>simulate</td><td>\d+\.\d</td>", html)
    text = re.sub(r"data:image/png;base64,[^\"]+", "", html)
    assert not re.search(r"\bnan\b|\bNone\b", text)

    second = run_topolake(*TINY, home=home, cwd=tmp_path, timeout=1200)
    assert second.returncode == 0, second.stderr[-3000:]
    assert second.stderr.count("0 events generated") == 3
    assert second.stderr.count("0 events landed") == 3
    assert "not rebuilt" in second.stderr
    assert "4 of 4 points were already done" in second.stderr
    runs = mlflow.search_runs(
        experiment_names=["topolake"],
        output_format="list",
        filter_string="tags.`topolake.kind` = 'train'",
    )
    assert len(runs) == 4
    assert sql(spark, home, "SELECT count(*) AS n FROM lake.bronze.events")[0]["n"] == 600


def test_a_failing_stage_stops_the_run_with_its_message_and_log(tmp_path, shared_delphes):
    home = tmp_path / "lakehouse"
    truncated = home / "simulated" / "qcd" / "truncated.root"
    truncated.parent.mkdir(parents=True)
    truncated.write_bytes((shared_delphes / "cms_card_10_events.root").read_bytes()[:20_000])
    failed = run_topolake("run", "--events", "2", home=home, cwd=tmp_path)
    assert failed.returncode == 1
    assert "stage ingest failed" in failed.stderr and "stage 3/7" not in failed.stderr
    assert f"rejected {truncated}" in failed.stderr
    (log,) = (home / "logs").glob("run-*.log")
    written = log.read_text()
    assert str(log.parent) in failed.stderr and "stage ingest failed" in written
    # progress as plain lines, whatever the console was; no escape codes
    assert re.search(r"^simulating 2 ttbar events: 2/2 done in \d+ s", written, re.MULTILINE)
    assert "\x1b[" not in written and "━" not in written


def test_a_bad_grid_is_refused_before_any_stage_runs(tmp_path):
    grid = tmp_path / "grid.yaml"
    grid.write_text("grid: [1, 2]\n")
    refused = run_topolake("run", "--grid", str(grid), home=tmp_path / "lh", cwd=tmp_path)
    assert refused.returncode == 2 and "stage 1/7" not in refused.stderr
    assert f"grid file {grid} has no `grid:` mapping" in refused.stderr


class RecordingHooks(QuietHooks):
    """The pipeline's hooks, kept: what a notebook or a scheduler would see."""

    def __init__(self) -> None:
        self.stages: list[str] = []
        self.lines: list[str] = []

    def stage(self, number: int, total: int, name: str) -> None:
        self.stages.append(f"{number}/{total} {name}")

    def line(self, text: str, style: str | None = None) -> None:
        self.lines.append(text)


def test_the_pipeline_runs_from_python_and_a_failing_stage_raises_with_its_cause(
    lake, topolake_home, shared_delphes
):
    simulated = topolake_home / "simulated"
    truncated = simulated / "qcd" / "truncated.root"
    truncated.parent.mkdir(parents=True)
    truncated.write_bytes((shared_delphes / "cms_card_10_events.root").read_bytes()[:20_000])
    hooks = RecordingHooks()
    try:
        with pytest.raises(StageFailed) as failed:
            run_pipeline(
                lambda: lake, load_settings(home=topolake_home), PipelineOptions(events=2), hooks
            )
    finally:
        shutil.rmtree(simulated)
    assert failed.value.stage == "ingest" and failed.value.exit_code == 1
    assert isinstance(failed.value.cause, IngestRejected)
    assert f"rejected {truncated}" in str(failed.value)
    assert hooks.stages == ["1/7 simulate", "2/7 ingest"]
    assert sum("events generated" in line for line in hooks.lines) == 3
