"""Planning a simulation: files, events per file, seeds, names, refusals; the re-decay
logic that needs no Pythia run (fast)."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pytest

from simulation.generator import SAMPLES, LeptonFilter, first_per_hard_event, has_lepton_candidate
from simulation.redecay import DEFAULT_REDECAYS, assemble, decayer_seed
from simulation.tasks import SimulationArgumentError, Task, plan, task_seed


def test_the_events_are_shared_over_the_files_and_named_for_them(tmp_path):
    tasks = plan("ttbar", 10, tmp_path, seed=21, files=3)
    assert [t.events for t in tasks] == [3, 4, 3]
    assert [t.index for t in tasks] == [0, 1, 2]
    assert [Path(t.path).name for t in tasks] == [
        "ttbar_seed21_000_of_003_3ev.root",
        "ttbar_seed21_001_of_003_4ev.root",
        "ttbar_seed21_002_of_003_3ev.root",
    ]
    assert all(Path(t.path).parent == tmp_path / "ttbar" for t in tasks)
    assert (tmp_path / "ttbar").is_dir() and not any((tmp_path / "ttbar").iterdir())


def test_never_more_files_than_events(tmp_path):
    tasks = plan("qcd", 2, tmp_path, seed=0, files=5)
    assert [t.events for t in tasks] == [1, 1]
    assert all("_of_002_" in t.path for t in tasks)


def test_the_plan_is_reproducible_and_carries_the_isolation_filter(tmp_path):
    first = plan("wjets", 1000, tmp_path, seed=7, files=4, isolation_filter=False)
    assert plan("wjets", 1000, tmp_path, seed=7, files=4, isolation_filter=False) == first
    assert sum(t.events for t in first) == 1000
    assert all(isinstance(t, Task) and t.isolation_filter is False for t in first)
    assert [t.seed for t in first] == [task_seed(7, "wjets", i) for i in range(4)]


def test_every_file_of_every_sample_and_seed_gets_its_own_seed_in_pythias_range():
    seeds = [
        task_seed(seed, sample, index)
        for seed in range(5)
        for sample in SAMPLES
        for index in range(20)
    ]
    assert len(set(seeds)) == len(seeds) == 300
    assert all(1 <= s <= 900_000_000 for s in seeds)
    assert task_seed(21, "ttbar", 0) == task_seed(21, "ttbar", 0)


def test_parts_left_by_an_interrupted_run_are_removed_and_finished_files_kept(tmp_path):
    folder = tmp_path / "qcd"
    folder.mkdir()
    (folder / "qcd_seed0_000_of_001_5ev.root.part").write_bytes(b"half")
    (folder / "qcd_seed0_000_of_001_5ev.root").write_bytes(b"done")
    plan("qcd", 5, tmp_path, seed=0, files=1)
    assert sorted(p.name for p in folder.iterdir()) == ["qcd_seed0_000_of_001_5ev.root"]


@pytest.mark.parametrize(
    ("sample", "events", "files", "message"),
    [
        ("higgs", 10, 1, "Unknown sample 'higgs': choose one of qcd, ttbar, wjets."),
        ("qcd", 0, 1, "--events must be a positive number, not 0."),
        ("qcd", -3, 1, "--events must be a positive number, not -3."),
        ("qcd", 10, 0, "--files must be a positive number, not 0."),
    ],
)
def test_bad_arguments_are_refused_in_one_sentence(tmp_path, sample, events, files, message):
    with pytest.raises(SimulationArgumentError) as refused:
        plan(sample, events, tmp_path, seed=0, files=files)
    assert str(refused.value) == message
    assert not any(tmp_path.iterdir())  # nothing was created


def test_an_output_directory_that_cannot_be_made_is_refused(tmp_path):
    blocker = tmp_path / "out"
    blocker.write_text("a file where the output directory should be")
    with pytest.raises(SimulationArgumentError) as refused:
        plan("qcd", 10, blocker, seed=0, files=1)
    message = f"The output directory {blocker / 'qcd'} is not writable (Not a directory)."
    assert str(refused.value) == message


def test_qcd_is_planned_with_re_decays_and_the_plain_method_stays_selectable(tmp_path):
    assert {t.redecays for t in plan("qcd", 10, tmp_path, seed=1, files=2)} == {
        DEFAULT_REDECAYS["qcd"]
    }
    assert DEFAULT_REDECAYS["qcd"] > 1
    assert {t.redecays for t in plan("ttbar", 10, tmp_path, seed=1, files=2)} == {1}
    assert {t.redecays for t in plan("qcd", 10, tmp_path, seed=1, files=2, redecays=1)} == {1}
    with pytest.raises(SimulationArgumentError, match="redecays must be a positive number, not 0"):
        plan("qcd", 10, tmp_path, seed=1, files=1, redecays=0)


def test_the_method_is_in_the_file_name_so_plain_and_re_decayed_files_never_mix(tmp_path):
    fast = plan("qcd", 10, tmp_path, seed=1, files=1)[0].path
    plain = plan("qcd", 10, tmp_path, seed=1, files=1, redecays=1)[0].path
    assert Path(fast).name == f"qcd_seed1_redecays{DEFAULT_REDECAYS['qcd']}_000_of_001_10ev.root"
    assert Path(plain).name == "qcd_seed1_000_of_001_10ev.root"


def test_the_decayer_has_its_own_seed_in_pythias_range():
    seeds = [task_seed(s, "qcd", i) for s in range(3) for i in range(20)]
    derived = [decayer_seed(s) for s in seeds]
    assert len(set(derived) | set(seeds)) == 2 * len(seeds)
    assert all(1 <= s <= 900_000_000 for s in derived)
    assert decayer_seed(12345) == decayer_seed(12345)


def test_only_the_first_passing_copy_of_a_hard_event_is_kept():
    passed = np.array([False, True, True, False, True, True, True])
    hard = np.array([0, 0, 0, 1, 2, 2, 4])
    kept = first_per_hard_event(passed, hard)
    assert kept.tolist() == [False, True, False, False, True, False, True]
    plain = np.array([True, False, True])
    assert first_per_hard_event(plain, np.arange(3)).tolist() == plain.tolist()
    assert first_per_hard_event(np.zeros(0, bool), np.zeros(0, np.int64)).tolist() == []


def _record(*particles: tuple[int, int, float, float]) -> list[dict]:
    """Pythia-like entries (id, status, pt, eta) at phi = 0, laid out as nextBatch lays them."""
    rows = []
    for pid, status, pt, eta in particles:
        pz = pt * np.sinh(eta)
        momentum = {"px": pt, "py": 0.0, "pz": pz, "e": float(np.hypot(pt, pz))}
        vertex = {"px": 0.0, "py": 0.0, "pz": 1.0, "e": 0.0}
        rows.append({"id": pid, "status": status, "p": momentum, "vProd": vertex})
    return rows


def test_a_lepton_candidate_is_a_final_e_or_mu_inside_the_filters_pt_and_eta():
    prt = ak.Array(
        [
            _record((11, 1, 30.0, 0.0)),
            _record((-13, 91, 24.0, -2.4)),
            _record((11, -91, 30.0, 0.0)),  # decayed: not final
            _record((13, 1, 20.0, 0.0)),  # too soft
            _record((11, 1, 30.0, 3.0)),  # too forward
            _record((211, 1, 50.0, 0.0)),
            [],
        ]
    )
    found = has_lepton_candidate(prt, LeptonFilter())
    assert found.tolist() == [True, True, False, False, False, False, False]


def test_copies_are_their_hard_event_then_their_own_decays_and_only_candidates_are_built():
    shared = ak.Array(
        [
            _record((211, 1, 5.0, 0.0), (22, 1, 3.0, 1.0)),
            _record((-11, 1, 40.0, 1.0)),  # a lepton shared by every copy of hard event 1
        ]
    )
    tails = ak.Array(
        [
            _record((-511, -91, 30.0, 0.5), (13, 91, 25.0, 0.5)),  # copy 0 of hard event 0
            _record((-511, -91, 30.0, 0.5), (211, 91, 25.0, 0.5)),  # copy 1: no lepton
            _record((421, -91, 10.0, 0.0), (321, 91, 5.0, 0.0)),  # copy 0 of hard event 1
        ]
    )
    batch = assemble(shared, tails, np.array([0, 0, 1]), LeptonFilter())
    assert (batch.hard_events, batch.decayed) == (2, 3)
    assert batch.hard.tolist() == [0, 1]
    assert ak.to_list(batch.events.prt.id) == [[211, 22, -511, 13], [-11, 421, 321]]
    assert batch.events.prt.fields == shared.fields
