"""Training the three classifiers from validated gold snapshots.

`models` builds the Keras architectures, `data` turns a pinned, validated gold snapshot into
scaled training inputs, `engines` trains on Spark (TensorFlow multi-worker), `tracking` records
runs in MLflow.
"""

import os

# tf-keras (Keras 2): Keras 3 fails under MultiWorkerMirroredStrategy (STACK.md).
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
