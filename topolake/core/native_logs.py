"""TensorFlow's C++ start-up notices, held to the level TF_CPP_MIN_LOG_LEVEL asks for.

TensorFlow 2.21 writes some notices while its libraries load, before its logging is set up
(absl's "All log messages before absl::InitializeLog() is called are written to STDERR"), and
those ignore TF_CPP_MIN_LOG_LEVEL: "oneDNN custom operations are on ...", "Could not find cuda
drivers on your machine ...". Later notices ("This TensorFlow binary is optimized ...", "failed
call to cuInit ...") do follow the level. `hold_tensorflow_notices` makes the first import of
`tensorflow` in a process write its native standard error to a file first; what it wrote goes
on to standard error without the absl-format lines below the level (1 drops INFO, 2 WARNING
too, 3 ERROR too; FATAL always stays) and without absl's preamble. Everything else (Python
warnings, anything not in absl's format) goes through unchanged, after the import.

`ml` installs it, so every process that trains (the CLI, Spark's Python workers) has it.
Standard library only: importing this loads nothing heavy.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress

#: An absl-format line: severity, date, time, thread, file:line]; before absl is set up the
#: date is 0000 and the time 00:00:<seconds since the epoch>.
ABSL_LINE = re.compile(rb"^([IWEF])\d{4} \d+:\d+:\d+\.\d+ +\d+ [^\s\]]+:\d+\] ")
ABSL_PREAMBLE = b"WARNING: All log messages before absl::InitializeLog() is called are written"
SEVERITY_RANK = {b"I": 0, b"W": 1, b"E": 2, b"F": 3}


def tf_log_level() -> int:
    """TF_CPP_MIN_LOG_LEVEL as TensorFlow reads it (0 if unset or not a number)."""
    try:
        return int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0"))
    except ValueError:
        return 0


def below_level_dropped(output: bytes, level: int) -> bytes:
    """`output` without its absl-format lines below `level` and, at level 1 or more, without
    absl's preamble; every other line as it was."""
    if level <= 0:
        return output
    kept = []
    for line in output.splitlines(keepends=True):
        found = ABSL_LINE.match(line)
        if found and SEVERITY_RANK[found[1]] < min(level, 3):
            continue
        if line.startswith(ABSL_PREAMBLE):
            continue
        kept.append(line)
    return b"".join(kept)


@contextmanager
def native_stderr_held(level: int) -> Iterator[None]:
    """File descriptor 2 goes to a temporary file inside the block; afterwards what was written
    there goes on to standard error, less what `below_level_dropped` drops."""
    if level <= 0:
        yield
        return
    try:
        saved = os.dup(2)
    except OSError:  # no standard error to hold
        yield
        return
    with tempfile.TemporaryFile() as held:
        _flush_stderr()
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            _flush_stderr()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            _write_all(2, below_level_dropped(held.read(), level))


def _flush_stderr() -> None:
    if sys.stderr is not None:
        with suppress(OSError, ValueError):
            sys.stderr.flush()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class _HeldLoader(importlib.abc.Loader):
    """A module's own loader, its execution inside `native_stderr_held`."""

    def __init__(self, loader: importlib.abc.Loader) -> None:
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module) -> None:
        try:
            with native_stderr_held(tf_log_level()):
                self._loader.exec_module(module)
        finally:  # the module keeps its own loader
            module.__loader__ = self._loader
            if getattr(module, "__spec__", None) is not None:
                module.__spec__.loader = self._loader

    def __getattr__(self, name: str):
        return getattr(self._loader, name)


class _HeldImport(importlib.abc.MetaPathFinder):
    """Finds `name` as the other finders do, once, with its loader wrapped in `_HeldLoader`."""

    def __init__(self, name: str) -> None:
        self.name = name

    def find_spec(self, fullname, path=None, target=None):
        if fullname != self.name:
            return None
        sys.meta_path.remove(self)  # the first import only
        spec = importlib.util.find_spec(fullname)
        if spec is not None and spec.loader is not None:
            spec.loader = _HeldLoader(spec.loader)
        return spec


def hold_tensorflow_notices() -> None:
    """Hold the first import of `tensorflow` in this process to TF_CPP_MIN_LOG_LEVEL (as it is
    when the import happens); nothing if TensorFlow is loaded already or this ran before."""
    if "tensorflow" in sys.modules or any(isinstance(f, _HeldImport) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _HeldImport("tensorflow"))
