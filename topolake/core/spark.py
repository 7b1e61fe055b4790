"""The one SparkSession factory, and the spark-defaults.conf that dbt shares with it."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from topolake.core.reachability import check_reachable
from topolake.core.settings import (
    CATALOG,
    POSTGRESQL_JDBC_JAR,
    ConfigurationError,
    Settings,
    iceberg_runtime_jar,
    java_home,
    load_settings,
)

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

LOG4J2_PROPERTIES = """\
rootLogger.level = warn
rootLogger.appenderRef.stdout.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{HH:mm:ss} %p %c{1}: %m%n%ex
logger.hadoop.name = org.apache.hadoop
logger.hadoop.level = error
logger.spark_util.name = org.apache.spark.util.Utils
logger.spark_util.level = error
logger.hive.name = org.apache.hadoop.hive
logger.hive.level = error
logger.datanucleus.name = DataNucleus
logger.datanucleus.level = error
logger.iceberg_hadoop.name = org.apache.iceberg.hadoop
logger.iceberg_hadoop.level = error
# dbt's session method asks for a session that already exists, once per node
logger.existing_session.name = org.apache.spark.sql.SparkSession
logger.existing_session.level = error
# the JDBC catalog announces that it keeps no views (topolake makes none)
logger.jdbc_catalog.name = org.apache.iceberg.jdbc.JdbcCatalog
logger.jdbc_catalog.level = error
# wide nested schemas make Spark shorten plan strings, which it announces as a warning
logger.plan_strings.name = org.apache.spark.sql.catalyst.util.SparkStringUtils
logger.plan_strings.level = error
"""


def bigdl_jars() -> list[Path]:
    """BigDL's jars where it is installed: the JVM must have them from the start."""
    spec = importlib.util.find_spec("bigdl")
    if spec is None or not spec.submodule_search_locations:
        return []
    root = Path(next(iter(spec.submodule_search_locations)))
    return sorted(root.glob("share/*/lib/*.jar"))


def catalog_jars(settings: Settings) -> list[Path]:
    """The JDBC driver the catalog needs, if any: Debian's, checked to be there."""
    if settings.catalog_type != "jdbc":
        return []
    if not POSTGRESQL_JDBC_JAR.is_file():
        raise ConfigurationError(
            f"TOPOLAKE_CATALOG=jdbc needs PostgreSQL's JDBC driver at {POSTGRESQL_JDBC_JAR}: "
            "install Debian's libpostgresql-jdbc-java (make system-deps does, as root)."
        )
    return [POSTGRESQL_JDBC_JAR]


def catalog_properties(settings: Settings) -> dict[str, str]:
    """The Iceberg catalog `lake`: hadoop (files) by default, or JDBC on PostgreSQL."""
    if settings.catalog_type == "hadoop":
        return {"type": "hadoop", "warehouse": settings.warehouse}
    return {
        "type": "jdbc",
        "uri": settings.catalog_uri,
        "jdbc.user": settings.catalog_user,
        "jdbc.password": settings.catalog_password,
        "warehouse": settings.warehouse,
    }


def spark_properties(settings: Settings) -> dict[str, str]:
    """Every Spark property topolake relies on; the single source for all stages."""
    properties = {
        # spelt out: BigDL's engine reads local[*] as one core
        "spark.master": settings.master.replace("local[*]", f"local[{os.cpu_count()}]"),
        "spark.app.name": "topolake",
        "spark.jars": ",".join(
            str(jar) for jar in [iceberg_runtime_jar(), *bigdl_jars(), *catalog_jars(settings)]
        ),
        "spark.sql.extensions": (
            "org.apache.iceberg.spark.extensions.IcebergSparkSessionExtensions"
        ),
        f"spark.sql.catalog.{CATALOG}": "org.apache.iceberg.spark.SparkCatalog",
        **{f"spark.sql.catalog.{CATALOG}.{k}": v for k, v in catalog_properties(settings).items()},
        # Other processes (dbt, a second CLI call) commit to the same tables: never serve a
        # cached table state.
        f"spark.sql.catalog.{CATALOG}.cache-enabled": "false",
        "spark.sql.defaultCatalog": CATALOG,
        # dbt's session method enables Hive support: keep its metastore in memory so
        # concurrent processes never lock a Derby directory.
        "spark.hadoop.javax.jdo.option.ConnectionURL": "jdbc:derby:memory:metastore;create=true",
        "spark.sql.warehouse.dir": str(settings.home / "spark-warehouse"),
        "spark.driver.host": "127.0.0.1",
        "spark.driver.bindAddress": "127.0.0.1",
        "spark.driver.memory": settings.driver_memory,
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.shuffle.partitions": str(settings.shuffle_partitions),
        # Keep every shuffle partition: the particle isolation costs CPU per pair, not per
        # byte: AQE's merging by size left 3 tasks of very unequal work on the build benchmark.
        "spark.sql.adaptive.coalescePartitions.enabled": "false",
        "spark.pyspark.python": sys.executable,
        "spark.pyspark.driver.python": sys.executable,
        "spark.executorEnv.TOPOLAKE_HOME": str(settings.home),
    }
    if tf_level := os.environ.get("TF_CPP_MIN_LOG_LEVEL"):
        # TensorFlow's C++ log level as this process has it (`topolake --verbose`: 0), for the
        # Python workers of executors that do not inherit this environment (a cluster's)
        properties["spark.executorEnv.TF_CPP_MIN_LOG_LEVEL"] = tf_level
    if settings.master.startswith("spark://"):
        # a standalone cluster: executors of a fixed size the workers can give
        properties["spark.executor.memory"] = settings.executor_memory
        properties["spark.executor.cores"] = str(settings.executor_cores)
        if settings.cores_max:
            properties["spark.cores.max"] = str(settings.cores_max)
    properties.update(settings.extra_spark_conf)
    return properties


def write_spark_conf(settings: Settings, conf_dir: Path | None = None) -> Path:
    """Write spark-defaults.conf and log4j2.properties under `conf_dir` (default: the
    settings' conf dir, which SPARK_CONF_DIR names for dbt)."""
    conf_dir = conf_dir or settings.spark_conf_dir
    conf_dir.mkdir(parents=True, exist_ok=True)
    lines = [f"{key} {value}" for key, value in spark_properties(settings).items()]
    defaults = conf_dir / "spark-defaults.conf"
    defaults.touch(mode=0o600)  # it may hold the catalog's password
    defaults.chmod(0o600)
    defaults.write_text("\n".join(lines) + "\n")
    (conf_dir / "log4j2.properties").write_text(LOG4J2_PROPERTIES)
    return conf_dir


def prepare_environment(settings: Settings) -> dict[str, str]:
    """Set the environment a Spark JVM (ours or dbt's) needs, and return what was set."""
    env = {
        "SPARK_CONF_DIR": str(write_spark_conf(settings)),
        "PYSPARK_PYTHON": sys.executable,
        "PYSPARK_DRIVER_PYTHON": sys.executable,
        "SPARK_LOCAL_IP": "127.0.0.1",
        "TOPOLAKE_HOME": str(settings.home),
    }
    if home := java_home():
        env["JAVA_HOME"] = home
    os.environ.update(env)
    return env


def get_spark(settings: Settings | None = None) -> SparkSession:
    """The process's SparkSession with topolake's catalog, created on first use."""
    from pyspark.sql import SparkSession

    settings = settings or load_settings()
    check_reachable(settings)
    prepare_environment(settings)
    builder = SparkSession.builder
    for key, value in spark_properties(settings).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark
