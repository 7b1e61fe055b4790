"""Servers for a team on one machine: a Spark standalone cluster, PostgreSQL (the shared Iceberg
catalog and MLflow's store), an MLflow tracking server and Spark Thrift Servers for SQL clients.

Each server is a child process bound to 127.0.0.1, started in its own session with its log
under ``$TOPOLAKE_HOME/logs/<name>.log``; what runs is recorded in
``$TOPOLAKE_HOME/services/state.json`` (PIDs, ports, URLs) and stopped by PID. The servers are
the ones a site runs for real (pyspark's own `spark-class` master and workers and
`HiveThriftServer2`, Debian's PostgreSQL, `mlflow server`); only their addresses differ.

Analysts get a Thrift Server of their own whose catalog logs in to PostgreSQL as the role
`analyst`, which may only SELECT: a `DROP TABLE` or an insert through it is refused by the
catalog, whatever the SQL client.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from topolake.core.errors import TopolakeError, UsageError
from topolake.core.settings import CATALOG, Settings, iceberg_runtime_jar, java_home
from topolake.core.spark import catalog_jars, write_spark_conf

HOST = "127.0.0.1"
CATALOG_DB, MLFLOW_DB = "topolake", "mlflow"
WRITER, ANALYST = "topolake", "analyst"


class ServiceError(TopolakeError):
    """A server could not start or stop; the message says which and where its log is."""


class PortTaken(ServiceError, UsageError):
    exit_code = 2


@dataclass
class Running:
    name: str
    pid: int
    port: int
    url: str
    log: str
    started: int = 0  # the process's start time in clock ticks since boot (/proc/PID/stat)

    def is_alive(self) -> bool:
        """Running, and the same process: after a reboot its PID may be another program's."""
        return alive(self.pid) and (not self.started or _start_ticks(self.pid) == self.started)


# --- bookkeeping ---------------------------------------------------------------------------


def _state_file(home: Path) -> Path:
    return home / "services" / "state.json"


def running(home: Path) -> dict[str, Running]:
    """What `start_*` recorded, whether or not it still runs (see `alive`)."""
    path = _state_file(home)
    if not path.is_file():
        return {}
    return {name: Running(**r) for name, r in json.loads(path.read_text()).items()}


def _record(home: Path, services: dict[str, Running]) -> None:
    path = _state_file(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({n: asdict(r) for n, r in services.items()}, indent=2))


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _start_ticks(pid: int) -> int:
    """When the process started (field 22 of /proc/PID/stat), 0 where unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    return int(stat.rsplit(")", 1)[1].split()[19])


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
    return True


def _answers(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=1):
            return True
    except OSError:
        return False


def _check_port(port: int, option: str) -> None:
    if not _port_free(port):
        raise PortTaken(
            f"Port {port} on {HOST} is already in use: stop what listens there or choose "
            f"another with {option}."
        )


def _last_line(text: str) -> str:
    """The last non-blank line of a log or an output, shortened: what went wrong, usually."""
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1].strip()[:300] if lines else "nothing"


def _launch(
    home: Path,
    name: str,
    argv: list[str],
    port: int,
    url: str,
    env: dict[str, str] | None = None,
    timeout: float = 120,
    user: str | None = None,
) -> Running:
    """Start `argv` in its own session, wait until it listens on `port`, record it."""
    log = home / "logs" / f"{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    if user is not None:  # PostgreSQL refuses to run as root
        argv = ["runuser", "-u", user, "--", *argv]
    with log.open("ab") as out, _missing_program(argv[0]):
        process = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
    deadline = time.monotonic() + timeout
    while not _answers(port):
        if process.poll() is not None:
            raise ServiceError(
                f"{name} exited with code {process.returncode} before listening on "
                f"{HOST}:{port}: {_last_line(log.read_text(errors='replace'))} (log: {log})"
            )
        if time.monotonic() > deadline:
            _terminate(process.pid)
            raise ServiceError(
                f"{name} did not listen on {HOST}:{port} in {timeout:.0f} s; see {log}"
            )
        time.sleep(0.5)
    started = Running(name, process.pid, port, url, str(log), _start_ticks(process.pid))
    services = running(home)
    services[name] = started
    _record(home, services)
    return started


@contextlib.contextmanager
def _missing_program(program: str):
    try:
        yield
    except FileNotFoundError as err:
        raise ServiceError(f"{program} is not installed or not on PATH: {err.strerror}.") from err


def _terminate(pid: int, grace: float = 20) -> None:
    """SIGTERM the process's session, SIGKILL what is left after `grace` seconds."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        deadline = time.monotonic() + grace
        while alive(pid) and time.monotonic() < deadline:
            try:  # reap it if it is our child
                if os.waitpid(pid, os.WNOHANG)[0] == pid:
                    return
            except ChildProcessError:
                pass
            time.sleep(0.2)
        if not alive(pid):
            return


def stop(home: Path, names: list[str] | None = None) -> list[str]:
    """Stop the recorded services (all, or `names`), newest first; returns what was stopped."""
    services = running(home)
    stopped = []
    for name in reversed(list(services)):
        if names is not None and not any(name == n or name.startswith(f"{n}-") for n in names):
            continue
        if services[name].is_alive():
            _terminate(services[name].pid)
            stopped.append(name)
        del services[name]
    _record(home, services)
    return stopped


# --- the Spark standalone cluster ------------------------------------------------------------


def spark_home() -> Path:
    from pyspark.find_spark_home import _find_spark_home

    return Path(_find_spark_home())


def _spark_env(settings: Settings, conf_dir: Path | None = None) -> dict[str, str]:
    """The environment of a Spark process of ours, its spark-defaults.conf in `conf_dir`
    (default: the lakehouse's, which every command writes)."""
    env = {
        "SPARK_HOME": str(spark_home()),
        "SPARK_LOCAL_IP": HOST,
        "SPARK_CONF_DIR": str(write_spark_conf(settings, conf_dir)),
        "PYSPARK_PYTHON": sys.executable,
        "TOPOLAKE_HOME": str(settings.home),
    }
    if home := java_home():
        env["JAVA_HOME"] = home
    return env


def start_cluster(
    settings: Settings,
    workers: int = 2,
    cores: int = 1,
    memory: str = "2g",
    port: int = 7077,
    webui_port: int = 8080,
) -> str:
    """A standalone master and `workers` workers on 127.0.0.1; returns the master URL."""
    home = settings.home
    cluster = {n: r for n, r in running(home).items() if n == "master" or n.startswith("worker-")}
    if "master" in cluster and all(r.is_alive() for r in cluster.values()):
        return cluster["master"].url
    stop(home, ["worker", "master"])  # what is left of a cluster that did not start
    for number, option in ((port, "--port"), (webui_port, "--webui-port")):
        _check_port(number, option)
    with _stopped_on_failure(home, ["worker", "master"]):
        return _start_cluster(settings, workers, cores, memory, port, webui_port)


@contextlib.contextmanager
def _stopped_on_failure(home: Path, names: list[str]):
    """What started before a failure is stopped: never a master without its workers."""
    try:
        yield
    except BaseException:
        stop(home, names)
        raise


def _start_cluster(
    settings: Settings, workers: int, cores: int, memory: str, port: int, webui_port: int
) -> str:
    home = settings.home
    spark_class = str(spark_home() / "bin" / "spark-class")
    env = _spark_env(settings)
    url = f"spark://{HOST}:{port}"
    _launch(
        home,
        "master",
        [
            spark_class,
            "org.apache.spark.deploy.master.Master",
            "--host",
            HOST,
            "--port",
            str(port),
            "--webui-port",
            str(webui_port),
        ],
        port,
        url,
        env,
    )
    for index in range(1, workers + 1):
        work = home / "cluster" / f"worker-{index}"
        work.mkdir(parents=True, exist_ok=True)
        worker_port = _free_port()
        _launch(
            home,
            f"worker-{index}",
            [
                spark_class,
                "org.apache.spark.deploy.worker.Worker",
                url,
                "--host",
                HOST,
                "--port",
                str(worker_port),
                "--webui-port",
                "0",
                "--cores",
                str(cores),
                "--memory",
                memory,
                "--work-dir",
                str(work),
            ],
            worker_port,
            url,
            env,
        )
    _wait_for_workers(home, webui_port, workers)
    return url


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def _wait_for_workers(home: Path, webui_port: int, workers: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://{HOST}:{webui_port}/json/", timeout=2) as page:
                if json.load(page).get("aliveworkers", 0) >= workers:
                    return
        except (OSError, ValueError):
            pass
        time.sleep(0.5)
    raise ServiceError(
        f"the master did not see {workers} worker(s) in {timeout:.0f} s; see "
        f"{home / 'logs'}/worker-*.log"
    )


# --- PostgreSQL, MLflow, Thrift ----------------------------------------------------------------


@dataclass
class Credentials:
    writer_password: str
    analyst_password: str
    port: int

    def catalog_uri(self) -> str:
        return f"jdbc:postgresql://{HOST}:{self.port}/{CATALOG_DB}"

    def mlflow_store(self) -> str:
        """Without the password: it goes in PGPASSWORD, not on a command line `ps` shows."""
        return f"postgresql+psycopg2://{WRITER}@{HOST}:{self.port}/{MLFLOW_DB}"


def _credentials(home: Path, port: int) -> Credentials:
    """The roles' passwords, made once per lakehouse and kept readable by its owner only."""
    path = home / "services" / "credentials.json"
    if path.is_file():
        return Credentials(**{**json.loads(path.read_text()), "port": port})
    made = Credentials(secrets.token_urlsafe(16), secrets.token_urlsafe(16), port)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(
        json.dumps(
            {"writer_password": made.writer_password, "analyst_password": made.analyst_password}
        )
    )
    return made


def _postgres_bin(program: str) -> str:
    installed = Path("/usr/lib/postgresql").glob(f"*/bin/{program}")
    versions = [p for p in installed if p.parent.parent.name.isdigit()]
    for candidate in sorted(versions, key=lambda p: int(p.parent.parent.name), reverse=True):
        return str(candidate)
    if found := shutil.which(program):
        return found
    raise ServiceError(
        f"PostgreSQL's {program} is not installed: install Debian's postgresql "
        "(make system-deps does, as root)."
    )


def _postgres_dir(home: Path) -> tuple[Path, str | None]:
    """The data directory and the user PostgreSQL runs as (not root: it refuses)."""
    if os.geteuid() != 0:
        return home / "services" / "postgres", None
    # the postgres user must reach its data directory: keep it outside private temp dirs
    import hashlib

    digest = hashlib.sha256(str(home).encode()).hexdigest()[:12]
    return Path(f"/var/tmp/topolake-postgres-{digest}"), "postgres"


def _make_private_dir(data: Path, user: str | None) -> None:
    """The data directory, new and owned by `user`: under /var/tmp another local user could
    have made the path first (a symbolic link, or files PostgreSQL would run)."""
    data.parent.mkdir(parents=True, exist_ok=True)
    try:
        data.mkdir(mode=0o700)
    except FileExistsError:
        if data.is_symlink() or any(data.iterdir()):
            raise ServiceError(
                f"{data} exists and is not an empty PostgreSQL data directory of ours: "
                "remove it, then start the services again."
            ) from None
    if user:
        shutil.chown(data, user, user)


def remove_postgres_data(home: Path) -> None:
    """Delete the lakehouse's PostgreSQL data (stopped first): for throw-away set-ups."""
    stop(home, ["postgres"])
    shutil.rmtree(_postgres_dir(home)[0], ignore_errors=True)


def start_postgres(home: Path, port: int) -> Credentials:
    """Debian's PostgreSQL on 127.0.0.1:`port` with the catalog and MLflow databases."""
    credentials = _credentials(home, port)
    data, user = _postgres_dir(home)
    if not (data / "PG_VERSION").is_file():
        _make_private_dir(data, user)
        initdb = [
            _postgres_bin("initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "-E",
            "UTF8",
        ]
        argv = ["runuser", "-u", user, "--", *initdb] if user else initdb
        done = subprocess.run(argv, capture_output=True, text=True)
        if done.returncode:
            raise ServiceError(f"initdb of {data} failed: {done.stderr.strip()[-300:]}")
    _check_port(port, "--postgres-port")
    _launch(
        home,
        "postgres",
        [_postgres_bin("postgres"), "-D", str(data), "-h", HOST, "-p", str(port), "-k", str(data)],
        port,
        f"postgresql://{HOST}:{port}",
        user=user,
    )
    _create_roles(data, port, credentials)
    return credentials


def _connect_when_ready(socket_dir: Path, port: int, database: str, timeout: float = 60):
    """A superuser connection once PostgreSQL accepts them (it listens before it has finished
    starting up, e.g. while it recovers from a crash)."""
    import psycopg2

    deadline = time.monotonic() + timeout
    while True:
        try:
            return psycopg2.connect(host=str(socket_dir), port=port, user="postgres",
                                    dbname=database)  # fmt: skip
        except psycopg2.OperationalError as err:
            if time.monotonic() > deadline:
                raise ServiceError(f"PostgreSQL on port {port} accepts no connection: "
                                   f"{str(err).strip().splitlines()[-1]}") from err  # fmt: skip
            time.sleep(0.5)


def _create_roles(socket_dir: Path, port: int, c: Credentials) -> None:
    """The writer owns the catalog and MLflow databases; the analyst may only read."""
    from psycopg2 import sql

    admin = _connect_when_ready(socket_dir, port, "postgres")
    admin.autocommit = True
    with admin.cursor() as cursor:
        for role, password in ((WRITER, c.writer_password), (ANALYST, c.analyst_password)):
            cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
            verb = "ALTER" if cursor.fetchone() else "CREATE"
            cursor.execute(
                sql.SQL(verb + " ROLE {} LOGIN PASSWORD %s").format(sql.Identifier(role)),
                (password,),
            )
        for database in (CATALOG_DB, MLFLOW_DB):
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
            if not cursor.fetchone():
                cursor.execute(
                    sql.SQL("CREATE DATABASE {} OWNER {}").format(
                        sql.Identifier(database), sql.Identifier(WRITER)
                    )
                )
    admin.close()
    catalog = _connect_when_ready(socket_dir, port, CATALOG_DB)
    catalog.autocommit = True
    with catalog.cursor() as cursor:
        cursor.execute(f"GRANT CONNECT ON DATABASE {CATALOG_DB} TO {ANALYST}")
        cursor.execute(f"GRANT USAGE ON SCHEMA public TO {ANALYST}")
        cursor.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {ANALYST}")
        cursor.execute(
            f"ALTER DEFAULT PRIVILEGES FOR ROLE {WRITER} IN SCHEMA public "
            f"GRANT SELECT ON TABLES TO {ANALYST}"
        )
        cursor.execute(f"ALTER SCHEMA public OWNER TO {WRITER}")
    catalog.close()


def team_settings(settings: Settings, c: Credentials, role: str = WRITER) -> Settings:
    """`settings` on the shared catalog, as the writer or the analyst."""
    password = c.writer_password if role == WRITER else c.analyst_password
    return replace(
        settings,
        catalog_type="jdbc",
        catalog_uri=c.catalog_uri(),
        catalog_user=role,
        catalog_password=password,
    )


def start_mlflow(home: Path, c: Credentials, port: int) -> Running:
    _check_port(port, "--mlflow-port")
    artifacts = home / "mlartifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    mlflow = str(Path(sys.executable).with_name("mlflow"))
    return _launch(
        home,
        "mlflow",
        [
            mlflow,
            "server",
            "--backend-store-uri",
            c.mlflow_store(),
            "--artifacts-destination",
            artifacts.as_uri(),
            "--serve-artifacts",
            "--host",
            HOST,
            "--port",
            str(port),
        ],
        port,
        f"http://{HOST}:{port}",
        env={"PGPASSWORD": c.writer_password},
        timeout=180,
    )


def start_thrift(settings: Settings, name: str, port: int, option: str) -> Running:
    """pyspark's Spark Thrift Server on `settings` (its catalog user decides what it may do).

    It runs its queries in its own JVM (local[1]): on a standalone cluster a long-running
    application would hold every worker's cores, and the pipeline's jobs would wait for them.
    """
    _check_port(port, option)
    settings = replace(settings, master="local[1]")
    conf = settings.home / "services" / name / "conf"
    env = _spark_env(settings, conf)
    submit = str(spark_home() / "bin" / "spark-submit")
    return _launch(
        settings.home,
        name,
        [
            submit,
            "--class",
            "org.apache.spark.sql.hive.thriftserver.HiveThriftServer2",
            "--name",
            name,
            "--driver-memory",
            "1g",
            # the catalog's jars on the JVM's class path, not only in spark.jars: sessions open
            # in Hive's threads, whose class loader does not see spark.jars ("Cannot find
            # catalog plugin class"); not BigDL's, whose log4j breaks Hive's metastore
            "--driver-class-path",
            ":".join(str(jar) for jar in [iceberg_runtime_jar(), *catalog_jars(settings)]),
            "spark-internal",
            "--hiveconf",
            f"hive.server2.thrift.port={port}",
            "--hiveconf",
            f"hive.server2.thrift.bind.host={HOST}",
        ],
        port,
        f"jdbc:hive2://{HOST}:{port}",
        env,
        timeout=180,
    )


def beeline(url: str, user: str, statement: str, timeout: float = 120) -> str:
    """Run one statement with pyspark's beeline (the JDBC client analysts use); its output."""
    done = subprocess.run(
        [
            str(spark_home() / "bin" / "beeline"),
            "-u",
            url,
            "-n",
            user,
            "--silent=true",
            "--outputformat=csv2",
            "-e",
            statement,
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "SPARK_HOME": str(spark_home()), **_java_env()},
    )
    if done.returncode:
        raise ServiceError(f"beeline on {url} failed: {_last_line(done.stderr)}")
    return re.sub(r"^\d+: jdbc:hive2://\S+> ", "", done.stdout, flags=re.M)  # its prompt


def _java_env() -> dict[str, str]:
    return {"JAVA_HOME": home} if (home := java_home()) else {}


def pyiceberg_catalog(settings: Settings, c: Credentials, role: str = WRITER):
    """The shared catalog as pyiceberg's SQL catalog: the same PostgreSQL tables Iceberg's
    JdbcCatalog keeps, read and written without Spark (e.g. an ML user loading a pinned
    gold snapshot into Arrow)."""
    from pyiceberg.catalog.sql import SqlCatalog

    password = c.writer_password if role == WRITER else c.analyst_password
    return SqlCatalog(
        CATALOG,
        uri=f"postgresql+psycopg2://{role}:{password}@{HOST}:{c.port}/{CATALOG_DB}",
        warehouse=Path(settings.warehouse).as_uri(),
        init_catalog_tables=str(role == WRITER).lower(),
    )


def _create_default_namespace(settings: Settings, c: Credentials) -> None:
    """The catalog's tables and the namespace `default`, made by the writer: SQL clients
    (beeline, PyHive, dbt) start with `USE default`, and the analysts' catalog may create
    nothing, so both must exist before anyone connects."""
    from pyiceberg.exceptions import NamespaceAlreadyExistsError

    catalog = pyiceberg_catalog(settings, c)
    with contextlib.suppress(NamespaceAlreadyExistsError):
        catalog.create_namespace("default")


@dataclass
class TeamServices:
    credentials: Credentials
    mlflow: Running
    thrift: Running
    analyst_thrift: Running

    def environment(self) -> dict[str, str]:
        """What a user exports to work on these services (`topolake services env`)."""
        c = self.credentials
        return {
            "TOPOLAKE_CATALOG": "jdbc",
            "TOPOLAKE_CATALOG_URI": c.catalog_uri(),
            "TOPOLAKE_CATALOG_USER": WRITER,
            "TOPOLAKE_CATALOG_PASSWORD": c.writer_password,
            "MLFLOW_TRACKING_URI": self.mlflow.url,
        }


def start_services(
    settings: Settings,
    postgres_port: int = 5433,
    mlflow_port: int = 5000,
    thrift_port: int = 10000,
    analyst_port: int = 10001,
) -> TeamServices:
    """PostgreSQL, then MLflow on it, then a writers' and an analysts' Thrift Server."""
    home = settings.home
    known = running(home)
    names = ("postgres", "mlflow", "thrift", "thrift-analyst")
    if all(n in known and known[n].is_alive() for n in names):
        return TeamServices(
            _credentials(home, known["postgres"].port),
            known["mlflow"],
            known["thrift"],
            known["thrift-analyst"],
        )
    stop(home, list(names))  # a half-started set from before
    ports = {
        "--postgres-port": postgres_port,
        "--mlflow-port": mlflow_port,
        "--thrift-port": thrift_port,
        "--analyst-port": analyst_port,
    }
    for option, port in ports.items():  # all free before anything starts
        _check_port(port, option)
    with _stopped_on_failure(home, list(names)):
        return _start_services(settings, postgres_port, mlflow_port, thrift_port, analyst_port)


def _start_services(
    settings: Settings, postgres_port: int, mlflow_port: int, thrift_port: int, analyst_port: int
) -> TeamServices:
    home = settings.home
    credentials = start_postgres(home, postgres_port)
    _create_default_namespace(settings, credentials)
    mlflow = start_mlflow(home, credentials, mlflow_port)
    writer = team_settings(settings, credentials, WRITER)
    thrift = start_thrift(writer, "thrift", thrift_port, "--thrift-port")
    analyst = team_settings(settings, credentials, ANALYST)
    analyst_thrift = start_thrift(analyst, "thrift-analyst", analyst_port, "--analyst-port")
    return TeamServices(credentials, mlflow, thrift, analyst_thrift)


def services_environment(home: Path) -> dict[str, str]:
    known = running(home)
    if not {"postgres", "mlflow"} <= set(known):
        raise UsageError(f"No services run for {home}: start them with `topolake services start`.")
    return TeamServices(
        _credentials(home, known["postgres"].port),
        known["mlflow"],
        known.get("thrift"),
        known.get("thrift-analyst"),
    ).environment()
