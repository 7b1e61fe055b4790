"""Training the three classifiers from validated gold snapshots.

`models` builds the Keras architectures, `data` turns a pinned, validated gold snapshot into
scaled training inputs, `engines` trains with TensorFlow (one process or multi-worker on
Spark), `bigdl_engine` with BigDL, `training` runs either and `tracking` records the run in
MLflow, `evaluate` scores it on the test split, `tuning` searches a grid on Spark.
"""

import contextlib
import os

# XRootD's client extension crashes (SIGSEGV) on import once TensorFlow's libraries are loaded;
# loaded first, both work. A process that trains and then reads over XRootD must not crash.
with contextlib.suppress(ImportError):
    import XRootD.client  # noqa: F401
# tf-keras (Keras 2): Keras 3 fails under MultiWorkerMirroredStrategy (STACK.md).
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
