"""Weights between tf-keras and BigDL: the GRU's gate blocks and the Dense kernels (fast).

Importing ml.bigdl_engine starts neither BigDL nor a JVM (test_fast_imports.py pins that),
so the conversion is checked on random arrays shaped as the models' weights.
"""

from __future__ import annotations

import numpy as np
import pytest

from ml.bigdl_engine import bigdl_to_keras, keras_to_bigdl
from ml.models import N_CLASSES, N_HLF, N_PARTICLE_FEATURES

UNITS, DENSE = 6, 4


def keras_weights(model: str, rng: np.random.Generator) -> list[np.ndarray]:
    """Random arrays in tf-keras's get_weights order and shapes (GRU with reset_after=False:
    kernel, recurrent kernel, bias; then each Dense's kernel and bias)."""
    gru = [(N_PARTICLE_FEATURES, 3 * UNITS), (UNITS, 3 * UNITS), (3 * UNITS,)]
    dense = {
        "hlf": [(N_HLF, 5), (5,), (5, 3), (3,), (3, N_CLASSES), (N_CLASSES,)],
        "particles": [*gru, (UNITS, N_CLASSES), (N_CLASSES,)],
        "inclusive": [*gru, (UNITS + N_HLF, DENSE), (DENSE,), (DENSE, N_CLASSES), (N_CLASSES,)],
    }[model]
    return [rng.standard_normal(shape).astype(np.float32) for shape in dense]


@pytest.mark.parametrize("model", ["hlf", "particles", "inclusive"])
def test_keras_to_bigdl_and_back_gives_the_same_arrays(model):
    weights = keras_weights(model, np.random.default_rng(3))
    back = bigdl_to_keras(keras_to_bigdl(weights, model), model)
    assert [w.shape for w in back] == [w.shape for w in weights]
    for original, returned in zip(weights, back, strict=True):
        np.testing.assert_array_equal(original, returned)


def test_the_gru_goes_to_bigdls_four_arrays_with_reset_gate_first():
    kernel, recurrent, bias, *_ = weights = keras_weights("particles", np.random.default_rng(5))
    w_input, b, w_recurrent, w_candidate, *dense = keras_to_bigdl(weights, "particles")
    z, r, h = (slice(i * UNITS, (i + 1) * UNITS) for i in range(3))  # tf-keras's gate order
    assert w_input.shape == (3 * UNITS, N_PARTICLE_FEATURES)
    np.testing.assert_array_equal(
        w_input, np.concatenate([kernel[:, r].T, kernel[:, z].T, kernel[:, h].T])
    )
    np.testing.assert_array_equal(b, np.concatenate([bias[r], bias[z], bias[h]]))
    assert w_recurrent.shape == (2 * UNITS, UNITS)
    np.testing.assert_array_equal(
        w_recurrent, np.concatenate([recurrent[:, r].T, recurrent[:, z].T])
    )
    np.testing.assert_array_equal(w_candidate, recurrent[:, h].T)
    np.testing.assert_array_equal(dense[0], weights[3].T)  # Dense kernels are transposed,
    np.testing.assert_array_equal(dense[1], weights[4])  # biases are not


def test_the_hlf_model_only_has_its_dense_kernels_transposed():
    weights = keras_weights("hlf", np.random.default_rng(7))
    converted = keras_to_bigdl(weights, "hlf")
    assert [w.shape for w in converted] == [
        (5, N_HLF),
        (5,),
        (3, 5),
        (3,),
        (N_CLASSES, 3),
        (N_CLASSES,),
    ]
    for i, (w, c) in enumerate(zip(weights, converted, strict=True)):
        np.testing.assert_array_equal(c, w.T if i % 2 == 0 else w)
