"""Simulated samples: physics sanity, layout, reproducibility, arguments, and ingestion."""

from __future__ import annotations

import os
import re
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
from simulation.generator import HEAVY_FLAVOUR_HADRONS, LeptonFilter, PlainEvents
from simulation.plots import summaries
from simulation.redecay import DEFAULT_REDECAYS, RedecayedEvents
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


def test_a_piped_simulation_shows_plain_progress_lines_without_escape_codes(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE")}
    env["TOPOLAKE_PROGRESS_INTERVAL"] = "1"
    command = ["simulate", "--sample", "ttbar", "--events", "40", "--files", "2"]
    done = subprocess.run(
        [TOPOLAKE, *command, "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "\x1b[" not in done.stdout + done.stderr
    progress = [
        line for line in done.stderr.splitlines() if line.startswith("simulating 40 ttbar events: ")
    ]
    took, rate = r"\d+ (s|min \d\d s)", r"(, [\d.]+/(s|min)|, \d+ s each)"
    assert re.fullmatch(rf"simulating 40 ttbar events: 40/40 done in {took}{rate}", progress[-1])
    assert progress[:-1], "no line before the last: the run took under a second?"
    for line in progress[:-1]:  # Pythia starts for seconds first: the ticker writes them
        assert re.fullmatch(
            rf"simulating 40 ttbar events: \d+/40 \(\d+%\) in {took}"
            rf"{rate}?(, ETA ({took}|unknown))?",
            line,
        ), line


def test_re_decayed_qcd_copies_are_whole_events_reproducible_for_a_seed(tmp_path):
    cut = LeptonFilter()
    first, again = (RedecayedEvents("qcd", 11, cut, 5).next_batch(150) for _ in range(2))
    assert ak.to_list(first.events.prt) == ak.to_list(again.events.prt)
    assert first.hard.tolist() == again.hard.tolist()
    assert (first.hard_events, first.decayed) == (30, 150)
    assert 0 < len(first.events) < first.decayed  # only copies with a lepton candidate
    assert np.all(np.diff(first.hard) >= 0)

    prt = first.events.prt  # laid out as Pythia's own batches
    assert str(prt.type.content) == str(
        PlainEvents("qcd", 11, cut).next_batch(1).events.prt.type.content
    )
    final = prt[prt.status > 0]
    # a whole event: its final state carries the beams' energy and no net momentum
    assert np.all(np.abs(ak.to_numpy(ak.sum(final.p.e, axis=1)) - 13000.0) < 1e-3)
    for axis in ("px", "py", "pz"):
        assert np.all(np.abs(ak.to_numpy(ak.sum(final.p[axis], axis=1))) < 1e-3)
    final_ids = np.abs(ak.to_numpy(ak.flatten(final.id)))
    assert not np.isin(final_ids, HEAVY_FLAVOUR_HADRONS).any()  # every b/c hadron decayed
    assert np.any((final_ids == 11) | (final_ids == 13))
    # copies of one hard event differ in their decays only
    hard = first.hard
    twins = np.flatnonzero(hard[1:] == hard[:-1])
    assert twins.size, "no hard event with two candidate copies"
    a, b = prt[twins[0]], prt[twins[0] + 1]
    assert ak.to_list(a.id) != ak.to_list(b.id)

    def file_of(directory: str) -> dict:
        (task,) = plan("qcd", 15, tmp_path / directory, seed=8, files=1)
        result = generate(task)
        assert (result.redecays, result.events) == (DEFAULT_REDECAYS["qcd"], 15)
        assert result.passed <= result.decays_passed <= result.decayed
        assert result.passed <= result.generated
        return uproot.open(task.path)["Delphes"].arrays(library="ak")

    assert ak.to_list(file_of("a")) == ak.to_list(file_of("b"))
