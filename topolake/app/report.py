"""The run report: one self-contained HTML file (images inlined) with its PNGs beside it.

Everything in it is read back from where the pipeline left it (the tables, the quality
results, the tuning table, the MLflow runs and their evaluations), so the report states what
the lakehouse holds, not what the pipeline meant to do.
"""

from __future__ import annotations

import base64
import json
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

from topolake.core.settings import Settings
from topolake.core.tables import (
    BRONZE_EVENTS,
    GOLD_HLF_FEATURES,
    GOLD_TRAINING_SET,
    ML_TUNING_RESULTS,
    QUALITY_VALIDATIONS,
    SILVER_SELECTED_EVENTS,
)
from topolake.core.vocabulary import CLASSES, HLF_FEATURES, SAMPLE_LABELS

PACKAGES = (
    "pyspark",
    "dbt-core",
    "great-expectations",
    "tensorflow",
    "tf-keras",
    "bigdl-dllib-spark3",
    "mlflow",
    "uproot",
    "topolake",
)
FEATURE_SAMPLE = 100_000  # events per class drawn for the feature plots


@dataclass
class ReportInputs:
    evaluations: list  # ml.evaluate.Evaluation, one per trained model
    tuning_keys: list[str] = field(default_factory=list)  # this run's grid points
    timings: dict[str, float] = field(default_factory=dict)  # stage -> seconds
    learning_curve: list = field(default_factory=list)  # ml.learning_curve.LearningPoint


def sample_table(spark) -> list[dict]:
    """Events per class at each layer and the selection efficiency."""
    rows = spark.sql(f"""
WITH bronze AS (SELECT sample, count(*) AS events FROM {BRONZE_EVENTS} GROUP BY sample),
     silver AS (SELECT sample, count(*) AS selected FROM {SILVER_SELECTED_EVENTS} GROUP BY sample),
     gold AS (SELECT sample, count(*) AS features FROM {GOLD_HLF_FEATURES} GROUP BY sample),
     splits AS (SELECT sample, count_if(split = 'train') AS train, count_if(split = 'test') AS test
                FROM {GOLD_TRAINING_SET} GROUP BY sample)
SELECT b.sample, b.events, s.selected, g.features, t.train, t.test
FROM bronze b LEFT JOIN silver s USING (sample) LEFT JOIN gold g USING (sample)
LEFT JOIN splits t USING (sample)""").collect()
    table = []
    for r in sorted(rows, key=lambda r: SAMPLE_LABELS.get(r.sample, 99)):
        row = r.asDict()
        row["efficiency"] = (row["selected"] or 0) / row["events"] if row["events"] else 0.0
        table.append(row)
    return table


def feature_plot(spark, out: Path) -> Path:
    """The 14 HLF features per class, normalised, from the current gold table."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mplhep as hep
    import numpy as np

    hep.style.use("CMS")
    frame = spark.sql(f"""
SELECT label, {", ".join(HLF_FEATURES)} FROM (
  SELECT *, row_number() OVER (PARTITION BY label ORDER BY xxhash64(content_hash, entry)) AS n
  FROM {GOLD_HLF_FEATURES})
WHERE n <= {FEATURE_SAMPLE}""").toPandas()
    fig, axes = plt.subplots(3, 5, figsize=(28, 16), layout="constrained")
    names = CLASSES
    for ax, feature in zip(axes.flat, HLF_FEATURES, strict=False):
        values = frame[feature].to_numpy(dtype=float)
        low, high = np.nanpercentile(values, [0.5, 99.5]) if len(values) else (0, 1)
        bins = np.linspace(low, high if high > low else low + 1, 40)
        for label, name in enumerate(names):
            chosen = frame.loc[frame.label == label, feature].to_numpy(dtype=float)
            if len(chosen):
                counts, edges = np.histogram(np.clip(chosen, bins[0], bins[-1]), bins=bins)
                hep.histplot(counts / max(counts.sum(), 1), edges, ax=ax, label=name)
        ax.set_xlabel(feature)
    for ax in axes[:, 0]:
        ax.set_ylabel("Fraction of events")
    axes.flat[0].legend()
    for ax in list(axes.flat)[len(HLF_FEATURES) :]:
        ax.axis("off")
    path = out / "features.png"
    fig.savefig(path, dpi=60, bbox_inches="tight")
    plt.close(fig)
    return path


def quality_rows(spark) -> list[dict]:
    """The latest validation of each table."""
    if not spark.catalog.tableExists(QUALITY_VALIDATIONS):
        return []
    # validations recorded before severities existed have no warnings columns
    warned = (
        "coalesce(warned, 0) AS warned, warnings"
        if "warned" in spark.table(QUALITY_VALIDATIONS).columns
        else "0 AS warned, NULL AS warnings"
    )
    return [
        r.asDict()
        for r in spark.sql(f"""
SELECT layer, table_name, snapshot_id, validation_id, success, expectations, failed,
       {warned}, validated_at, data_docs
FROM (SELECT *, row_number() OVER (PARTITION BY table_name ORDER BY validated_at DESC) AS n
      FROM {QUALITY_VALIDATIONS})
WHERE n = 1 ORDER BY validated_at""").collect()
    ]


def tuning_rows(spark, keys: list[str]) -> list[dict]:
    if not keys or not spark.catalog.tableExists(ML_TUNING_RESULTS):
        return []
    quoted = ", ".join(f"'{k}'" for k in keys)
    return [
        r.asDict()
        for r in spark.sql(f"""
SELECT model, batch_size, epochs, hidden, learning_rate, fraction, train_events,
       validation_events, val_loss, val_accuracy, val_auc, seconds
FROM {ML_TUNING_RESULTS} WHERE point_key IN ({quoted})
ORDER BY val_auc DESC, val_loss""").collect()
    ]


def lineage(settings: Settings, evaluations: list) -> list[dict]:
    """Per trained model: its run, gold snapshots, validation id, git revision."""
    import mlflow

    from ml.tracking import use_tracking

    use_tracking(settings)
    rows = []
    for e in evaluations:
        tags = mlflow.get_run(e.run_id).data.tags
        rows.append(
            {
                "model": e.model,
                "run_id": e.run_id,
                "gold_snapshots": json.loads(tags.get("topolake.gold_snapshots", "{}")),
                "validation_id": tags.get("topolake.validation_id", ""),
                "git_revision": tags.get("topolake.git_revision", ""),
            }
        )
    return rows


def _inline(path: str | Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode()


def write_report(spark, settings: Settings, inputs: ReportInputs, out: Path | None = None) -> Path:
    """Write report.html and its PNGs under `out` (default $TOPOLAKE_HOME/report)."""
    from jinja2 import Environment, PackageLoader, select_autoescape

    from ml.evaluate import COMPARISON_COLUMNS, comparison_rows, differences

    out = out or settings.home / "report"
    out.mkdir(parents=True, exist_ok=True)
    images = {"features": feature_plot(spark, out)}
    for e in inputs.evaluations:
        for name, path in e.plots.items():
            copy = out / f"{e.model}-{name}.png"
            shutil.copyfile(path, copy)
            images[f"{e.model}-{name}"] = copy
    if inputs.learning_curve:
        from ml.learning_curve import plot_learning_curve

        images["learning-curve"] = plot_learning_curve(
            inputs.learning_curve, out / "learning-curve.png", "Test accuracy by training size"
        )
    environment = Environment(
        loader=PackageLoader("topolake.app", "templates"), autoescape=select_autoescape()
    )
    html = environment.get_template("report.html.j2").render(
        created=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        home=settings.home,
        samples=sample_table(spark),
        quality=quality_rows(spark),
        tuning=tuning_rows(spark, inputs.tuning_keys),
        evaluations=inputs.evaluations,
        comparison_columns=COMPARISON_COLUMNS,
        comparison=comparison_rows(inputs.evaluations),
        differences=differences(inputs.evaluations),
        bootstrap=next((e.bootstrap for e in inputs.evaluations if e.bootstrap), {}),
        lineage=lineage(settings, inputs.evaluations),
        versions={p: version(p) for p in PACKAGES},
        timings=inputs.timings,
        learning_curve=sorted(inputs.learning_curve, key=lambda p: (p.model, p.fraction)),
        image={name: _inline(path) for name, path in images.items()},
    )
    report = out / "report.html"
    report.write_text(html)
    return report
