"""The BigDL engine: the same architectures, trained data-parallel over the Spark executors.

BigDL (bigdl-dllib-spark3, the successor of Analytics Zoo's Keras API that the reference
used) keeps one model replica per executor core and all-reduces the gradients through Spark's
block manager at every iteration, so training is synchronous by construction. Its recurrent
layers cannot skip padding, so its models take sequences padded in front and have no Masking
layer (`Architecture(masked=False)`). Initial weights come from the tf-keras model of the
same seed and trained weights go back into it, so tracking and evaluation are the same for
both engines.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from ml.data import Extract, batches
from ml.models import N_CLASSES, N_HLF, N_PARTICLE_FEATURES, build_model
from ml.spec import INPUTS, EngineError, Patience, TrainResult, TrainSpec
from topolake.core.errors import UsageError
from topolake.core.spark import bigdl_jars

#: The models `build_bigdl` has a twin of: the reference's. A particle flow network sums over
#: the real particles only, which needs the mask BigDL's models do not have.
BIGDL_MODELS = ("hlf", "particles", "inclusive")


def check_bigdl_model(model: str) -> None:
    """Refuse a model BigDL cannot train, before any Spark or BigDL work is done for it."""
    if model not in BIGDL_MODELS:
        raise UsageError(
            f"BigDL trains only {', '.join(BIGDL_MODELS)}, not {model}: use --engine tf."
        )


def bigdl_spec(spec: TrainSpec) -> TrainSpec:
    """The spec as BigDL trains it: front padding, no Masking layer."""
    check_bigdl_model(spec.model)
    return replace(spec, architecture=replace(spec.architecture, masked=False))


def start_bigdl(spark) -> tuple[int, int]:
    """Initialise BigDL's engine on the running SparkContext; (nodes, cores per node)."""
    if not bigdl_jars():
        raise EngineError(
            "BigDL is not installed: `make install` installs bigdl-dllib-spark3 2.4.0."
        )
    # BigDL otherwise points PYTHONHOME at the virtual environment, where no stdlib lives
    os.environ["PYTHONHOME"] = sys.base_prefix
    from bigdl.dllib.nncontext import init_nncontext
    from bigdl.dllib.utils.common import get_node_and_core_number

    # BigDL's JVM logs to ./bigdl.log unless told where: the lakehouse's logs
    logs = Path(os.environ.get("TOPOLAKE_HOME", ".")) / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    spark.sparkContext._jvm.java.lang.System.setProperty(
        "bigdl.utils.LoggerFilter.logFile", str(logs / "bigdl.log")
    )
    conf = spark.sparkContext.getConf()
    if conf.get("spark.master", "").startswith("spark://") and not conf.get("spark.cores.max"):
        # BigDL sizes its replicas from fixed resources: executors x cores each
        raise EngineError(
            "BigDL on a standalone master needs the application's total cores: set "
            "TOPOLAKE_CORES_MAX (workers x cores; `topolake cluster start` prints it)."
        )
    try:
        init_nncontext(redirect_spark_log=False)  # adopts the running SparkContext
    except Exception as err:  # the JVM's refusal, e.g. its jar missing from the classpath
        raise EngineError(f"BigDL could not start on this Spark session: {err}") from err
    return get_node_and_core_number()


def build_bigdl(name: str, max_particles: int, spec: TrainSpec):
    """The BigDL Keras-API twin of `ml.models.build_model(name, ...)` without masking."""
    from bigdl.dllib.keras.layers import GRU, Dense, Dropout, Input, merge
    from bigdl.dllib.keras.models import Model

    arch = spec.architecture
    hlf = Input(shape=(N_HLF,), name="hlf")
    if name == "hlf":
        x = hlf
        for i, width in enumerate(arch.hidden):
            x = Dense(width, activation="relu", name=f"dense_{i}")(x)
        return Model(hlf, Dense(N_CLASSES, activation="softmax", name="classes")(x))
    particles = Input(shape=(max_particles, N_PARTICLE_FEATURES), name="particles")
    gru = GRU(arch.gru_units, inner_activation="hard_sigmoid", name="gru")(particles)
    branch = Dropout(arch.dropout, name="dropout")(gru)
    if name == "particles":
        return Model(particles, Dense(N_CLASSES, activation="softmax", name="classes")(branch))
    x = merge([branch, hlf], mode="concat", name="gru_and_hlf")
    x = Dense(arch.inclusive_dense, activation="relu", name="dense")(x)
    return Model([particles, hlf], Dense(N_CLASSES, activation="softmax", name="classes")(x))


def _gru_to_bigdl(kernel, recurrent, bias):
    """tf-keras GRU (reset_after=False; gates z, r, h) -> BigDL's (r, z, h) blocks."""
    z, r, h = np.split(kernel, 3, axis=1)
    uz, ur, uh = np.split(recurrent, 3, axis=1)
    bz, br, bh = np.split(bias, 3)
    return [
        np.concatenate([r.T, z.T, h.T]),
        np.concatenate([br, bz, bh]),
        np.concatenate([ur.T, uz.T]),
        uh.T,
    ]


def _gru_to_keras(w_input, b, w_recurrent, w_candidate):
    r, z, h = np.split(w_input, 3)
    br, bz, bh = np.split(b, 3)
    ur, uz = np.split(w_recurrent, 2)
    return [
        np.concatenate([z.T, r.T, h.T], axis=1),
        np.concatenate([uz.T, ur.T, w_candidate.T], axis=1),
        np.concatenate([bz, br, bh]),
    ]


def _converted(weights: list[np.ndarray], name: str, gru, gru_arrays: int) -> list[np.ndarray]:
    """The GRU's arrays (if the model has one) through `gru`, then every Dense kernel
    transposed (the arrays come as kernel, bias pairs)."""
    head, rest = (
        ([], weights) if name == "hlf" else (gru(*weights[:gru_arrays]), weights[gru_arrays:])
    )
    return head + [w.T if i % 2 == 0 else w for i, w in enumerate(rest)]


def keras_to_bigdl(weights: list[np.ndarray], name: str) -> list[np.ndarray]:
    """tf-keras weights (model.get_weights order) -> BigDL's."""
    return _converted(weights, name, _gru_to_bigdl, 3)


def bigdl_to_keras(weights: list[np.ndarray], name: str) -> list[np.ndarray]:
    return _converted(weights, name, _gru_to_keras, 4)


def _samples(spec: TrainSpec, extract: Extract, part: str):
    """Per Spark partition (a list of extract files): BigDL Samples of a part of the extract
    (`ml.data.PARTS`), streamed with pyarrow."""
    inputs = INPUTS[spec.model]
    _, where = extract.part(part, spec.fraction if part == "train" else 1.0)

    def to_samples(files):
        from bigdl.dllib.utils.common import Sample

        paths = [Path(f) for f in files]
        for x, y in batches(
            paths,
            1024,
            spec.max_particles,
            extract.scaling,
            inputs,
            padding=spec.architecture.padding,
            where=where,
        ):
            labels = y.astype(np.float32)
            for i in range(len(y)):
                features = [a[i] for a in x]
                yield Sample.from_ndarray(features if len(features) > 1 else features[0], labels[i])

    return to_samples


def _sample_rdd(spark, spec: TrainSpec, extract: Extract, part: str, partitions: int):
    files = [str(f) for f in extract.part(part)[0]]
    return (
        spark.sparkContext.parallelize(files, max(1, min(partitions, len(files))))
        .mapPartitions(_samples(spec, extract, part))
        .repartition(partitions)
        .cache()
    )


def _evaluated(model, rdd, batch_size: int) -> dict[str, float]:
    """Loss and accuracy of the model on an RDD (BigDL gives the loss, then the metrics)."""
    loss, accuracy = (float(v) for v in model.evaluate(rdd, batch_size=batch_size))
    return {"loss": loss, "accuracy": accuracy}


def train_bigdl(spark, spec: TrainSpec, extract: Extract, workers: int, log=print) -> TrainResult:
    """Train with BigDL's distributed optimizer over `workers` partitions of the extract, one
    `fit` per epoch, stopping early on the validation fifth's loss in this loop (BigDL's own
    end triggers watch the training loss, not a validation loss) by `Patience`, the rule of
    Keras's EarlyStopping, and keeping the weights of the best epoch."""
    from bigdl.dllib.optim.optimizer import Adam

    spec = bigdl_spec(spec)  # refuses a model BigDL has no twin of, before starting BigDL
    nodes, cores = start_bigdl(spark)
    replicas = nodes * cores
    events = extract.part_events("train", spec.fraction)
    # BigDL splits each global batch over every core (a multiple of the replicas), and a
    # batch larger than a partition's rows fails: tiny samples get smaller batches
    per_core = min(spec.batch_size, max(1, events // (2 * replicas)))
    if per_core < spec.batch_size:
        log(
            f"batch size {per_core} per core: {events} training events are too few for "
            f"{spec.batch_size}"
        )
    global_batch = per_core * replicas
    train = _sample_rdd(spark, spec, extract, "train", workers)
    validation = _sample_rdd(spark, spec, extract, "validation", workers)
    initial = build_model(spec.model, spec.max_particles, spec.architecture, spec.seed)
    model = build_bigdl(spec.model, spec.max_particles, spec)
    model.set_weights(keras_to_bigdl(initial.get_weights(), spec.model))
    model.compile(
        optimizer=Adam(learningrate=spec.learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    history: dict[str, list[float]] = {}
    started = time.perf_counter()
    trained_seconds = 0.0
    patience, best_weights = Patience(spec.patience), None
    for epoch in range(spec.epochs):
        epoch_started = time.perf_counter()
        model.fit(train, batch_size=global_batch, nb_epoch=1, distributed=True)
        trained_seconds += time.perf_counter() - epoch_started
        scores = _evaluated(model, train, global_batch)
        scores |= {f"val_{k}": v for k, v in _evaluated(model, validation, global_batch).items()}
        for metric, value in scores.items():
            history.setdefault(metric, []).append(value)
        log(
            f"epoch {epoch + 1}/{spec.epochs}: "
            + ", ".join(f"{k} {v:.4f}" for k, v in scores.items())
        )
        if patience.improved(scores["val_loss"]) or best_weights is None:
            best_weights = model.get_weights()
        if patience.exhausted:
            log(f"early stop: val_loss has not fallen for {spec.patience} epoch(s)")
            break
    train.unpersist()
    validation.unpersist()
    weights = bigdl_to_keras(best_weights, spec.model)
    if not all(np.isfinite(w).all() for w in weights):
        raise EngineError("BigDL training diverged: the weights are not finite.")
    return TrainResult(
        weights,
        history,
        replicas,
        True,  # one set of weights: BigDL's replicas are synchronised every iteration
        time.perf_counter() - started,
        events * len(history["loss"]) / trained_seconds if trained_seconds else 0.0,
    )
