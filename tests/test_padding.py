"""Particle sequences to fixed-size arrays: padding, truncation, scaling, batches (fast)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ml.data import Scaling, batches, kept_particles, pad_particles
from ml.models import Architecture
from topolake.core.vocabulary import HLF_FEATURES, PARTICLE_FEATURES

N = len(PARTICLE_FEATURES)


def particle(value: float) -> dict[str, float]:
    """A particle whose i-th feature is value + i / 100: each row is recognisable."""
    return {f: value + i / 100 for i, f in enumerate(PARTICLE_FEATURES)}


def row(value: float) -> np.ndarray:
    return np.array([value + i / 100 for i in range(N)], np.float32)


def sequences(counts: list[int]) -> pa.ListArray:
    """Event e holds particles 10e + 1, 10e + 2, ... (in that order)."""
    events = [[particle(10 * e + k + 1) for k in range(n)] for e, n in enumerate(counts)]
    return pa.array(events, pa.list_(pa.struct([(f, pa.float32()) for f in PARTICLE_FEATURES])))


def test_post_padding_puts_zero_rows_after_the_real_particles():
    out = pad_particles(sequences([2, 0, 3]), 3, None)
    assert out.shape == (3, 3, N) and out.dtype == np.float32
    np.testing.assert_allclose(out[0, :2], [row(1), row(2)])
    assert not out[0, 2].any()
    assert not out[1].any()  # an event without particles is all padding
    np.testing.assert_allclose(out[2], [row(21), row(22), row(23)])


def test_pre_padding_puts_the_zero_rows_first_so_the_real_particles_come_last():
    out = pad_particles(sequences([2, 1]), 4, None, padding="pre")
    assert not out[0, :2].any()
    np.testing.assert_allclose(out[0, 2:], [row(1), row(2)])
    assert not out[1, :3].any()
    np.testing.assert_allclose(out[1, 3], row(11))


@pytest.mark.parametrize("padding", ["post", "pre"])
def test_long_events_keep_their_last_max_particles_either_way(padding):
    out = pad_particles(sequences([5, 1]), 2, None, padding=padding)
    np.testing.assert_allclose(out[0], [row(4), row(5)])  # the first three are dropped
    expected = [row(11), 0 * row(0)] if padding == "post" else [0 * row(0), row(11)]
    np.testing.assert_allclose(out[1], expected)


def test_scaling_applies_to_real_particles_and_padding_stays_zero():
    scaling = Scaling(
        hlf_min=[0.0] * len(HLF_FEATURES),
        hlf_max=[1.0] * len(HLF_FEATURES),
        particle_mean=[1.0] * N,
        particle_std=[2.0] * (N - 1) + [0.0],
    )
    out = pad_particles(sequences([1]), 2, scaling)
    expected = (row(1) - 1.0) / 2.0
    expected[-1] = row(1)[-1] - 1.0  # a zero spread leaves the feature unscaled
    np.testing.assert_allclose(out[0, 0], expected, rtol=1e-6)
    assert not out[0, 1].any()


def test_fields_are_read_by_name_in_the_contract_order_and_chunks_are_joined():
    reordered = sequences([2, 3]).cast(
        pa.list_(pa.struct([(f, pa.float32()) for f in reversed(PARTICLE_FEATURES)]))
    )
    chunked = pa.chunked_array([reordered.slice(0, 1), reordered.slice(1)])
    np.testing.assert_array_equal(
        pad_particles(chunked, 4, None), pad_particles(sequences([2, 3]), 4, None)
    )


def test_each_engine_gets_the_padding_its_recurrent_layer_needs():
    from ml.bigdl_engine import bigdl_spec
    from ml.spec import TrainSpec

    assert Architecture().padding == "post"  # tf-keras: a Masking layer skips trailing zeros
    assert bigdl_spec(TrainSpec("particles")).architecture.padding == "pre"


def test_batches_split_the_rows_between_workers_and_keep_the_where_rows(tmp_path):
    events = 10
    table = pa.table(
        {
            "label": pa.array(np.arange(events) % 3, pa.int32()),
            "hlf": pa.array(
                [[float(e)] * len(HLF_FEATURES) for e in range(events)], pa.list_(pa.float32())
            ),
            "particles": sequences([e % 4 for e in range(events)]),
            "shuffle_key": pa.array(np.arange(events), pa.int64()),
        }
    )
    path = tmp_path / "part-0.parquet"
    pq.write_table(table, path)

    def hlf_rows(shard, where=None) -> list[float]:
        found = []
        for (hlf, particles), labels in batches(
            [path], 3, 5, None, ("hlf", "particles"), shard=shard, where=where
        ):
            assert len(hlf) == len(particles) == len(labels) <= 3
            real = np.any(particles != 0, axis=2).sum(axis=1)
            assert particles.shape[1:] == (max(real.max(), 0), N)  # the batch's longest
            found += hlf[:, 0].tolist()
        return found

    assert hlf_rows((0, 2)) == [0, 2, 4, 6, 8] and hlf_rows((1, 2)) == [1, 3, 5, 7, 9]
    odd = lambda record: record.column("shuffle_key").to_numpy() % 2 == 1  # noqa: E731
    assert hlf_rows((0, 1), where=odd) == [1, 3, 5, 7, 9]


def test_a_post_padded_batch_is_as_wide_as_its_longest_sequence_unless_fixed():
    column = sequences([2, 5, 1])
    assert pad_particles(column, 801, None, fit=True).shape == (3, 5, N)
    assert pad_particles(column, 4, None, fit=True).shape == (3, 4, N)  # capped: truncated
    np.testing.assert_array_equal(
        pad_particles(column, 801, None, fit=True), pad_particles(column, 801, None)[:, :5]
    )
    assert pad_particles(sequences([0, 0]), 801, None, fit=True).shape == (2, 0, N)


def test_kept_particles_are_each_events_last_ones_in_order():
    values, counts = kept_particles(sequences([3, 1]), 2, None)
    np.testing.assert_array_equal(counts, [2, 1])
    np.testing.assert_allclose(values, [row(2), row(3), row(11)])
