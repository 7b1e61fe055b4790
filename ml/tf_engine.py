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

from ml.data import Extract, Scaling
from ml.models import build_model, compile_model
from ml.spec import INPUTS, EngineError, TooManyWorkers, TrainResult, TrainSpec

#: Length buckets for training batches: each boundary about 10 % above the last, so that a
#: batch padded to its longest sequence is at most about a tenth padding.
BUCKET_GROWTH = 1.1
#: A part of an extract whose columns Parquet holds in up to this many bytes (uncompressed)
#: is read once and served from memory from the second epoch on; a larger one streams from
#: the files every epoch.
MEMORY_BYTES = 2 * 1024**3


def bucket_boundaries(max_particles: int) -> list[int]:
    """Upper bounds (exclusive) of the sequence-length buckets, from 8 up to `max_particles`."""
    bounds = [8]
    while bounds[-1] <= max_particles:
        bounds.append(max(bounds[-1] + 1, math.ceil(bounds[-1] * BUCKET_GROWTH)))
    return bounds[:-1] if len(bounds) > 1 else bounds


def in_memory(files, columns: list[str], fraction: float = 1.0) -> bool:
    """Whether `fraction` of these columns of `files` fits in `MEMORY_BYTES`."""
    import pyarrow.parquet as pq

    size = 0
    for file in files:
        meta = pq.ParquetFile(file).metadata
        for group in range(meta.num_row_groups):
            chunks = meta.row_group(group)
            for c in range(chunks.num_columns):
                chunk = chunks.column(c)
                if chunk.path_in_schema.split(".")[0] in columns:
                    size += chunk.total_uncompressed_size
    return size * fraction <= MEMORY_BYTES


def tf_dataset(
    files,
    spec: TrainSpec,
    scaling: Scaling,
    shard=(0, 1),
    repeat=True,
    where=None,
    buckets=True,
):
    """Batches of the extract as a tf.data pipeline (repeated: steps per epoch are fixed).

    Python reads the files a record batch (4,096 events) at a time and hands tf.data each
    event's scaled particles unpadded (a ragged tensor); tf.data splits them into events and
    batches them. With `buckets`, a batch is drawn from events of similar length (buckets
    `bucket_boundaries`, about 10 % wide), and every batch is padded, zero rows after the real
    particles, to its own longest sequence, so the masked recurrent layers step through
    little more than the real particles. A part that fits `MEMORY_BYTES` is cached in memory
    after the first pass.

    Keras starts a fresh iterator for every validation pass: unbucketed (`buckets=False`)
    with `validation_steps` = ceil(events / global batch), each pass reads the same events,
    every one of them, except that with several workers a rank whose share fills one batch
    fewer than the others' reads its first batch twice (the same one every epoch)."""
    import tensorflow as tf

    from ml.data import hlf_values, input_columns, kept_particles, records
    from ml.models import N_HLF, N_PARTICLE_FEATURES

    if not spec.architecture.masked:
        raise EngineError("tf.data batches are post-padded: the model must mask its padding.")
    inputs = INPUTS[spec.model]
    columns = input_columns(inputs)
    signature = {"label": tf.TensorSpec((None,), tf.int32)}
    if "hlf" in inputs:
        signature["hlf"] = tf.TensorSpec((None, N_HLF), tf.float32)
    if "particles" in inputs:
        signature["values"] = tf.TensorSpec((None, N_PARTICLE_FEATURES), tf.float32)
        signature["counts"] = tf.TensorSpec((None,), tf.int64)

    def chunks():
        empty = True
        for record, rows in records(files, columns, shard, where):
            empty = False
            labels = record.column("label").to_numpy()
            chunk = {"label": (labels if rows is None else labels[rows]).astype(np.int32)}
            if "hlf" in inputs:
                chunk["hlf"] = hlf_values(record, scaling, rows)
            if "particles" in inputs:
                values, counts = kept_particles(
                    record.column("particles"), spec.max_particles, scaling, rows
                )
                chunk["values"], chunk["counts"] = values, counts.astype(np.int64)
            yield chunk
        if empty:  # an empty part would never fill a batch
            raise EngineError(f"worker {shard[0]} of {shard[1]} has no rows to read.")

    def events(chunk):
        x = {name: chunk[name] for name in inputs if name == "hlf"}
        if "particles" in inputs:
            x["particles"] = tf.RaggedTensor.from_row_lengths(chunk["values"], chunk["counts"])
        return x, chunk["label"]

    def dense(x, y):  # an event's particles come out of `unbatch` as a 0-ragged tensor
        if "particles" in x:
            x = {**x, "particles": tf.convert_to_tensor(x["particles"])}
        return x, y

    dataset = tf.data.Dataset.from_generator(chunks, output_signature=signature)
    if in_memory(files, columns):
        dataset = dataset.cache()
    if buckets and repeat:  # training: batches may span passes, buckets never run dry
        dataset = dataset.repeat()
    dataset = dataset.map(events).unbatch().map(dense)
    if "particles" not in inputs:
        dataset = dataset.batch(spec.batch_size)
    elif buckets:
        bounds = bucket_boundaries(spec.max_particles)
        dataset = dataset.bucket_by_sequence_length(
            lambda x, y: tf.shape(x["particles"])[0],
            bounds,
            [spec.batch_size] * (len(bounds) + 1),
        )
    else:
        dataset = dataset.padded_batch(spec.batch_size)
    if repeat and not buckets:  # validation: each pass its own batches, the last one short
        dataset = dataset.repeat()
    if len(inputs) == 1:
        dataset = dataset.map(lambda x, y: (x[inputs[0]], y))
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    return dataset.with_options(options).prefetch(2)


def _fit(model, spec: TrainSpec, extract: Extract, shard, log) -> tuple[dict, float]:
    """Fit with a fixed number of steps per epoch, the same on every worker, for at most
    `spec.epochs` epochs: EarlyStopping on the validation fifth's loss ends it after
    `spec.patience` epochs without a lower one and restores the best epoch's weights."""
    import tf_keras as keras

    workers = shard[1]
    events = {
        "train": extract.part_events("train", spec.fraction),
        "validation": extract.part_events("validation"),
    }
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
    train_files, train_rows = extract.part("train", spec.fraction)
    validation_files, validation_rows = extract.part("validation")
    history = model.fit(
        tf_dataset(train_files, spec, extract.scaling, shard, where=train_rows),
        epochs=spec.epochs,
        steps_per_epoch=steps,
        validation_data=tf_dataset(
            validation_files, spec, extract.scaling, shard, where=validation_rows, buckets=False
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
