"""Grid files for `topolake tune`: the shipped grids, overrides, and every refusal (fast)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ml.models import Architecture
from ml.tuning import GridError, load_grid, point_spec, spec_of, train_arguments

GRIDS = Path(__file__).resolve().parents[1] / "grids"


def grid_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "grid.yaml"
    path.write_text(text)
    return path


def test_the_reference_grid_is_the_243_points_of_physics_md():
    grid = load_grid(GRIDS / "hlf-reference.yaml")
    assert (grid.model, grid.fraction, len(grid.points)) == ("hlf", 0.02, 243)
    assert grid.points[0] == {
        "batch_size": 64,
        "epochs": 10,
        "dense_1": 50,
        "dense_2": 20,
        "dense_3": 10,
    }
    assert grid.points[-1] == {
        "batch_size": 200,
        "epochs": 50,
        "dense_1": 150,
        "dense_2": 100,
        "dense_3": 50,
    }
    assert len({tuple(sorted(p.items())) for p in grid.points}) == 243


def test_the_small_grid_has_four_points_on_the_whole_training_split():
    grid = load_grid(GRIDS / "hlf-small.yaml")
    assert (grid.model, grid.fraction) == ("hlf", 1.0)
    assert sorted((p["batch_size"], p["dense_1"]) for p in grid.points) == [
        (64, 50),
        (64, 100),
        (128, 50),
        (128, 100),
    ]
    assert {p["epochs"] for p in grid.points} == {3}


def test_arguments_override_the_files_model_and_fraction():
    grid = load_grid(GRIDS / "hlf-small.yaml", model="inclusive", fraction=0.5)
    assert (grid.model, grid.fraction) == ("inclusive", 0.5)


def test_model_and_fraction_default_to_hlf_and_the_whole_split(tmp_path):
    grid = load_grid(grid_file(tmp_path, "grid:\n  epochs: [1, 2]\n"))
    assert (grid.model, grid.fraction) == ("hlf", 1.0)
    assert grid.points == [{"epochs": 1}, {"epochs": 2}]


def test_a_single_value_is_one_point_and_values_take_the_keys_type(tmp_path):
    text = "grid:\n  learning_rate: 1\n  batch_size: ['32']\n  dropout: [0, 0.5]\n"
    grid = load_grid(grid_file(tmp_path, text))
    assert grid.points == [
        {"learning_rate": 1.0, "batch_size": 32, "dropout": 0.0},
        {"learning_rate": 1.0, "batch_size": 32, "dropout": 0.5},
    ]
    assert isinstance(grid.points[0]["learning_rate"], float)
    assert isinstance(grid.points[0]["batch_size"], int)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("grid: [unclosed\n", "cannot be read"),
        ("- just\n- a list\n", "has no `grid:` mapping"),
        ("model: hlf\n", "has no `grid:` mapping"),
        ("grid: [1, 2]\n", "has no `grid:` mapping"),
        ("model: transformer\ngrid:\n  epochs: [1]\n", "unknown model 'transformer'"),
        ("fraction: 0\ngrid:\n  epochs: [1]\n", "fraction 0.0 is not in (0, 1]"),
        ("fraction: 1.5\ngrid:\n  epochs: [1]\n", "fraction 1.5 is not in (0, 1]"),
        ("grid:\n  layers: [1]\n", "unknown key 'layers' (known: batch_size, epochs,"),
        ("grid:\n  epochs: []\n", "epochs has no values"),
        ("grid:\n  epochs: [ten]\n", "epochs has a value that is not a"),
        ("grid:\n  dropout: [[0.1]]\n", "dropout has a value that is not a float"),
    ],
)
def test_an_unusable_grid_is_refused_with_the_file_and_the_problem(tmp_path, text, problem):
    path = grid_file(tmp_path, text)
    with pytest.raises(GridError) as refused:
        load_grid(path)
    assert str(refused.value).startswith(f"grid file {path}")
    assert problem in str(refused.value)


def test_a_missing_grid_file_is_refused_not_raised_as_os_error(tmp_path):
    with pytest.raises(GridError, match="absent.yaml cannot be read"):
        load_grid(tmp_path / "absent.yaml")


def test_an_unknown_model_argument_is_refused_even_for_a_good_file():
    with pytest.raises(
        GridError, match="unknown model 'gbdt' \\(grids tune hlf, particles, inclusive, pfn\\)"
    ):
        load_grid(GRIDS / "hlf-small.yaml", model="gbdt")


def test_a_point_sets_the_spec_and_the_three_dense_widths():
    spec = point_spec("hlf", {"batch_size": 64, "epochs": 3, "dense_1": 100, "dense_3": 5}, 7)
    assert (spec.model, spec.batch_size, spec.epochs, spec.seed) == ("hlf", 64, 3, 7)
    assert spec.architecture.hidden == (100, Architecture().hidden[1], 5)
    gru = point_spec("particles", {"gru_units": 8, "dropout": 0.1, "max_particles": 64})
    assert (gru.max_particles, gru.architecture.gru_units, gru.architecture.dropout) == (
        64,
        8,
        0.1,
    )


def test_the_best_row_gives_back_its_spec_and_the_train_options():
    point = {"batch_size": 100, "epochs": 30, "dense_1": 150, "dense_2": 50, "dense_3": 20}
    spec = point_spec("hlf", point)
    row = {
        "model": "hlf",
        "params": '{"batch_size": 100, "dense_1": 150, "dense_2": 50, "dense_3": 20, "epochs": 30}',
        "batch_size": 100,
        "epochs": 30,
        "learning_rate": spec.learning_rate,
        "hidden": "150-50-20",
    }
    assert spec_of(row) == spec
    assert train_arguments(row) == [
        "--model",
        "hlf",
        "--batch-size",
        "100",
        "--epochs",
        "30",
        "--learning-rate",
        str(spec.learning_rate),
        "--hidden",
        "150,50,20",
    ]
