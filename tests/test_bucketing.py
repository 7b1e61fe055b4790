"""Training batches padded to their own longest sequence, drawn from length buckets: every
event once, little padding, and the same loss as padding to `max_particles`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ml.data import batches
from ml.spec import INPUTS, TrainSpec
from ml.tf_engine import BUCKET_GROWTH, bucket_boundaries
from topolake.core.vocabulary import HLF_FEATURES, PARTICLE_FEATURES

EVENTS = 300
MAX_PARTICLES = 801
MASKED_PARTICLE_MODELS = [m for m, inputs in INPUTS.items() if "particles" in inputs]


def test_buckets_grow_by_a_tenth_from_8_up_to_max_particles():
    bounds = bucket_boundaries(MAX_PARTICLES)
    assert bounds[0] == 8 and bounds[-1] <= MAX_PARTICLES < bounds[-1] * BUCKET_GROWTH + 1
    steps = np.diff(bounds)
    assert (steps >= 1).all() and (steps <= np.array(bounds[:-1]) * (BUCKET_GROWTH - 1) + 1).all()
    assert bucket_boundaries(5) == [8]  # one bucket below, one above: every length has one


@pytest.fixture(scope="module")
def extract_file(tmp_path_factory) -> tuple[Path, np.ndarray]:
    """EVENTS events with 1-120 particles; event e's HLF are all e (its identity), its
    particles' features are e + 1 + position / 1000 (never zero, so never mistaken for
    padding)."""
    rng = np.random.default_rng(3)
    counts = rng.integers(1, 121, EVENTS)
    event = np.repeat(np.arange(EVENTS), counts)
    position = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    values = (event + 1 + position / 1000).astype(np.float32)
    fields = [pa.array(values + i / 10) for i in range(len(PARTICLE_FEATURES))]
    offsets = pa.array(np.concatenate([[0], np.cumsum(counts)]).astype(np.int32))
    hlf_offsets = pa.array(np.arange(0, (EVENTS + 1) * len(HLF_FEATURES), len(HLF_FEATURES)))
    table = pa.table(
        {
            "label": pa.array(np.arange(EVENTS) % 3, pa.int32()),
            "hlf": pa.ListArray.from_arrays(
                hlf_offsets.cast(pa.int32()),
                pa.array(np.repeat(np.arange(EVENTS), len(HLF_FEATURES)).astype(np.float32)),
            ),
            "particles": pa.ListArray.from_arrays(
                offsets, pa.StructArray.from_arrays(fields, names=list(PARTICLE_FEATURES))
            ),
            "shuffle_key": pa.array(rng.integers(-(2**62), 2**62, EVENTS)),
        }
    )
    path = tmp_path_factory.mktemp("extract") / "part-0.parquet"
    pq.write_table(table, path)
    return path, counts


def one_pass(path: Path, spec: TrainSpec, **options) -> list[tuple[dict, np.ndarray]]:
    """The batches of one pass, each input by name."""
    from ml.tf_engine import tf_dataset

    dataset = tf_dataset([path], spec, None, repeat=False, **options)
    inputs = INPUTS[spec.model]
    named = (lambda x: x) if len(inputs) > 1 else (lambda x: {inputs[0]: x})  # noqa: E731
    return [({k: v.numpy() for k, v in named(x).items()}, y.numpy()) for x, y in dataset]


@pytest.mark.slow
def test_a_pass_reads_every_event_once_in_batches_of_similar_length(extract_file):
    path, counts = extract_file
    spec = TrainSpec("inclusive", batch_size=16, max_particles=100)
    seen, padded, real = [], 0, 0
    bounds = [0, *bucket_boundaries(spec.max_particles), np.inf]
    for x, labels in one_pass(path, spec):
        particles, events = x["particles"], x["hlf"][:, 0].astype(int)
        seen += events.tolist()
        np.testing.assert_array_equal(labels, events % 3)
        lengths = np.any(particles != 0, axis=2).sum(axis=1)
        assert particles.shape[1] == lengths.max() <= spec.max_particles  # its own longest
        np.testing.assert_array_equal(lengths, np.minimum(counts[events], spec.max_particles))
        # zero rows only after the real particles, which are the event's last ones
        for event, length, rows in zip(events, lengths, particles, strict=True):
            assert not rows[length:].any()
            last = event + 1 + (counts[event] - 1) / 1000
            assert rows[length - 1, 0] == pytest.approx(last, rel=1e-6)
        bucket = np.searchsorted(bounds, lengths, side="right")
        assert len(set(bucket)) == 1  # one bucket per batch
        padded, real = padded + particles.shape[0] * particles.shape[1], real + lengths.sum()
    assert sorted(seen) == list(range(EVENTS))
    assert padded / real < 1.5  # full padding to 100 would be > 1.5x here (mean length ~60)


@pytest.mark.slow
def test_the_second_pass_is_served_from_memory_with_the_same_batches(extract_file, tmp_path):
    import shutil

    from ml.tf_engine import tf_dataset

    copy = tmp_path / "part-0.parquet"
    shutil.copyfile(extract_file[0], copy)
    spec = TrainSpec("particles", batch_size=32, max_particles=64)
    dataset = tf_dataset([copy], spec, None, repeat=False)
    first = [(x.numpy(), y.numpy()) for x, y in dataset]
    copy.unlink()  # a second pass that read the file again would fail
    second = [(x.numpy(), y.numpy()) for x, y in dataset]
    assert len(first) == len(second)
    for (a, la), (b, lb) in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(la, lb)


@pytest.mark.slow
def test_workers_read_disjoint_shares_of_every_event(extract_file):
    spec = TrainSpec("hlf", batch_size=64)
    shares = [
        {
            int(e)
            for x, _ in one_pass(extract_file[0], spec, shard=(rank, 2))
            for e in x["hlf"][:, 0]
        }
        for rank in range(2)
    ]
    assert not shares[0] & shares[1] and shares[0] | shares[1] == set(range(EVENTS))


@pytest.mark.slow
@pytest.mark.parametrize("model", MASKED_PARTICLE_MODELS)
def test_a_batch_padded_to_its_longest_sequence_has_the_loss_of_full_padding(extract_file, model):
    import tf_keras as keras

    from ml.models import build_model

    spec = TrainSpec(model, max_particles=MAX_PARTICLES)
    net = build_model(model, MAX_PARTICLES, spec.architecture, seed=5)
    loss = keras.losses.SparseCategoricalCrossentropy()

    def batch_loss(fixed_width: bool) -> tuple[float, int]:
        x, y = next(
            batches(
                [extract_file[0]], 64, MAX_PARTICLES, None, INPUTS[model], fixed_width=fixed_width
            )
        )
        return float(loss(y, net(list(x) if len(x) > 1 else x[0], training=False))), x[0].shape[1]

    (full, full_width), (fitted, fitted_width) = batch_loss(True), batch_loss(False)
    assert full_width == MAX_PARTICLES and fitted_width <= 120
    assert fitted == pytest.approx(full, rel=1e-5, abs=1e-6)
