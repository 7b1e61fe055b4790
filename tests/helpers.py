"""Plain helpers the tests share (the fixtures are in conftest.py): the test Spark master, the
real `topolake` command, the shared Delphes files, dropping every lakehouse table."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

SHARED_DELPHES = (Path(__file__).resolve().parents[2] / "shared" / "data" / "delphes").resolve()
TEST_MASTER = "local[2]"
TOPOLAKE = str(Path(sys.executable).with_name("topolake"))


def drop_all_tables(spark) -> None:
    for namespace in ("bronze", "silver", "gold", "quality", "ml"):
        try:
            tables = spark.sql(f"SHOW TABLES IN lake.{namespace}").collect()
        except Exception:
            continue
        for table in tables:
            spark.sql(f"DROP TABLE IF EXISTS lake.{namespace}.{table.tableName} PURGE")


def run_topolake(
    *args: str, cwd: Path, home: Path | None = None, timeout: int = 600
) -> subprocess.CompletedProcess:
    """The real `topolake` command in its own process, as a user runs it."""
    env = {**os.environ, "SPARK_MASTER": TEST_MASTER}
    if home is not None:
        env["TOPOLAKE_HOME"] = str(home)
    return subprocess.run(
        [TOPOLAKE, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
