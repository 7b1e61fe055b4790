"""bronze -> gold throughput of the dbt build, in events per second per core.

Simulates a small ttbar + W+jets + QCD sample, then replicates it to --events events, each
copy rotated by a random angle in phi (physics-invariant: multiplicities, isolation and
selection rates stay those of the simulation, while every event is distinct). Lands them in a
fresh lakehouse and times a full `dbt build` of silver and gold. Reports the models' own
execution time (Spark work) and the whole build (with dbt's parsing and its 62 data tests).
Reference (PHYSICS.md): about 17 events/s/core for feature preparation. Target: >= 1,500.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import awkward as ak
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure import peak_rss_mib  # noqa: E402

TARGET = 1_500
REFERENCE = 17


def rotated_copies(path: Path, copies: int, seed: int) -> dict[str, ak.Array]:
    import uproot

    from topolake.core.layout import COLLECTIONS

    tree = uproot.open(path)["Delphes"]
    events = {
        name: ak.zip({f: tree[f"{name}.{f}"].array() for f in fields})
        for name, fields in COLLECTIONS.items()
    }
    rng = np.random.default_rng(seed)
    out: dict[str, list] = {name: [] for name in events}
    n = len(events["Jet"])
    for _ in range(copies):
        angle = rng.uniform(-np.pi, np.pi, n)
        for name, collection in events.items():
            phi = collection["Phi"] + angle
            wrapped = ak.values_astype(np.mod(phi + np.pi, 2 * np.pi) - np.pi, np.float32)
            out[name].append(ak.with_field(collection, wrapped, "Phi"))
    return {name: ak.concatenate(parts) for name, parts in out.items()}


def land_rotated_sample(spark, work: Path, events: int, simulate: int) -> int:
    """Simulate `simulate` events per sample and land phi-rotated copies of them in bronze,
    about `events` in all; returns the number of copies."""
    from ingestion.bronze import ingest
    from simulation.tasks import generate_locally, plan
    from simulation.writer import write_delphes
    from topolake.core.vocabulary import SAMPLE_LABELS

    copies = max(1, round(events / (3 * simulate)))
    for sample, label in SAMPLE_LABELS.items():
        (task,) = plan(sample, simulate, work / "simulated", seed=7, files=1)
        generate_locally([task], 1, lambda n: None)
        big = write_delphes(work / f"{sample}.root", rotated_copies(Path(task.path), copies, 1))
        ingest(spark, [str(big)], sample=sample, label=label)
    return copies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=24_000, help="bronze events in total")
    parser.add_argument("--simulate", type=int, default=800, help="simulated events per sample")
    args = parser.parse_args()

    from topolake.app.dbt_runner import invoke_dbt
    from topolake.core.settings import load_settings
    from topolake.core.spark import get_spark

    work = Path(tempfile.mkdtemp(prefix="topolake-bench-build-"))
    settings = load_settings(home=work / "lakehouse")
    spark = get_spark(settings)
    cores = spark.sparkContext.defaultParallelism
    copies = land_rotated_sample(spark, work, args.events, args.simulate)
    events = spark.table("lake.bronze.events").count()

    started = time.perf_counter()
    result = invoke_dbt(settings, "build")
    wall = time.perf_counter() - started
    model_seconds = sum(s for name, _, s in result.nodes if name.startswith("model."))
    selected = spark.table("lake.gold.hlf_features").count()

    print(
        f"build benchmark, {time.strftime('%Y-%m-%d')}: {events} bronze events "
        f"({copies} phi-rotated copies of 3 x {args.simulate} simulated), {cores} cores"
    )
    for name, status, seconds in result.nodes:
        if name.startswith("model."):
            print(f"  {name.split('.')[-1]:20} {status:8} {seconds:6.1f} s")
    print(f"  selected events (gold.hlf_features): {selected} ({selected / events:.1%})")
    print(
        f"  models: {model_seconds:.1f} s -> {events / model_seconds / cores:,.0f} events/s/core "
        f"(target {TARGET:,}; reference ~{REFERENCE})"
    )
    print(
        f"  whole dbt build incl. parsing and data tests: {wall:.1f} s -> "
        f"{events / wall / cores:,.0f} events/s/core"
    )
    print(f"  peak memory (driver + JVM + Python workers): {peak_rss_mib():,.0f} MiB")
    spark.stop()


if __name__ == "__main__":
    main()
