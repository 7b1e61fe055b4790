"""Training the three classifiers from validated gold snapshots.

`models` builds the Keras architectures, `data` turns a pinned, validated gold snapshot into
scaled training inputs, `engines` trains on Spark (TensorFlow multi-worker), `tracking` records
runs in MLflow.
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
