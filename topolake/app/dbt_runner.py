"""Run the dbt project (silver and gold) on topolake's Spark settings, in this process.

dbt-spark's session method calls `SparkSession.builder.getOrCreate()`, so running dbt through
its programmatic entry point reuses the session topolake already configured: one JVM, the same
catalog and warehouse as `dbt build` run by hand with SPARK_CONF_DIR=$TOPOLAKE_HOME/conf.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from topolake.core.errors import TopolakeError
from topolake.core.project import dbt_profiles_dir, dbt_project_dir
from topolake.core.settings import CATALOG, Settings
from topolake.core.tables import LAYER_TABLES
from topolake.core.vocabulary import DBT_LAYERS


class BuildError(TopolakeError):
    """dbt failed; the message names the failing nodes and where the logs are."""


@dataclass
class BuildResult:
    nodes: list[tuple[str, str, float]]  # (unique id, status, seconds)


def dbt_environment(settings: Settings) -> dict[str, str]:
    """Where dbt reads its profile and writes its artefacts (manifest, partial-parse state,
    logs): under TOPOLAKE_HOME, never into the project, which may sit read-only in
    site-packages. Usage stats off: dbt would write a .user.yml into the profiles dir."""
    return {
        "DBT_PROFILES_DIR": str(dbt_profiles_dir()),
        "DBT_TARGET_PATH": str(settings.home / "dbt" / "target"),
        "DBT_LOG_PATH": str(settings.home / "dbt" / "logs"),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }


def built_before_content_identity(spark) -> list[str]:
    """Silver and gold tables built when events were keyed by path: they need a full refresh."""
    return [
        table
        for table in (*LAYER_TABLES["silver"], *LAYER_TABLES["gold"])
        if spark.catalog.tableExists(table) and "content_hash" not in spark.table(table).columns
    ]


def create_layers(spark) -> None:
    """dbt lists every layer's tables up front; Iceberg's catalog errors on absent ones."""
    for layer in DBT_LAYERS:
        spark.sql(f"CREATE NAMESPACE IF NOT EXISTS {CATALOG}.{layer}")


def invoke_dbt(settings: Settings, *command: str) -> BuildResult:
    """Run a dbt command, e.g. ("build", "--full-refresh") or ("docs", "generate").

    Runs in this process, on the SparkSession topolake configured (created if needed).
    """
    from dbt.cli.main import dbtRunner

    from topolake.core.spark import get_spark

    create_layers(get_spark(settings))
    os.environ.update(dbt_environment(settings))
    result = dbtRunner().invoke([*command, "--project-dir", str(dbt_project_dir())])
    run_results = getattr(result.result, "results", None) or []  # docs give a catalog
    nodes = [(r.node.unique_id, str(r.status), float(r.execution_time or 0.0)) for r in run_results]
    if not result.success:
        failed = [n for n, status, _ in nodes if status in ("error", "fail")]
        log = Path(settings.home) / "dbt" / "logs" / "dbt.log"
        detail = f"failing: {', '.join(failed)}" if failed else str(result.exception)
        raise BuildError(f"dbt {' '.join(command)} failed ({detail}); see {log}")
    return BuildResult(nodes)
