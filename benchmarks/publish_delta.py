"""Iceberg -> Delta publishing throughput: published events per second per core, peak memory.

Publishes the gold tables of a lakehouse to a fresh Delta location and times each publish
alone (executors write Parquet, one delta-rs commit). `gold.particle_sequences` is the widest
table (up to 801 particles x 19 floats per event). With --home, the lakehouse's newest validated
gold (as `make run` leaves it); without, the build benchmark's sample (phi-rotated copies of a
small simulation, --events in bronze) is landed and built in a temporary lakehouse, and its
current gold snapshots are published. Then one more small ingest and a republish of bronze
measure the incremental path (only the added rows written).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build import land_rotated_sample  # noqa: E402
from measure import peak_rss_mib  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--home", help="a lakehouse with validated gold (default: build one)")
    parser.add_argument("--events", type=int, default=24_000, help="bronze events, without --home")
    parser.add_argument("--simulate", type=int, default=800, help="simulated events per sample")
    parser.add_argument("--master", default="local[*]")
    args = parser.parse_args()

    from publish.delta import publish_table
    from topolake.app.dbt_runner import invoke_dbt
    from topolake.core.settings import load_settings
    from topolake.core.spark import get_spark
    from topolake.core.tables import BRONZE_EVENTS, LAYER_TABLES

    work = Path(tempfile.mkdtemp(prefix="topolake-bench-publish-"))
    home = Path(args.home) if args.home else work / "lakehouse"
    settings = load_settings(master=args.master, home=home)
    spark = get_spark(settings)
    cores = spark.sparkContext.defaultParallelism
    if not args.home:
        land_rotated_sample(spark, work, args.events, args.simulate)
        invoke_dbt(settings, "run")

    def current(table: str) -> str | None:
        if args.home:
            return None  # gold: the newest validated snapshot
        query = f"SELECT snapshot_id FROM {table}.snapshots ORDER BY committed_at DESC LIMIT 1"
        return str(spark.sql(query).first().snapshot_id)

    target = str(work / "delta")
    print(
        f"publish benchmark, {time.strftime('%Y-%m-%d')}, {os.uname().nodename}, "
        f"master {args.master}, {cores} cores"
    )
    for table in (*LAYER_TABLES["gold"], BRONZE_EVENTS):
        started = time.perf_counter()
        result = publish_table(spark, table, target, current(table))
        elapsed = time.perf_counter() - started
        print(
            f"  {table}@{result.snapshot_id}: {result.rows:,} rows ({result.mode}) in "
            f"{elapsed:.2f} s -> {result.rows / elapsed / cores:,.0f} rows/s/core"
        )
    if not args.home:
        from ingestion.bronze import ingest
        from simulation.tasks import generate_locally, plan

        (task,) = plan("ttbar", 200, work / "more", seed=8, files=1)
        generate_locally([task], 1, lambda n: None)
        ingest(spark, [task.path], sample="ttbar", label=1)
        started = time.perf_counter()
        result = publish_table(spark, BRONZE_EVENTS, target)
        elapsed = time.perf_counter() - started
        print(
            f"  {BRONZE_EVENTS} again after one more file: {result.rows:,} rows "
            f"({result.mode}) in {elapsed:.2f} s"
        )
    print(f"  peak memory (driver + JVM + Python workers): {peak_rss_mib():,.0f} MiB")
    spark.stop()


if __name__ == "__main__":
    main()
