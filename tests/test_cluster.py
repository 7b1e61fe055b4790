"""A team's set-up, for real on 127.0.0.1: a standalone master with two workers, PostgreSQL as
the Iceberg catalog and MLflow's store, an MLflow server, and the writers' and analysts' Spark
Thrift Servers, all started once for the module and stopped by PID."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from simulation.tasks import generate_locally, plan
from tests.helpers import TOPOLAKE, free_port
from topolake.app import services
from topolake.app.dbt_runner import dbt_environment
from topolake.core.project import dbt_project_dir
from topolake.core.reachability import check_catalog, check_master
from topolake.core.settings import POSTGRESQL_JDBC_JAR, ConfigurationError, load_settings

# the first test also pays for the module's pipeline run (about 5 min here, 10 under load)
pytestmark = [pytest.mark.slow, pytest.mark.cluster, pytest.mark.timeout(2400)]
TINY = ("run", "--events", "200", "--epochs", "1", "--max-particles", "64")


@dataclass
class Team:
    home: Path
    master: str
    running: services.TeamServices
    env: dict[str, str]

    def topolake(
        self, *args: str, timeout: int = 900, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess:
        return subprocess.run(
            [TOPOLAKE, *args],
            capture_output=True,
            text=True,
            env={**self.env, **(env or {})},
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
            "TOPOLAKE_CORES_MAX": "2",  # two workers of one core (BigDL needs the total)
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


def test_two_ingests_and_a_writer_of_another_table_at_once_all_commit_to_the_shared_catalog(
    team, pipeline_on_the_cluster
):
    out = team.home / "more"
    tasks = plan("ttbar", 20, out, seed=91, files=2)
    generate_locally(tasks, 2, lambda n: None)
    writers = [("ingest", t.path, "--sample", "ttbar", "--label", "1") for t in tasks]
    writers.append(
        ("sql", "CREATE TABLE lake.bronze.campaign_notes AS SELECT 'ttbar' AS sample, 2 AS files")
    )
    with ThreadPoolExecutor(len(writers)) as pool:
        done = list(pool.map(lambda args: team.topolake(*args), writers))
    assert [d.returncode for d in done] == [0, 0, 0], [d.stderr[-1500:] for d in done]
    landed = team.sql("SELECT count(*) AS n FROM lake.bronze.events WHERE sample = 'ttbar'")
    assert landed == [{"n": 220}]
    assert team.sql("SELECT * FROM lake.bronze.campaign_notes") == [{"sample": "ttbar", "files": 2}]


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


def _dbt(team: Team, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """A bare `dbt` in its own process, with the project's profiles and the lakehouse's
    artefact directories (as `topolake build` gives them)."""
    return subprocess.run(
        [str(Path(TOPOLAKE).with_name("dbt")), *args],
        capture_output=True,
        text=True,
        env={**team.env, **dbt_environment(load_settings(home=team.home)), **env},
        cwd=dbt_project_dir(),
        timeout=900,
    )


def test_dbt_builds_through_the_writers_thrift_server(team, pipeline_on_the_cluster):
    port = str(team.running.thrift.port)
    done = _dbt(
        team,
        "build",
        "--target",
        "thrift",
        "--select",
        "lepton_selection",
        env={"TOPOLAKE_THRIFT_PORT": port, "DBT_TARGET_PATH": str(team.home / "thrift-target")},
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


def test_bigdl_trains_on_the_two_workers_and_needs_the_total_cores(team, pipeline_on_the_cluster):
    unsized = team.topolake(
        "train",
        "--engine",
        "bigdl",
        "--workers",
        "2",
        "--epochs",
        "1",
        env={"TOPOLAKE_CORES_MAX": ""},
    )
    assert unsized.returncode == 1
    assert "error: BigDL on a standalone master needs the application's total cores" in (
        unsized.stderr
    )
    args = ("--model", "inclusive", "--max-particles", "64", "--epochs", "1")
    trained = team.topolake("train", "--engine", "bigdl", "--workers", "2", *args)
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert "trained inclusive with bigdl x 2 (2 replicas in sync)" in trained.stderr
    from mlflow import MlflowClient

    run_id = trained.stderr.strip().splitlines()[-1].split()[-1]
    run = MlflowClient(tracking_uri=team.env["MLFLOW_TRACKING_URI"]).get_run(run_id)
    assert run.data.params["engine"] == "bigdl"
    assert run.data.metrics["val_accuracy"] > 0


@pytest.fixture(scope="module")
def rebuilt_by_a_bare_dbt(
    team, pipeline_on_the_cluster
) -> tuple[subprocess.CompletedProcess, float]:
    """A bare `dbt build` on the cluster (after what earlier tests landed): result, start time."""
    conf = team.home / "conf" / "spark-defaults.conf"  # written by every topolake command
    assert f"spark.master {team.master}" in conf.read_text().splitlines()
    started = time.time()
    return _dbt(team, "build", env={"SPARK_CONF_DIR": str(conf.parent)}), started


def test_a_bare_dbt_build_runs_on_the_cluster_through_spark_conf_dir(team, rebuilt_by_a_bare_dbt):
    done, started = rebuilt_by_a_bare_dbt
    assert done.returncode == 0, done.stdout[-3000:]
    assert "Completed successfully" in done.stdout
    # dbt's own Spark application ran on the workers' executors
    assert _applications_since(team, started)


def test_the_same_files_build_the_same_gold_on_a_hadoop_catalog_in_local_mode(
    team, rebuilt_by_a_bare_dbt, tmp_path
):
    """The cluster's lakehouse (JDBC catalog, standalone master) against a build of the same
    files on the embedded default (hadoop catalog, local[2]), compared in one session that
    reads the shared catalog as `lake` and the local warehouse as `here`. (A JDBC catalog
    finds its tables under its own name only: it cannot be mounted under another.)"""
    assert rebuilt_by_a_bare_dbt[0].returncode == 0
    landed = team.sql("SELECT DISTINCT source_file, sample, label FROM lake.bronze.events")
    local = tmp_path / "local"
    embedded = {k: v for k, v in os.environ.items() if not k.startswith(("TOPOLAKE_", "MLFLOW_"))}
    built = _python(
        BUILD_LOCALLY.format(
            home=str(local), landed=[(r["source_file"], r["sample"], r["label"]) for r in landed]
        ),
        {**embedded, "SPARK_MASTER": "local[2]"},
        tmp_path,
    )
    assert built.returncode == 0, built.stderr[-3000:]

    reader = {
        **team.env,
        "SPARK_MASTER": "local[2]",
        "TOPOLAKE_HOME": str(tmp_path / "reader"),  # leaves the team's conf as it is
        "TOPOLAKE_WAREHOUSE": str(team.home / "warehouse"),
    }
    done = _python(COMPARE_GOLD.format(warehouse=str(local / "warehouse")), reader, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    compared = json.loads(done.stdout.strip().splitlines()[-1])
    assert min(compared["rows"].values()) > 100
    assert compared["differences"] == {t: 0 for t in compared["rows"]}


def _python(script: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=900,
    )


BUILD_LOCALLY = """
from topolake.app.pipeline import build_lakehouse, ingest
from topolake.core.settings import load_settings
from topolake.core.spark import get_spark

settings = load_settings(home={home!r})
spark = get_spark(settings)
by_sample = {{}}
for source_file, sample, label in {landed!r}:
    by_sample.setdefault((sample, label), []).append(source_file)
for (sample, label), files in by_sample.items():
    ingest(spark, files, sample, label)
build_lakehouse(spark, settings, skip_validation=True)
"""

COMPARE_GOLD = """
import json
from topolake.core.spark import get_spark

spark = get_spark()
spark.conf.set("spark.sql.catalog.here", "org.apache.iceberg.spark.SparkCatalog")
spark.conf.set("spark.sql.catalog.here.type", "hadoop")
spark.conf.set("spark.sql.catalog.here.warehouse", {warehouse!r})
rows, differences = {{}}, {{}}
for table in ("hlf_features", "training_set", "particle_sequences"):
    here = spark.table("here.gold." + table).drop("ingest_id")
    shared = spark.table("lake.gold." + table).drop("ingest_id")
    rows[table] = here.count()
    differences[table] = here.exceptAll(shared).count() + shared.exceptAll(here).count()
print(json.dumps({{"rows": rows, "differences": differences}}))
"""


def test_an_executor_killed_mid_ingest_is_replaced_and_the_events_commit_once(
    team, pipeline_on_the_cluster, tmp_path
):
    out = tmp_path / "files"
    tasks = plan("wjets", 120, out, seed=23, files=4)
    generate_locally(tasks, 2, lambda n: None)
    before = team.sql("SELECT count(*) AS n FROM lake.bronze.events")[0]["n"]
    snapshots = len(team.sql("SELECT snapshot_id FROM lake.bronze.events.snapshots"))
    started = time.time()
    ingesting = subprocess.Popen(
        [TOPOLAKE, "ingest", str(out / "wjets"), "--sample", "wjets", "--label", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=team.env,
        cwd=team.home,
    )
    killed = _kill_an_executor_running_a_task(team, started, ingesting)
    _, stderr = ingesting.communicate(timeout=900)
    assert ingesting.returncode == 0, stderr[-3000:]
    assert killed, "no executor ran a task while the ingest ran"
    assert "ExecutorLostFailure" in stderr  # the driver saw the loss and retried the task
    after = team.sql(
        "SELECT count(*) AS n, count(DISTINCT content_hash, entry) AS events "
        "FROM lake.bronze.events"
    )[0]
    assert after == {"n": before + 120, "events": before + 120}
    assert len(team.sql("SELECT snapshot_id FROM lake.bronze.events.snapshots")) == snapshots + 1
    # the master gave the application a new executor in place of the killed one
    executors = list((team.home / "cluster").glob(f"worker-*/{killed}/*"))
    assert len(executors) >= 3


def _kill_an_executor_running_a_task(team, started: float, ingesting) -> str | None:
    """SIGKILL the first executor JVM of the new application that has started Python workers:
    pyspark's daemon is forked for the first Python task (ingest's tasks are Python), and that
    task is still starting its worker (imports take seconds) when the daemon appears.
    (Executors log at WARN, so their logs do not show tasks starting.) Returns the
    application's id."""
    deadline = time.monotonic() + 600
    while ingesting.poll() is None and time.monotonic() < deadline:
        for application in _applications_since(team, started):
            executors = _pids(f"CoarseGrainedExecutorBackend --app-id {application.name}")
            for executor in executors:
                if _pids("pyspark.daemon", parent=executor):
                    os.kill(executor, signal.SIGKILL)
                    return application.name
        time.sleep(0.1)
    return None


def _pids(command: str, parent: int | None = None) -> list[int]:
    """Processes whose command line contains each word of `command` in order (a pgrep -f
    that needs no procps), children of `parent` if given."""
    words = re.compile(".*".join(re.escape(w) for w in command.split()))
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile
        if words.search(cmdline) and (parent is None or ppid == parent):
            found.append(int(proc.name))
    return found


def _applications_since(team, started: float) -> list[Path]:
    """The applications' directories the workers made since `started`."""
    return [
        d for d in (team.home / "cluster").glob("worker-*/app-*") if d.stat().st_mtime > started
    ]
