"""`topolake ingest PATH_OR_URL...`: local paths become absolute, order is kept (fast).

tests/test_sources.py covers directories, globs, duplicates and paths that match nothing;
root:// URLs need a server (tests/test_xrootd.py).
"""

from __future__ import annotations

from pathlib import Path

from ingestion.sources import _is_url, expand_sources


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def test_relative_files_directories_and_globs_come_back_absolute(tmp_path, monkeypatch):
    one, two = touch(tmp_path / "runs" / "one.root"), touch(tmp_path / "b" / "two.root")
    monkeypatch.chdir(tmp_path)
    assert expand_sources(["runs/one.root"]) == [str(one)]
    assert expand_sources(["b"]) == [str(two)]
    assert expand_sources(["*/*.root"]) == [str(two), str(one)]  # sorted: b/ before runs/


def test_the_order_of_the_arguments_is_kept_and_the_first_mention_wins(tmp_path):
    a, b = touch(tmp_path / "a.root"), touch(tmp_path / "b.root")
    assert expand_sources([str(b), str(a)]) == [str(b), str(a)]
    assert expand_sources([str(b), str(tmp_path)]) == [str(b), str(a)]


def test_a_home_relative_path_is_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    data = touch(tmp_path / "data" / "x.root")
    assert expand_sources(["~/data/x.root"]) == [str(data)]
    assert expand_sources(["~/data/*.root"]) == [str(data)]


def test_only_a_scheme_makes_a_url():
    assert _is_url("root://eospublic.cern.ch//eos/opendata/cms/file.root")
    assert _is_url("file:///tmp/a.root")
    assert not _is_url("/data/a.root") and not _is_url("C:relative.root")
