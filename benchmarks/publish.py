"""Iceberg -> Delta publishing throughput: published events per second per core, peak memory.

Publishes `gold.particle_sequences` (the widest gold table: up to 801 particles x 19 floats per
event) of a lakehouse with validated gold (default ./lakehouse, as `make run` leaves it) to a
fresh Delta location, timing the publish alone (executors write Parquet, one delta-rs commit).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure import peak_rss_mib  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--home", default=os.environ.get("TOPOLAKE_HOME", "lakehouse"))
    parser.add_argument("--master", default="local[*]")
    parser.add_argument("--table", default="lake.gold.particle_sequences")
    args = parser.parse_args()

    from publish.delta import publish
    from topolake.settings import load_settings
    from topolake.spark import get_spark

    spark = get_spark(load_settings(master=args.master, home=Path(args.home)))
    cores = spark.sparkContext.defaultParallelism
    target = tempfile.mkdtemp(prefix="topolake-bench-publish-")
    started = time.perf_counter()
    (result,) = publish(spark, [args.table], target)
    elapsed = time.perf_counter() - started
    rate = result.rows / elapsed / cores
    print(f"publish benchmark, {time.strftime('%Y-%m-%d')}, {os.uname().nodename}")
    print(f"  {args.table}@{result.snapshot_id}: {result.rows} events -> Delta version "
          f"{result.version} ({result.mode}), master {args.master}, {cores} cores")  # fmt: skip
    print(f"  publish (Parquet written by the executors + one delta-rs commit): {elapsed:.2f} s")
    print(f"  throughput: {rate:,.0f} events/s/core")
    print(f"  peak memory (driver + JVM + Python workers): {peak_rss_mib():,.0f} MiB")
    spark.stop()


if __name__ == "__main__":
    main()
