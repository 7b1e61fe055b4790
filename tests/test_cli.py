"""The `topolake` command as a user runs it: its own process, any working directory."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from ingestion.bronze import ingest
from simulation.synthetic import synthetic_events
from simulation.writer import write_delphes
from tests.helpers import TEST_MASTER, TOPOLAKE, run_topolake
from topolake.core.tables import BRONZE_EVENTS

pytestmark = pytest.mark.slow


@pytest.mark.shared
def test_ingest_lands_good_files_names_each_bad_one_and_exits_non_zero(
    lake, topolake_home, shared_delphes, tmp_path
):
    result = run_topolake(
        "ingest",
        str(shared_delphes),
        "--sample",
        "ttbar",
        "--label",
        "1",
        home=topolake_home,
        cwd=tmp_path,
    )
    assert result.returncode == 1, result.stderr
    lines = result.stderr.splitlines()
    assert f"rejected {shared_delphes / 'malformed_delphes.root'} has no Delphes tree." in lines
    assert any(
        line.startswith(
            f"rejected {shared_delphes / 'eic_card_1000_events.root'} lacks the "
            "required collections EFlowTrack,"
        )
        for line in lines
    )
    assert f"landed {shared_delphes / 'cms_card_10_events.root'}: 10 events" in lines

    query = "select sample, count(*) as n from lake.bronze.events group by sample"
    shown = run_topolake("sql", query, "--format", "json", home=topolake_home, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert [json.loads(line) for line in shown.stdout.splitlines()] == [
        {"sample": "ttbar", "n": 10}
    ]


def test_sql_and_snapshots_explain_a_missing_table_in_one_line(lake, topolake_home, tmp_path):
    result = run_topolake("snapshots", "bronze.nothing", home=topolake_home, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("error: Table lake.bronze.nothing cannot be read:")
    bad_label = run_topolake(
        "ingest", "x.root", "--sample", "qcd", "--label", "7", home=topolake_home, cwd=tmp_path
    )
    assert bad_label.returncode == 2
    assert "Label 7 is not a class" in bad_label.stderr


def test_an_ingest_killed_mid_write_leaves_the_last_snapshot_and_a_rerun_lands_once(
    lake, topolake_home, tmp_path
):
    small = write_delphes(tmp_path / "small.root", synthetic_events(100, seed=20))
    before = ingest(lake, [str(small)], sample="ttbar", label=1)
    big = write_delphes(tmp_path / "big.root", synthetic_events(40_000, seed=21))
    data_dir = Path(topolake_home) / "warehouse" / "bronze" / "events" / "data"
    files_before = set(data_dir.rglob("*.parquet"))

    env = {**os.environ, "TOPOLAKE_HOME": str(topolake_home), "SPARK_MASTER": TEST_MASTER}
    command = [
        TOPOLAKE,
        "ingest",
        str(big),
        "--sample",
        "ttbar",
        "--label",
        "1",
        "--step",
        "1000",
    ]
    process = subprocess.Popen(
        command,
        env=env,
        cwd=tmp_path,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 240
    while not set(data_dir.rglob("*.parquet")) - files_before:
        assert process.poll() is None, "the ingest finished before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)  # the CLI and its Spark JVM, mid-write
    process.wait()

    snapshot = (
        lake.sql(
            f"SELECT snapshot_id FROM {BRONZE_EVENTS}.history ORDER BY made_current_at DESC LIMIT 1"
        )
        .first()
        .snapshot_id
    )
    assert snapshot == before.snapshot_id
    assert lake.table(BRONZE_EVENTS).count() == 100

    rerun = run_topolake(*command[1:], home=topolake_home, cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    counts = lake.sql(
        f"SELECT count(*) n, count(DISTINCT source_file, entry) d FROM {BRONZE_EVENTS}"
    ).first()
    assert (counts.n, counts.d) == (40_100, 40_100)


def test_exports_write_every_row_and_a_capped_table_view_says_so(spark):
    from typer.testing import CliRunner

    from topolake.app.cli import app

    runner = CliRunner()
    query = "SELECT id FROM range(1500)"
    exported = runner.invoke(app, ["sql", query, "--format", "csv"])
    assert exported.exit_code == 0, exported.output
    assert exported.stdout.splitlines() == ["id", *map(str, range(1500))]
    limited = runner.invoke(app, ["sql", query, "--format", "json", "--limit", "5"])
    assert [json.loads(line)["id"] for line in limited.stdout.splitlines()] == [0, 1, 2, 3, 4]
    viewed = runner.invoke(app, ["sql", query])
    assert viewed.exit_code == 0
    assert "showing 1,000 of 1,500 rows" in viewed.stderr
    assert "│ 999 │" in viewed.stdout and "│ 1000 │" not in viewed.stdout
