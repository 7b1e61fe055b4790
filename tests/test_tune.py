"""Grid search on Spark: each point a Spark task, results in lake.ml.tuning_results, an
interrupted search resumes without retraining what is done, bad grids are refused."""

from __future__ import annotations

import json
import os
import signal
import subprocess

import pytest

from tests.helpers import TEST_MASTER, TOPOLAKE, run_topolake

pytestmark = pytest.mark.slow
GRID = """\
model: hlf
fraction: 0.5
grid:
  batch_size: [16, 32]
  epochs: [1]
  dense_1: [20, 40]
"""


def results(home, work) -> list[dict]:
    query = "SELECT point_key, params, mlflow_run_id, val_auc FROM lake.ml.tuning_results"
    done = run_topolake("sql", query, "--format", "json", home=home, cwd=work)
    assert done.returncode == 0, done.stderr[-2000:]
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_an_interrupted_search_resumes_without_retraining_finished_points(
    topolake_home, validated_gold
):
    current, work = validated_gold
    assert current().returncode == 0
    grid = work / "grid.yaml"
    grid.write_text(GRID)
    env = {**os.environ, "SPARK_MASTER": TEST_MASTER, "TOPOLAKE_HOME": str(topolake_home)}
    search = subprocess.Popen(
        [TOPOLAKE, "tune", "--grid", str(grid), "--parallelism", "1"],
        cwd=work,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        for line in search.stderr:
            if "val AUC" in line:  # the first point is recorded: interrupt the search
                break
    finally:
        os.killpg(search.pid, signal.SIGKILL)
        search.wait(timeout=60)
    first = results(topolake_home, work)
    assert 1 <= len(first) < 4

    resumed = run_topolake("tune", "--grid", str(grid), home=topolake_home, cwd=work)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"{len(first)} of 4 points were already done" in resumed.stderr
    assert resumed.stderr.count("val AUC") == 4 - len(first) + 1  # + the best point line
    assert "best point" in resumed.stderr and "topolake train --model hlf" in resumed.stderr
    for notice in ("oneDNN custom operations", "Could not find cuda drivers", "cuInit"):
        assert notice not in resumed.stderr  # nor from the Python workers that trained
    rows = results(topolake_home, work)
    assert len(rows) == 4 and len({r["point_key"] for r in rows}) == 4
    kept = {r["point_key"]: r["mlflow_run_id"] for r in rows}
    assert all(kept[r["point_key"]] == r["mlflow_run_id"] for r in first)

    again = run_topolake("tune", "--grid", str(grid), home=topolake_home, cwd=work)
    assert again.returncode == 0 and "4 of 4 points were already done" in again.stderr
    assert len(results(topolake_home, work)) == 4


def test_a_bad_grid_is_refused_with_the_file_and_the_problem(topolake_home, tmp_path):
    grid = tmp_path / "grid.yaml"
    grid.write_text("grid:\n  batch_size: [32]\n  width: [5]\n")
    refused = run_topolake("tune", "--grid", str(grid), home=topolake_home, cwd=tmp_path)
    assert refused.returncode == 2
    assert f"grid file {grid}: unknown key 'width'" in refused.stderr
