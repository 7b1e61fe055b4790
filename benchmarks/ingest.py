"""ROOT -> lake.bronze.events throughput, in events per second per core, and peak memory.

Writes a Delphes-layout file of --events events with uproot (realistic multiplicities: about
100 tracks, 40 photons and 30 neutral hadrons per event), then times one `ingest` on a fresh
lakehouse with Spark's default local[*] master. Session start-up is excluded and reported.
Reference (PHYSICS.md): about 17 events/s/core for the whole data preparation of the paper.
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

REFERENCE_EVENTS_PER_S_PER_CORE = 17
TARGET_EVENTS_PER_S_PER_CORE = 2_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=120_000)
    parser.add_argument("--step", type=int, default=10_000)
    parser.add_argument("--master", default="local[*]")
    args = parser.parse_args()

    from ingestion.bronze import ingest
    from simulation.synthetic import synthetic_events
    from simulation.writer import write_delphes
    from topolake.core.settings import load_settings
    from topolake.core.spark import get_spark

    work = Path(tempfile.mkdtemp(prefix="topolake-bench-ingest-"))
    path = write_delphes(work / "events.root", synthetic_events(args.events, seed=1))
    size_mib = path.stat().st_size / 2**20

    started = time.perf_counter()
    spark = get_spark(load_settings(master=args.master, home=work / "lakehouse"))
    cores = spark.sparkContext.defaultParallelism
    startup = time.perf_counter() - started

    started = time.perf_counter()
    report = ingest(spark, [str(path)], sample="ttbar", label=1, step=args.step)
    elapsed = time.perf_counter() - started
    assert report.events == args.events, report

    rate = args.events / elapsed / cores
    print(f"ingest benchmark, {time.strftime('%Y-%m-%d')}, {os.uname().nodename}")
    print(f"  file: {args.events} events, {size_mib:.1f} MiB; master {args.master}, {cores} cores")
    print(f"  Spark session start-up: {startup:.1f} s (excluded)")
    print(f"  ingest (survey + read + one Iceberg commit): {elapsed:.2f} s")
    print(
        f"  throughput: {rate:,.0f} events/s/core "
        f"(target {TARGET_EVENTS_PER_S_PER_CORE:,}; reference ~{REFERENCE_EVENTS_PER_S_PER_CORE})"
    )
    print(f"  peak memory (driver + JVM + Python workers): {peak_rss_mib():,.0f} MiB")
    spark.stop()


if __name__ == "__main__":
    main()
