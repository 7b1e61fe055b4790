"""dbt builds on bronze: incremental, idempotent, the same by hand as through topolake."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ingestion.bronze import ingest
from simulation.tasks import generate_locally, plan
from topolake.app.dbt_runner import dbt_environment, invoke_dbt
from topolake.core.project import dbt_project_dir
from topolake.core.settings import load_settings

pytestmark = pytest.mark.slow

MODELS = [
    "silver.lepton_selection",
    "silver.selected_events",
    "gold.hlf_features",
    "gold.particle_sequences",
    "gold.training_set",
]


@pytest.fixture(scope="module")
def two_files(tmp_path_factory) -> list[Path]:
    out = tmp_path_factory.mktemp("incremental")
    generate_locally(plan("ttbar", 120, out, seed=4, files=2), 2, lambda n: None)
    return sorted((out / "ttbar").glob("*.root"))


def snapshots(spark) -> dict[str, int]:
    return {
        table: spark.sql(
            f"SELECT snapshot_id FROM lake.{table}.history ORDER BY made_current_at DESC LIMIT 1"
        )
        .first()
        .snapshot_id
        for table in MODELS
    }


def rows(spark, table: str, version: int | None = None) -> set[tuple]:
    at = f" VERSION AS OF {version}" if version else ""
    return {tuple(r) for r in spark.sql(f"SELECT * FROM lake.{table}{at}").collect()}


def test_builds_add_only_new_events_and_a_repeated_build_changes_nothing(
    lake, topolake_home, two_files
):
    settings = load_settings(home=topolake_home)
    first = ingest(lake, [str(two_files[0])], sample="ttbar", label=1)
    invoke_dbt(settings, "build")
    before = snapshots(lake)
    old_rows = rows(lake, "gold.hlf_features")
    assert {r[-1] for r in old_rows} == {first.ingest_id}

    invoke_dbt(settings, "build")
    assert snapshots(lake) == before, "a build with nothing new committed a snapshot"

    second = ingest(lake, [str(two_files[1])], sample="ttbar", label=1)
    # a bare `dbt build` with the documented profile, in its own process and JVM
    env = {
        **os.environ,
        **dbt_environment(settings),
        "SPARK_CONF_DIR": str(settings.spark_conf_dir),
    }
    bare = subprocess.run(
        [str(Path(sys.executable).with_name("dbt")), "build"],
        cwd=dbt_project_dir(),
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert bare.returncode == 0, bare.stdout[-3000:]

    after = snapshots(lake)
    assert all(after[t] != before[t] for t in MODELS[:-1])
    new_rows = rows(lake, "gold.hlf_features")
    assert old_rows < new_rows
    assert old_rows == rows(lake, "gold.hlf_features", before["gold.hlf_features"])
    assert {r[-1] for r in new_rows - old_rows} == {second.ingest_id}
    selected = (
        lake.sql("SELECT count(*) n FROM lake.silver.lepton_selection WHERE passes_selection")
        .first()
        .n
    )
    assert len(new_rows) == selected
    assert lake.table("lake.silver.lepton_selection").count() == 120

    invoke_dbt(settings, "build", "--full-refresh")
    assert rows(lake, "gold.hlf_features") == new_rows


def test_docs_generate_writes_the_catalog(lake, topolake_home, two_files):
    settings = load_settings(home=topolake_home)
    ingest(lake, [str(two_files[0])], sample="ttbar", label=1)
    invoke_dbt(
        settings, "build", "--select", "lepton_selection", "--indirect-selection", "cautious"
    )
    invoke_dbt(settings, "docs", "generate")
    target = settings.home / "dbt" / "target"
    assert (target / "index.html").is_file()
    assert "lepton_selection" in (target / "catalog.json").read_text()
