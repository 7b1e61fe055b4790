"""The AUC table of the three classifiers on a lakehouse's validated gold (run by hand).

Default: ./lakehouse as `make run` leaves it (3 x 2,000 independent simulated events); a
larger sample is `topolake run --events N` first. Trains the HLF, particle-sequence and
inclusive models with the TF engine, evaluates each on the test split, and prints the table
beside the reference (PHYSICS.md: HLF < particle-sequence < inclusive expected).
"""

from __future__ import annotations

import argparse
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--home", default="lakehouse")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--max-particles", type=int, default=801)
    args = parser.parse_args()

    from ml.data import extract, pin_gold
    from ml.evaluate import COMPARISON_COLUMNS, comparison_rows, evaluate_run
    from ml.spec import TrainSpec
    from ml.training import train_and_track
    from topolake.core.settings import load_settings
    from topolake.core.spark import get_spark

    settings = load_settings(home=args.home)
    spark = get_spark(settings)
    data = extract(spark, settings, pin_gold(spark, None, skip_validation=False))
    print(
        f"physics benchmark, {time.strftime('%Y-%m-%d')}: {data.events} events "
        f"(gold {data.gold.snapshots}), {args.epochs} epochs, "
        f"{args.max_particles} particles"
    )
    evaluations = []
    for model in ("hlf", "particles", "inclusive"):
        spec = TrainSpec(model, epochs=args.epochs, max_particles=args.max_particles)
        started = time.perf_counter()
        trained = train_and_track(spark, settings, spec, "tf", 1, data, log=lambda line: None)
        evaluations.append(evaluate_run(spark, settings, trained.run_id))
        print(f"  {model}: trained in {time.perf_counter() - started:.0f} s, run {trained.run_id}")
    print(" | ".join(COMPARISON_COLUMNS))
    for row in comparison_rows(evaluations):
        print(" | ".join(row))
    spark.stop()


if __name__ == "__main__":
    main()
