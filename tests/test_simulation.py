"""Simulated samples: physics sanity, layout, reproducibility, arguments, and ingestion."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot

from ingestion.bronze import ingest
from ingestion.delphes import survey_file
from simulation.plots import summaries
from simulation.tasks import generate, generate_locally, plan
from tests.helpers import TOPOLAKE, run_topolake
from topolake.core.tables import BRONZE_EVENTS

pytestmark = pytest.mark.slow

EVENTS = {"ttbar": 300, "wjets": 300, "qcd": 150}


@pytest.fixture(scope="module")
def samples(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("simulated")
    for sample, events in EVENTS.items():
        generate_locally(
            plan(sample, events, out, seed=3, files=2), workers=2, on_events=lambda n: None
        )
    return out


def test_the_samples_differ_as_their_physics_says(samples):
    found = summaries(samples)
    assert {s: len(v["jets"]) for s, v in found.items()} == EVENTS
    mean = {s: {k: float(np.mean(x)) for k, x in v.items()} for s, v in found.items()}
    assert mean["ttbar"]["jets"] > mean["wjets"]["jets"] + 1.0
    assert mean["ttbar"]["bjets"] > mean["wjets"]["bjets"] + 0.5
    assert mean["wjets"]["met"] > mean["qcd"]["met"]
    for sample, values in found.items():
        assert np.mean(values["lepton_pt"] > 23) > 0.7, sample


def test_files_have_the_delphes_layout_ordered_by_pt(samples):
    for path in sorted(samples.glob("*/*.root")):
        survey = survey_file(str(path))
        assert survey.ok, survey.reason
        tree = uproot.open(path)["Delphes"]
        assert (
            tree["EFlowTrack_size"].array().tolist()
            == ak.num(tree["EFlowTrack.PT"].array()).tolist()
        )
        for leaf in (
            "EFlowTrack.PT",
            "EFlowPhoton.ET",
            "EFlowNeutralHadron.ET",
            "Jet.PT",
            "Electron.PT",
            "MuonTight.PT",
        ):
            values = tree[leaf].array()
            assert ak.all(values[:, 1:] <= values[:, :-1]), leaf
            assert str(values.type.content.content) == "float32", leaf
        assert ak.all(ak.num(tree["MissingET.MET"].array()) == 1)
        charges = ak.flatten(tree["EFlowTrack.Charge"].array())
        assert set(np.unique(charges)) == {-1, 1}


def test_the_same_seed_gives_the_same_events_and_another_seed_others(tmp_path):
    def make(directory: str, seed: int) -> dict:
        (task,) = plan("ttbar", 25, tmp_path / directory, seed=seed, files=1)
        generate(task)
        return uproot.open(task.path)["Delphes"].arrays(library="ak")

    first, again, other = make("a", 5), make("b", 5), make("c", 6)
    assert ak.to_list(first) == ak.to_list(again)
    assert ak.to_list(first["EFlowTrack.PT"]) != ak.to_list(other["EFlowTrack.PT"])


def test_simulated_files_land_in_bronze(lake, samples):
    report = ingest(lake, [str(samples / "ttbar")], sample="ttbar", label=1)
    assert (report.events, report.rejected) == (300, [])
    assert lake.table(BRONZE_EVENTS).count() == 300


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--sample", "higgs", "--events", "5"], "Invalid value for '--sample'"),
        (["--sample", "ttbar", "--events", "0"], "--events must be a positive number, not 0."),
    ],
)
def test_bad_arguments_get_one_clear_sentence(tmp_path, args, message):
    result = run_topolake("simulate", *args, "--out", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr


def test_an_unwritable_output_is_refused(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = run_topolake(
        "simulate", "--sample", "ttbar", "--events", "5", "--out", str(blocker), cwd=tmp_path
    )
    assert result.returncode == 2
    assert f"The output directory {blocker / 'ttbar'} is not writable" in result.stderr


def test_an_interrupted_run_leaves_no_file_under_its_final_name(tmp_path):
    command = [
        TOPOLAKE,
        "simulate",
        "--sample",
        "ttbar",
        "--events",
        "2000",
        "--files",
        "1",
        "--out",
        str(tmp_path),
    ]
    process = subprocess.Popen(
        command, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    time.sleep(8)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert list((tmp_path / "ttbar").glob("*.root")) == []
    (task,) = plan("ttbar", 2000, tmp_path, seed=1, files=1)  # a rerun clears leftovers
    assert list((tmp_path / "ttbar").glob("*.part")) == []
    assert not Path(task.path).exists()
