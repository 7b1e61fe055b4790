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


def write_extract(path: Path, splits: dict[str, dict]):
    """A hand-made extract of HLF events (no particles) under `path`, as `ml.data.extract`
    lays one out: per split, a dict of the columns content_hash, entry, label, hlf (events x
    14, already in [0, 1]) and shuffle_key, each split in `files` Parquet files. Returns its
    `ml.data.Extract`, with a scaling that leaves the features as they are."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ml.data import Extract, GoldSnapshot, Scaling
    from topolake.core.vocabulary import HLF_FEATURES, PARTICLE_FEATURES

    events = {}
    for split, columns in splits.items():
        columns = dict(columns)
        files = columns.pop("files", 1)
        hlf = np.asarray(columns.pop("hlf"), np.float32)
        table = pa.table(
            {
                "content_hash": pa.array(columns["content_hash"], pa.string()),
                "entry": pa.array(columns["entry"], pa.int64()),
                "label": pa.array(columns["label"], pa.int32()),
                "hlf": pa.ListArray.from_arrays(
                    np.arange(0, hlf.size + 1, hlf.shape[1], dtype=np.int32), hlf.ravel()
                ),
                "shuffle_key": pa.array(columns["shuffle_key"], pa.int64()),
            }
        )
        directory = path / f"split={split}"
        directory.mkdir(parents=True)
        bounds = np.linspace(0, table.num_rows, files + 1).astype(int)
        for i in range(files):
            part = table.slice(bounds[i], bounds[i + 1] - bounds[i])
            pq.write_table(part, directory / f"part-{i:05d}.parquet")
        events[split] = table.num_rows
    scaling = Scaling(
        [0.0] * len(HLF_FEATURES),
        [1.0] * len(HLF_FEATURES),
        [0.0] * len(PARTICLE_FEATURES),
        [1.0] * len(PARTICLE_FEATURES),
    )
    return Extract(path, GoldSnapshot({}, None), events, scaling)
