"""A team's set-up, for real on 127.0.0.1: a standalone master with two workers, PostgreSQL as
the Iceberg catalog and MLflow's store, an MLflow server, and the writers' and analysts' Spark
Thrift Servers, all started once for the module and stopped by PID."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from simulation.tasks import generate_locally, plan
from tests.helpers import TOPOLAKE, free_port
from topolake.app import services
from topolake.core.project import dbt_profiles_dir, dbt_project_dir
from topolake.core.reachability import check_catalog, check_master
from topolake.core.settings import POSTGRESQL_JDBC_JAR, ConfigurationError, load_settings

pytestmark = [pytest.mark.slow, pytest.mark.cluster]
TINY = ("run", "--events", "200", "--epochs", "1", "--max-particles", "64")


@dataclass
class Team:
    home: Path
    master: str
    running: services.TeamServices
    env: dict[str, str]

    def topolake(self, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
        return subprocess.run(
            [TOPOLAKE, *args],
            capture_output=True,
            text=True,
            env=self.env,
            cwd=self.home,
            timeout=timeout,
        )

    def sql(self, query: str) -> list[dict]:
        done = self.topolake("sql", query, "--format", "json")
        assert done.returncode == 0, done.stderr[-2000:]
        return [json.loads(line) for line in done.stdout.splitlines()]


def _require_servers() -> None:
    installed = {
        "Debian's postgresql": any(Path("/usr/lib/postgresql").glob("*/bin/postgres")),
        f"Debian's libpostgresql-jdbc-java ({POSTGRESQL_JDBC_JAR})": POSTGRESQL_JDBC_JAR.is_file(),
    }
    missing = [what for what, there in installed.items() if not there]
    if missing:
        message = f"{' and '.join(missing)} not installed (`make test` installs them as root)"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; in CI the cluster tests must run")
        pytest.skip(message)


@pytest.fixture(scope="module")
def team(tmp_path_factory) -> Team:
    _require_servers()
    home = tmp_path_factory.mktemp("team")
    settings = replace(load_settings(home=home), catalog_type="hadoop")
    try:
        master = services.start_cluster(
            settings, workers=2, cores=1, memory="2g", port=free_port(), webui_port=free_port()
        )
        running = services.start_services(settings, *(free_port() for _ in range(4)))
        env = {
            **os.environ,
            "TOPOLAKE_HOME": str(home),
            "SPARK_MASTER": master,
            **running.environment(),
        }
        yield Team(home, master, running, env)
    finally:
        services.stop(home)
        services.remove_postgres_data(home)


@pytest.fixture(scope="module")
def pipeline_on_the_cluster(team) -> float:
    """`topolake run` (tiny) on the cluster, the JDBC catalog and the MLflow server: seconds."""
    started = time.perf_counter()
    done = team.topolake(*TINY, timeout=1500)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "stage 7/7: report" in done.stderr
    return time.perf_counter() - started


def test_the_pipeline_runs_on_the_cluster_with_the_shared_catalog_and_mlflow_server(
    team, pipeline_on_the_cluster
):
    print(f"topolake {' '.join(TINY)} on the standalone cluster: {pipeline_on_the_cluster:.0f} s")
    counts = team.sql("SELECT sample, count(*) AS n FROM lake.bronze.events GROUP BY sample")
    assert sorted((r["sample"], r["n"]) for r in counts) == [
        ("qcd", 200),
        ("ttbar", 200),
        ("wjets", 200),
    ]
    # the tables are in PostgreSQL's catalog, not in a hadoop catalog's version files
    assert not list((team.home / "warehouse").rglob("version-hint.text"))
    from mlflow import MlflowClient

    # a client of its own: mlflow.set_tracking_uri would also set MLFLOW_TRACKING_URI for every
    # later test's subprocesses, pointing them at this module's server after it stopped
    tracking = MlflowClient(tracking_uri=team.env["MLFLOW_TRACKING_URI"])
    experiment = tracking.get_experiment_by_name("topolake").experiment_id
    trained = tracking.search_runs([experiment], filter_string="tags.`topolake.kind` = 'train'")
    assert sorted(r.data.params["model"] for r in trained) == ["hlf", "inclusive"]

    # TensorFlow multi-worker: two barrier tasks on the two workers' executors, then evaluated
    distributed = team.topolake("train", "--workers", "2", "--epochs", "1", "--batch-size", "64")
    assert distributed.returncode == 0, distributed.stderr[-3000:]
    assert "(2 replicas in sync)" in distributed.stderr
    run_id = distributed.stderr.strip().splitlines()[-1].split()[-1]
    evaluated = team.topolake("evaluate", run_id)
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    evaluation = tracking.get_run(run_id).data
    assert {"test_accuracy", "test_auc_ttbar"} <= set(evaluation.metrics)
    # the model and the plots went to the server's artifact store, under the lakehouse
    artifacts = {p.name for p in (team.home / "mlartifacts").rglob("*") if p.is_file()}
    assert "roc.png" in artifacts


def test_two_ingests_at_once_both_commit_to_the_shared_catalog(team, pipeline_on_the_cluster):
    out = team.home / "more"
    tasks = plan("ttbar", 20, out, seed=91, files=2)
    generate_locally(tasks, 2, lambda n: None)
    with ThreadPoolExecutor(2) as pool:
        done = list(
            pool.map(
                lambda t: team.topolake("ingest", t.path, "--sample", "ttbar", "--label", "1"),
                tasks,
            )
        )
    assert [d.returncode for d in done] == [0, 0], [d.stderr[-1500:] for d in done]
    landed = team.sql("SELECT count(*) AS n FROM lake.bronze.events WHERE sample = 'ttbar'")
    assert landed == [{"n": 220}]


def _hive(port: int, user: str):
    from pyhive import hive

    return hive.connect(host=services.HOST, port=port, username=user)


def test_analysts_read_gold_over_jdbc_and_db_api_and_cannot_drop_it(team, pipeline_on_the_cluster):
    query = (
        "SELECT sample, count(*) AS n FROM lake.gold.hlf_features GROUP BY sample ORDER BY sample"
    )
    expected = [(r["sample"], r["n"]) for r in team.sql(query)]
    analysts = team.running.analyst_thrift

    shown = services.beeline(analysts.url, services.ANALYST, query)
    lines = [line for line in shown.splitlines() if line.strip()]
    assert lines[0] == "sample,n"
    assert [(s, int(n)) for s, n in (line.split(",") for line in lines[1:])] == expected

    connection = _hive(analysts.port, services.ANALYST)
    cursor = connection.cursor()
    cursor.execute(query)
    assert cursor.fetchall() == expected
    # the analysts' catalog logs in as a role that may only SELECT: the catalog refuses
    with pytest.raises(Exception, match="Failed to execute: DELETE FROM iceberg_tables"):
        cursor.execute("DROP TABLE lake.gold.hlf_features")
    connection.close()
    assert [(r["sample"], r["n"]) for r in team.sql(query)] == expected  # still there


def test_a_pinned_gold_snapshot_reads_the_same_through_pyiceberg_without_spark(
    team, pipeline_on_the_cluster
):
    snapshots = team.topolake("snapshots", "gold.hlf_features", "--format", "json")
    assert snapshots.returncode == 0, snapshots.stderr[-2000:]
    pinned = json.loads(snapshots.stdout.splitlines()[-1])["snapshot_id"]
    columns = ["content_hash", "entry", "HT", "MET", "LepPt", "nJets"]
    spark_rows = team.sql(
        f"SELECT {', '.join(columns)} FROM lake.gold.hlf_features VERSION AS OF {pinned}"
    )

    settings = load_settings(home=team.home)
    catalog = services.pyiceberg_catalog(settings, team.running.credentials, services.ANALYST)
    table = catalog.load_table("gold.hlf_features")
    arrow = table.scan(snapshot_id=int(pinned), selected_fields=tuple(columns)).to_arrow()

    def key(row: dict) -> tuple:
        return row["content_hash"], row["entry"]

    assert sorted(arrow.to_pylist(), key=key) == sorted(spark_rows, key=key)
    assert arrow.num_rows > 100


def test_dbt_builds_through_the_writers_thrift_server(team, pipeline_on_the_cluster):
    env = {
        **team.env,
        "TOPOLAKE_THRIFT_PORT": str(team.running.thrift.port),
        "DBT_TARGET_PATH": str(team.home / "dbt" / "thrift-target"),
        "DBT_LOG_PATH": str(team.home / "dbt" / "logs"),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }
    dbt = str(Path(TOPOLAKE).with_name("dbt"))
    done = subprocess.run(
        [
            dbt,
            "build",
            "--target",
            "thrift",
            "--select",
            "lepton_selection",
            "--project-dir",
            str(dbt_project_dir()),
            "--profiles-dir",
            str(dbt_profiles_dir()),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=team.home,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-3000:]
    assert "Completed successfully" in done.stdout


def test_wrong_credentials_and_missing_servers_get_one_sentence(team, tmp_path):
    settings = replace(
        load_settings(home=team.home),
        **{
            "catalog_type": "jdbc",
            "catalog_uri": team.running.credentials.catalog_uri(),
            "catalog_user": services.WRITER,
            "catalog_password": "not-the-password",
        },
    )
    with pytest.raises(ConfigurationError, match="password authentication failed"):
        check_catalog(settings)
    closed = free_port()
    with pytest.raises(ConfigurationError, match=f"PostgreSQL at 127.0.0.1:{closed} refuses"):
        check_catalog(replace(settings, catalog_uri=f"jdbc:postgresql://127.0.0.1:{closed}/x"))
    with pytest.raises(ConfigurationError, match="topolake cluster start"):
        check_master(f"spark://127.0.0.1:{closed}")

    down = subprocess.run(
        [TOPOLAKE, "--master", f"spark://127.0.0.1:{closed}", "sql", "select 1"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        env={**os.environ, "TOPOLAKE_HOME": str(tmp_path)},
    )
    assert down.returncode == 2
    assert down.stderr.startswith(
        f"error: The Spark master spark://127.0.0.1:{closed} is not reachable"
    )

    with socket.socket() as taken:
        taken.bind((services.HOST, 0))
        taken.listen()
        port = taken.getsockname()[1]
        other = tmp_path / "other"
        with pytest.raises(services.PortTaken, match=f"Port {port} .* --thrift-port"):
            services.start_services(
                load_settings(home=other), free_port(), free_port(), port, free_port()
            )
    assert services.running(other) == {}  # refused before anything started


def test_simulation_as_spark_tasks_on_two_workers_writes_the_files_of_a_local_run(team, tmp_path):
    import awkward as ak
    import uproot

    started = time.time()
    on_cluster = team.topolake(
        "simulate",
        "--sample",
        "ttbar",
        "--events",
        "30",
        "--files",
        "2",
        "--seed",
        "17",
        "--out",
        str(tmp_path / "cluster"),
        "--spark",
    )
    assert on_cluster.returncode == 0, on_cluster.stderr[-2000:]
    local = plan("ttbar", 30, tmp_path / "local", seed=17, files=2)
    generate_locally(local, 2, lambda n: None)
    for task in local:
        remote = tmp_path / "cluster" / "ttbar" / Path(task.path).name
        expected = uproot.open(task.path)["Delphes"].arrays(library="ak")
        assert ak.array_equal(uproot.open(remote)["Delphes"].arrays(library="ak"), expected)
    # the application ran with an executor on each worker (the workers' work directories)
    apps = [
        d for d in (team.home / "cluster").glob("worker-*/app-*") if d.stat().st_mtime > started
    ]
    assert len({d.parent.name for d in apps}) == 2
