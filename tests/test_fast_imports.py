"""The fast tests' modules import neither TensorFlow nor Spark nor BigDL (fast).

What keeps `pytest -m "not slow"` fast is that the pure logic (grids, padding, weight
conversion, snapshot specs, settings, planning) lives in modules that start no heavy runtime
when imported; those are imported where they are used. Checked in a fresh interpreter, since
this one has collected the slow modules too.
"""

from __future__ import annotations

import subprocess
import sys

FAST_MODULES = (
    "ml",
    "ml.baselines",
    "ml.bigdl_engine",
    "ml.data",
    "ml.evaluate",
    "ml.models",
    "ml.spec",
    "ml.tuning",
    "ml.uncertainty",
    "expectations.snapshots",
    "ingestion.sources",
    "simulation.tasks",
    "topolake.core.layout",
    "topolake.core.settings",
    "topolake.core.spark",
    "topolake.core.tables",
    "topolake.core.vocabulary",
)
HEAVY = ("tensorflow", "tf_keras", "keras", "pyspark", "py4j", "bigdl")


def test_the_fast_modules_load_no_tensorflow_spark_or_bigdl():
    script = (
        "import importlib, sys\n"
        f"for name in {FAST_MODULES!r}: importlib.import_module(name)\n"
        f"print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == []
