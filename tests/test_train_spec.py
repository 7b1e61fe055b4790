"""A training spec survives being saved with its model and read back (fast)."""

from __future__ import annotations

import json
from dataclasses import asdict

import pytest

from ml.models import Architecture
from ml.spec import INPUTS, TrainSpec
from topolake.core.vocabulary import MODEL_INPUTS, MODELS

SPECS = [
    TrainSpec("hlf"),
    TrainSpec(
        "particles",
        epochs=2,
        batch_size=32,
        max_particles=64,
        learning_rate=3e-4,
        seed=9,
        architecture=Architecture(gru_units=8, dropout=0.1, masked=False),
    ),
    TrainSpec("inclusive", architecture=Architecture(hidden=(7,), inclusive_dense=5)),
    TrainSpec("pfn", architecture=Architecture(pfn_phi=(8, 4), pfn_f=(6,))),
]
#: The architecture's width tuples, which JSON turns into lists
WIDTHS = ("hidden", "pfn_phi", "pfn_f")


@pytest.mark.parametrize("spec", SPECS, ids=[s.model for s in SPECS])
def test_from_dict_inverts_asdict(spec):
    assert TrainSpec.from_dict(asdict(spec)) == spec


@pytest.mark.parametrize("spec", SPECS, ids=[s.model for s in SPECS])
def test_through_json_the_widths_come_back_as_tuples(spec):
    saved = json.loads(json.dumps(asdict(spec)))  # as the model's spec.json holds it
    assert all(isinstance(saved["architecture"][key], list) for key in WIDTHS)
    restored = TrainSpec.from_dict(saved)
    assert restored == spec
    assert all(isinstance(getattr(restored.architecture, key), tuple) for key in WIDTHS)
    assert hash(restored) == hash(spec)


def test_every_tuple_field_of_the_architecture_is_a_width_list():
    tuples = {k for k, v in asdict(Architecture()).items() if isinstance(v, tuple)}
    assert tuples == set(WIDTHS)


def test_a_spec_saved_without_an_architecture_gets_the_default_one():
    assert TrainSpec.from_dict({"model": "hlf", "epochs": 1}) == TrainSpec("hlf", epochs=1)
    assert TrainSpec("hlf").architecture.hidden == (50, 20, 10)


def test_each_model_reads_the_inputs_of_the_vocabulary():
    assert INPUTS == MODEL_INPUTS and MODELS[: len(INPUTS)] == tuple(INPUTS)
    assert INPUTS["inclusive"] == ("particles", "hlf")
