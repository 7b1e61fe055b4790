"""The particle flow network ("pfn"): a sum over the real particles, so blind to their order
and to padding; saved and reloaded as .keras; trained and evaluated through the CLI; refused
by BigDL, which has no twin of it (the refusal is fast, the rest needs TensorFlow: slow)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from ml.bigdl_engine import bigdl_spec
from ml.models import N_HLF, N_PARTICLE_FEATURES, Architecture, build_model
from ml.spec import TrainSpec
from tests.helpers import run_topolake
from topolake.core.errors import UsageError

#: small widths: the properties hold for any, and the model builds in a moment
SMALL = Architecture(pfn_phi=(16, 16), pfn_f=(16,))
COUNTS = (5, 1, 9, 3)  # real particles per event


def events(rng: np.random.Generator, pad_to: int = 9) -> tuple[np.ndarray, np.ndarray]:
    """Particles as `ml.data` pads them (zero rows after the real ones, which are never all
    zero) and HLF, for events of COUNTS particles."""
    particles = np.zeros((len(COUNTS), pad_to, N_PARTICLE_FEATURES), np.float32)
    for i, count in enumerate(COUNTS):
        particles[i, :count] = rng.uniform(0.05, 1.0, (count, N_PARTICLE_FEATURES))
    return particles, rng.uniform(0, 1, (len(COUNTS), N_HLF)).astype(np.float32)


def scores(model, particles: np.ndarray, hlf: np.ndarray) -> np.ndarray:
    return model.predict([particles, hlf], verbose=0)


@pytest.fixture(scope="module")
def pfn():
    return build_model("pfn", 64, SMALL, seed=3)


def test_bigdl_refuses_the_pfn_in_one_sentence():
    with pytest.raises(UsageError, match=r"^BigDL trains only hlf, particles, inclusive, not pfn"):
        bigdl_spec(TrainSpec("pfn"))
    assert bigdl_spec(TrainSpec("inclusive")).architecture.masked is False


@pytest.mark.slow
def test_the_scores_ignore_the_order_of_the_particles_and_the_padding(pfn):
    rng = np.random.default_rng(1)
    particles, hlf = events(rng)
    expected = scores(pfn, particles, hlf)
    permuted = particles.copy()
    for i, count in enumerate(COUNTS):
        permuted[i, :count] = particles[i, rng.permutation(count)]
    np.testing.assert_allclose(scores(pfn, permuted, hlf), expected, rtol=1e-5, atol=1e-6)
    padded = np.concatenate(
        [particles, np.zeros((len(COUNTS), 30, N_PARTICLE_FEATURES), np.float32)], 1
    )
    np.testing.assert_allclose(scores(pfn, padded, hlf), expected, rtol=1e-5, atol=1e-6)

    changed = particles.copy()
    changed[:, 0, :4] += 0.5  # the first real particle of each event
    moved = np.abs(scores(pfn, changed, hlf) - expected).max(axis=1)
    assert (moved > 1e-4).all()


@pytest.mark.slow
def test_the_pfn_saves_and_reloads_as_keras_with_the_same_scores(pfn, tmp_path):
    import tf_keras as keras

    particles, hlf = events(np.random.default_rng(2))
    pfn.save(tmp_path / "model.keras")
    reloaded = keras.models.load_model(tmp_path / "model.keras")
    assert reloaded.get_layer("particle_sum").__class__.__name__ == "ParticleSum"
    np.testing.assert_array_equal(scores(reloaded, particles, hlf), scores(pfn, particles, hlf))


@pytest.mark.slow
def test_the_pfn_needs_the_mask_that_keeps_the_padding_out_of_its_sum():
    with pytest.raises(ValueError, match="needs masked sequences"):
        build_model("pfn", 64, Architecture(masked=False))


@pytest.mark.slow
def test_topolake_trains_and_evaluates_a_pfn_and_bigdl_refuses_it(topolake_home, validated_gold):
    current, work = validated_gold
    assert current().returncode == 0
    refused = run_topolake(
        "train", "--model", "pfn", "--engine", "bigdl", home=topolake_home, cwd=work
    )
    assert refused.returncode == 2
    assert "BigDL trains only hlf, particles, inclusive, not pfn" in refused.stderr
    assert "preparing the training extract" not in refused.stderr  # refused before any work

    trained = run_topolake(
        "train",
        "--model",
        "pfn",
        "--epochs",
        "1",
        "--max-particles",
        "32",
        home=topolake_home,
        cwd=work,
    )
    assert trained.returncode == 0, trained.stderr[-2000:]
    assert "trained pfn with tf x 1" in trained.stderr
    run_id = re.search(r"MLflow run (\w+)", trained.stderr).group(1)
    evaluated = run_topolake("evaluate", run_id, home=topolake_home, cwd=work)
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    assert "pfn (tf)" in evaluated.stderr
    evaluation = json.loads(
        (Path(topolake_home) / "evaluations" / run_id / "evaluation.json").read_text()
    )
    low, high = evaluation["intervals"]["accuracy"]
    assert 0 <= low <= evaluation["accuracy"] <= high <= 1
    assert f"{evaluation['accuracy']:.4f} [{low:.4f}, {high:.4f}]" in evaluated.stdout
