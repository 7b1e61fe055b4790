from pathlib import Path

from ingestion.sources import expand_sources


def test_directories_are_searched_recursively_for_root_files(tmp_path: Path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "one.root").write_bytes(b"")
    (tmp_path / "two.root").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("")
    assert expand_sources([str(tmp_path)]) == [
        str(tmp_path / "a" / "one.root"),
        str(tmp_path / "two.root"),
    ]


def test_globs_expand_and_duplicates_are_dropped(tmp_path: Path):
    for name in ("x1.root", "x2.root", "y.root"):
        (tmp_path / name).write_bytes(b"")
    files = expand_sources([str(tmp_path / "x*.root"), str(tmp_path / "x1.root")])
    assert files == [str(tmp_path / "x1.root"), str(tmp_path / "x2.root")]


def test_a_path_that_matches_nothing_is_kept_so_it_is_rejected_not_lost(tmp_path: Path):
    missing = str(tmp_path / "absent-*.root")
    assert expand_sources([missing, "nowhere.root"]) == [missing, "nowhere.root"]
