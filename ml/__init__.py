"""Training the classifiers from validated gold snapshots.

`models` builds the Keras architectures (the reference's three and a particle flow network,
whose masked sum is `pooling`), `data` turns a pinned, validated gold snapshot into scaled
training inputs (and defines the validation fifth of the training split), `tf_engine` trains
with TensorFlow (one process or multi-worker on Spark, batches padded per length bucket),
`bigdl_engine` with BigDL, both stopping early on the validation fifth; `baselines` fits the
reference's random forest and XGBoost with Spark ML; `training` runs any of them and
`tracking` records the run in MLflow, `evaluate` scores it on the test split with
`uncertainty`'s bootstrap intervals, `learning_curve` plots test accuracy by training size,
`tuning` searches a grid on Spark.
"""

import contextlib
import os

from topolake.core.native_logs import hold_tensorflow_notices

# XRootD's client extension crashes (SIGSEGV) on import once TensorFlow's libraries are loaded;
# loaded first, both work. A process that trains and then reads over XRootD must not crash.
with contextlib.suppress(ImportError):
    import XRootD.client  # noqa: F401
# tf-keras (Keras 2): Keras 3 fails under MultiWorkerMirroredStrategy (STACK.md).
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
# 3: TensorFlow's C++ notices, warnings and errors off ("failed call to cuInit" without a GPU);
# `topolake --verbose` sets 0. The notices TF writes while it loads, before it reads the level,
# are held to it too (topolake.core.native_logs), here and in Spark's Python workers.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
hold_tensorflow_notices()
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
