"""Turn the user's PATH_OR_URL arguments into a list of files to ingest."""

from __future__ import annotations

import glob
import os
from pathlib import Path

import fsspec

ROOT_SUFFIX = ".root"


def _is_url(source: str) -> bool:
    return "://" in source


def _expand_url(source: str) -> list[str]:
    """root://host:port//dir, a glob in it, or a file: list it through fsspec-xrootd."""
    fs, _, paths = fsspec.get_fs_token_paths(source)
    if glob.has_magic(source):
        return sorted(fs.unstrip_protocol(p) for p in paths)
    (path,) = paths
    if fs.isdir(path):
        return sorted(fs.unstrip_protocol(p) for p in fs.find(path) if p.endswith(ROOT_SUFFIX))
    return [source]


def expand_sources(sources: list[str]) -> list[str]:
    """Files, directories (searched recursively for *.root), globs and root:// URLs.

    A path that matches nothing is kept as given, so the survey rejects it with a reason
    instead of it vanishing silently. Duplicates are dropped, order kept.
    """
    files: list[str] = []
    for source in sources:
        if _is_url(source):
            files.extend(_expand_url(source))
        elif glob.has_magic(source):
            matches = sorted(glob.glob(os.path.expanduser(source), recursive=True))
            files.extend([str(Path(m).resolve()) for m in matches] or [source])
        elif Path(source).is_dir():
            files.extend(str(p.resolve()) for p in sorted(Path(source).rglob(f"*{ROOT_SUFFIX}")))
        else:
            path = Path(source).expanduser()
            files.append(str(path.resolve()) if path.exists() else source)
    return list(dict.fromkeys(files))
