"""The TensorFlow engine: one process, or multi-worker in a Spark barrier stage.

`--workers N > 1` runs N Spark barrier tasks, each a TensorFlow worker of a
MultiWorkerMirroredStrategy whose TF_CONFIG comes from the barrier context (the addresses of
all tasks, gathered with allGather). Each worker streams its share of the extract; gradients
are all-reduced every step, so every rank ends with the same weights, which is checked.

Training fits on the training split less its validation fifth and stops early on the
validation fifth's loss (`ml.data.PARTS`); the test split is left to `ml.evaluate`. Under
MultiWorkerMirroredStrategy the validation loss each rank's EarlyStopping reads is global:
Keras's metrics are sync-on-read variables (aggregation SUM of total and count), and at the
end of an evaluation `Model.evaluate` replaces the last step's logs with `metric.result()`
read in cross-replica context, which all-reduces them over every worker. Every rank thus sees
the same val_loss, stops at the same epoch and restores the same epoch's weights (checked).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import queue
import socket
import sys
import time

import numpy as np

from ml.data import Extract, Scaling, batches
from ml.models import build_model, compile_model
from ml.spec import INPUTS, EngineError, TooManyWorkers, TrainResult, TrainSpec


def tf_dataset(files, spec: TrainSpec, scaling: Scaling, shard=(0, 1), repeat=True, where=None):
    """Batches of the extract as a tf.data pipeline (repeated: steps per epoch are fixed).

    Keras starts a fresh iterator for every validation pass, so with `validation_steps` =
    ceil(events / global batch) each pass reads the same events: every one of them, except
    that with several workers a rank whose share fills one batch fewer than the others' reads
    its first batch twice (the same one every epoch)."""
    import tensorflow as tf

    from ml.models import N_HLF, N_PARTICLE_FEATURES

    inputs = INPUTS[spec.model]
    shapes = {"hlf": (None, N_HLF), "particles": (None, spec.max_particles, N_PARTICLE_FEATURES)}
    signature = (
        tuple(tf.TensorSpec(shapes[i], tf.float32) for i in inputs),
        tf.TensorSpec((None,), tf.int32),
    )

    def generate():
        while True:
            empty = True
            for batch in batches(
                files,
                spec.batch_size,
                spec.max_particles,
                scaling,
                inputs,
                shard,
                spec.architecture.padding,
                where,
            ):
                empty = False
                yield batch
            if not repeat:
                return
            if empty:  # repeating nothing would never end
                raise EngineError(f"worker {shard[0]} of {shard[1]} has no rows to read.")

    dataset = tf.data.Dataset.from_generator(generate, output_signature=signature)
    if len(inputs) == 1:
        dataset = dataset.map(lambda x, y: (x[0], y))
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    return dataset.with_options(options).prefetch(2)


def _fit(model, spec: TrainSpec, extract: Extract, shard, log) -> tuple[dict, float]:
    """Fit with a fixed number of steps per epoch, the same on every worker, for at most
    `spec.epochs` epochs: EarlyStopping on the validation fifth's loss ends it after
    `spec.patience` epochs without a lower one and restores the best epoch's weights."""
    import tf_keras as keras

    workers = shard[1]
    events = {part: extract.part_events(part) for part in ("train", "validation")}
    for part, count in events.items():
        if count < workers:
            raise EngineError(
                f"the {part} part of {extract.path} has {count} events, fewer than the "
                f"{workers} workers."
            )
    steps = math.ceil(events["train"] / (spec.batch_size * workers))
    validation_steps = math.ceil(events["validation"] / (spec.batch_size * workers))

    class EpochLog(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            shown = ", ".join(f"{k} {v:.4f}" for k, v in (logs or {}).items())
            log(f"epoch {epoch + 1}/{spec.epochs}: {shown}")

    started = time.perf_counter()
    train_files, train_rows = extract.part("train")
    validation_files, validation_rows = extract.part("validation")
    history = model.fit(
        tf_dataset(train_files, spec, extract.scaling, shard, where=train_rows),
        epochs=spec.epochs,
        steps_per_epoch=steps,
        validation_data=tf_dataset(
            validation_files, spec, extract.scaling, shard, where=validation_rows
        ),
        validation_steps=validation_steps,
        callbacks=[EpochLog(), early_stopping(spec.patience)],
        verbose=0,
    )
    seconds = time.perf_counter() - started
    history = {k: [float(v) for v in vs] for k, vs in history.history.items()}
    trained = steps * spec.batch_size * workers * len(history["loss"])
    return history, trained / seconds


def early_stopping(patience: int):
    """Stop once val_loss has not fallen for `patience` epochs; keep the best epoch's weights
    (restored at the end of training whether or not it stopped early)."""
    import tf_keras as keras

    return keras.callbacks.EarlyStopping(
        monitor="val_loss", patience=patience, restore_best_weights=True
    )


def digest(weights: list[np.ndarray]) -> str:
    h = hashlib.sha256()
    for w in weights:
        h.update(np.ascontiguousarray(w).tobytes())
    return h.hexdigest()


def train_single(spec: TrainSpec, extract: Extract, log=print) -> TrainResult:
    """One process, this machine's cores."""
    model = compile_model(
        build_model(spec.model, spec.max_particles, spec.architecture, spec.seed),
        spec.learning_rate,
    )
    started = time.perf_counter()
    history, rate = _fit(model, spec, extract, (0, 1), log)
    return TrainResult(model.get_weights(), history, 1, True, time.perf_counter() - started, rate)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def _tensorflow_worker(spec: TrainSpec, extract: Extract, rank: int, tf_config: str, results):
    """One TensorFlow worker, in a fresh process: TensorFlow's collectives can be set up
    only once per process, and Spark reuses its Python workers."""
    os.environ["TF_CONFIG"] = tf_config
    import tensorflow as tf

    workers = len(json.loads(tf_config)["cluster"]["worker"])
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    with strategy.scope():
        model = compile_model(
            build_model(spec.model, spec.max_particles, spec.architecture, spec.seed),
            spec.learning_rate,
        )

    def log(line: str) -> None:
        if rank == 0:
            print(f"[worker 0/{workers}] {line}", file=sys.stderr, flush=True)

    started = time.perf_counter()
    history, rate = _fit(model, spec, extract, (rank, workers), log)
    results.put(
        {
            "replicas": strategy.num_replicas_in_sync,
            "history": history,
            "rate": rate,
            "seconds": time.perf_counter() - started,
            "weights": model.get_weights(),
        }
    )


def _barrier_task(spec: TrainSpec, extract: Extract, workers: int):
    """What each barrier task runs: TF_CONFIG from the barrier context, then one worker."""

    def run(_):
        import multiprocessing

        from pyspark import BarrierTaskContext

        context = BarrierTaskContext.get()
        rank = context.partitionId()
        host = context.getTaskInfos()[rank].address.rsplit(":", 1)[0]
        addresses = context.allGather(f"{host}:{_free_port()}")
        tf_config = json.dumps(
            {"cluster": {"worker": addresses}, "task": {"type": "worker", "index": rank}}
        )
        spawn = multiprocessing.get_context("spawn")
        results = spawn.Queue()
        worker = spawn.Process(
            target=_tensorflow_worker, args=(spec, extract, rank, tf_config, results)
        )
        worker.start()
        outcome = _result_of(worker, results)
        worker.join()
        if outcome is None:
            raise EngineError(f"TensorFlow worker {rank} exited with code {worker.exitcode}.")
        digests = context.allGather(digest(outcome["weights"]))
        yield {
            **outcome,
            "rank": rank,
            "identical": len(set(digests)) == 1,
            "weights": outcome["weights"] if rank == 0 else None,
        }

    return run


def _result_of(worker, results) -> dict | None:
    """The worker's result, read before joining it (a process that put a large object on a
    queue ends only once it is read); None if the worker died without one."""
    while True:
        try:
            return results.get(timeout=1)
        except queue.Empty:
            if not worker.is_alive():
                return None


def check_workers(spark, workers: int) -> None:
    """Refuse more TensorFlow workers than the Spark master has task slots (a barrier stage
    needs all its tasks at once)."""
    slots = spark.sparkContext.defaultParallelism
    if workers > slots:
        raise TooManyWorkers(
            f"--workers {workers} exceeds the {slots} task slots of {spark.sparkContext.master}."
        )


def train_distributed(spark, spec: TrainSpec, extract: Extract, workers: int) -> TrainResult:
    """`workers` TensorFlow workers, one per Spark barrier task."""
    check_workers(spark, workers)
    ranks = (
        spark.sparkContext.parallelize(range(workers), workers)
        .barrier()
        .mapPartitions(_barrier_task(spec, extract, workers))
        .collect()
    )
    first = next(r for r in ranks if r["rank"] == 0)
    if any(r["replicas"] != workers for r in ranks):
        raise EngineError(f"the strategy synchronised {first['replicas']} replicas, not {workers}.")
    if len({len(r["history"]["loss"]) for r in ranks}) > 1:
        raise EngineError("the workers stopped early at different epochs.")
    return TrainResult(
        first["weights"],
        first["history"],
        first["replicas"],
        all(r["identical"] for r in ranks),
        max(r["seconds"] for r in ranks),
        first["rate"],
    )
