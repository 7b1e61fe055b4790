"""TensorFlow's start-up notices, written before it reads TF_CPP_MIN_LOG_LEVEL, are held to it.

The first test reads lines TensorFlow 2.21 wrote on a machine without a GPU; the second a
stand-in `tensorflow` package that writes such lines to file descriptor 2 as it is imported,
as TensorFlow's C++ libraries do (the real one takes half a minute to import: test_train.py
checks it)."""

from __future__ import annotations

import os
import subprocess
import sys

from topolake.core.native_logs import below_level_dropped

START_UP = b"""\
WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
I0000 00:00:1795447468.151309   32288 port.cc:153] oneDNN custom operations are on. You may see slightly different numerical results.
I0000 00:00:1795447468.151736   32288 cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will not be used.
/site-packages/tensorflow/__init__.py:1: UserWarning: a Python warning
W0000 00:00:1795447468.668500   32288 cpu_feature_guard.cc:227] a warning
E0000 00:00:1795447483.599613   32288 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error
F0000 00:00:1795447483.599613   32288 check.cc:1] a fatal error
"""  # noqa: E501


def test_lines_below_the_level_and_absls_preamble_are_dropped_the_rest_kept():
    lines = START_UP.splitlines(keepends=True)
    assert below_level_dropped(START_UP, 0) == START_UP
    assert below_level_dropped(START_UP, 1) == b"".join(lines[3:])
    assert below_level_dropped(START_UP, 2) == b"".join([lines[3], *lines[5:]])
    assert below_level_dropped(START_UP, 3) == lines[3] + lines[6]


STAND_IN = '''\
import os, sys
os.write(2, b"""{notices}""")
print("a Python line on stderr", file=sys.stderr)
'''


def test_the_first_tensorflow_import_is_held_to_the_level_and_keeps_its_loader(tmp_path):
    (tmp_path / "tensorflow").mkdir()
    (tmp_path / "tensorflow" / "__init__.py").write_text(STAND_IN.format(notices=START_UP.decode()))
    script = (
        "import sys\n"
        "from topolake.core.native_logs import hold_tensorflow_notices\n"
        "hold_tensorflow_notices()\n"
        "print('before', file=sys.stderr, flush=True)\n"
        "import tensorflow\n"
        "print('after', type(tensorflow.__loader__).__name__, file=sys.stderr)\n"
    )

    def run(level: str) -> str:
        env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.getcwd()}"}
        env["TF_CPP_MIN_LOG_LEVEL"] = level
        done = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60
        )
        assert done.returncode == 0, done.stderr
        return done.stderr

    held = run("2").splitlines()
    assert held[0] == "before" and held[-1] == "after SourceFileLoader"
    assert held[1:-1] == [
        "/site-packages/tensorflow/__init__.py:1: UserWarning: a Python warning",
        *[line for line in START_UP.decode().splitlines() if line[:1] in "EF"],
        "a Python line on stderr",
    ]
    assert START_UP.decode() in run("0")
