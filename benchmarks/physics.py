"""The physics table and the learning curve, on a lakehouse's validated gold (run by hand).

Default: ./lakehouse as `make run` leaves it; a larger sample is `topolake run --events N`
first. Every model is trained with early stopping on the validation fifth (`--epochs` is a
maximum), on each share of the fitted part in `--fractions`, and evaluated once on the whole
test split. Prints the table at the largest share (accuracy and three AUCs with their 95 %
intervals, training time, samples/s) beside the reference's, the learning curve, and whether
the reference's ordering HLF < particles < inclusive holds, from which training size on; writes
`physics.json`, `learning-curve.png` and a report (report.html) under `--out`.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from topolake.core.vocabulary import MODELS

#: The reference's ordering (PHYSICS.md): each model beats the one before it.
ORDER = ("hlf", "particles", "inclusive")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--home", default="lakehouse")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--fractions", default="0.05,0.15,0.4,1")
    parser.add_argument("--epochs", type=int, default=30, help="at most; early stopping")
    parser.add_argument("--patience", type=int, default=3)
    parser.add_argument("--max-particles", type=int, default=801)
    parser.add_argument("--out", type=Path, default=Path("physics"))
    args = parser.parse_args()

    from ml.data import extract, pin_gold
    from ml.evaluate import COMPARISON_COLUMNS, comparison_rows, differences, evaluate_run
    from ml.learning_curve import LearningPoint, ordering_from, plot_learning_curve
    from ml.spec import TrainSpec
    from ml.training import train_and_track
    from topolake.app.report import ReportInputs, write_report
    from topolake.core.settings import load_settings
    from topolake.core.spark import get_spark

    settings = load_settings(home=args.home)
    spark = get_spark(settings)
    data = extract(spark, settings, pin_gold(spark, None, skip_validation=False))
    models = args.models.split(",")
    fractions = sorted(float(f) for f in args.fractions.split(","))
    print(
        f"physics benchmark, {time.strftime('%Y-%m-%d')}: {data.events} events "
        f"(gold {data.gold.snapshots}), models {', '.join(models)}, shares {fractions}, "
        f"at most {args.epochs} epochs (patience {args.patience}), {args.max_particles} particles",
        flush=True,
    )
    points, largest, rows = [], {}, []
    for fraction in fractions:
        for model in models:
            spec = TrainSpec(
                model,
                epochs=args.epochs,
                max_particles=args.max_particles,
                patience=args.patience,
                fraction=fraction,
            )
            started = time.perf_counter()
            trained = train_and_track(spark, settings, spec, "tf", 1, data, log=lambda line: None)
            seconds = time.perf_counter() - started
            evaluation = evaluate_run(spark, settings, trained.run_id, args.out / trained.run_id)
            events = data.part_events("train", fraction)
            points.append(LearningPoint.of(evaluation, fraction, events))
            result = trained.result
            rows.append(
                {
                    "model": model,
                    "fraction": fraction,
                    "train_events": events,
                    "accuracy": evaluation.accuracy,
                    "intervals": evaluation.intervals,
                    "auc": evaluation.auc,
                    "seconds": seconds,
                    "samples_per_second": result.samples_per_second,
                    "epochs_run": result.epochs_run,
                    "best_epoch": result.best_epoch,
                    "run_id": trained.run_id,
                }
            )
            if fraction == fractions[-1]:
                largest[model] = evaluation
            print(
                f"  {model:9} x{fraction:<5} {events:7,} events: accuracy "
                f"{evaluation.accuracy:.4f} [{evaluation.intervals['accuracy'][0]:.4f}, "
                f"{evaluation.intervals['accuracy'][1]:.4f}], {result.epochs_run} epochs "
                f"(best {result.best_epoch}), {seconds:.0f} s, "
                f"{result.samples_per_second:,.0f} samples/s",
                flush=True,
            )
    evaluations = [largest[m] for m in models]
    print(f"\nat share {fractions[-1]} of the fitted part:")
    print(" | ".join(COMPARISON_COLUMNS))
    for row in comparison_rows(evaluations):
        print(" | ".join(row))
    print("\nsignificance (paired bootstrap on the same test events):")
    for d in differences(evaluations):
        if d["metric"] == "accuracy":
            print(f"  {d['first']} - {d['second']}: {d['difference']:+.4f} {d['verdict']}")
    if all(m in models for m in ORDER):
        since = ordering_from(points, ORDER)
        verdict = (
            f"holds from {since:,} training events per model on"
            if since
            else "does not hold at the largest size (each accuracy interval wholly below the next)"
        )
        print(f"\nthe reference's ordering {' < '.join(ORDER)} {verdict}")
    args.out.mkdir(parents=True, exist_ok=True)
    plot_learning_curve(points, args.out / "learning-curve.png", f"{data.events} events")
    (args.out / "physics.json").write_text(json.dumps(rows, indent=2))
    report = write_report(
        spark, settings, ReportInputs(evaluations, learning_curve=points), args.out
    )
    print(f"\n{args.out / 'physics.json'}, {args.out / 'learning-curve.png'}, {report}")
    spark.stop()


if __name__ == "__main__":
    main()
