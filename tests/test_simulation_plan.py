"""Planning a simulation: files, events per file, seeds, names, refusals (fast, no Pythia run)."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulation.generator import SAMPLES
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
