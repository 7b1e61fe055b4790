"""The layering rule (pyproject.toml's [tool.importlinter]) holds: `lint-imports` passes (fast).

topolake.app stands over the stages, the stages over topolake.core; no stage imports another
except the quality gate (expectations), and core imports nothing above it, even indirectly.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONTRACTS = (
    "application over stages over foundation",
    "the foundation imports no stage and not the application",
)


def test_every_import_follows_the_layers():
    lint_imports = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run(
        [str(lint_imports), "--no-cache"], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    for contract in CONTRACTS:
        assert f"{contract} KEPT" in done.stdout
    assert f"Contracts: {len(CONTRACTS)} kept, 0 broken." in done.stdout
