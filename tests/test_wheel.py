"""topolake works installed from its wheel, away from the repository.

The wheel is built, installed into a fresh virtual environment and run from an unrelated
directory: `topolake ingest` and `topolake build` (dbt and the three GX gates) must find the
dbt project, the suites and the grids the wheel carries, and must write nothing into them
(site-packages may be read-only). The new environment sees the project's dependencies through
a .pth line naming this environment's site-packages, so nothing is downloaded; .pth files in
that directory are not processed, so this checkout's editable install does not leak in.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
#: (sample, label, events): every class, as the gold gate checks the balance of the training
#: set; a few dozen events each keep the simulation to seconds.
SAMPLES = (("ttbar", 1, 30), ("wjets", 2, 30), ("qcd", 0, 20))
#: The other samples land in one process: each process starts a JVM, the test's main cost.
INGEST_REST = """
import sys
from ingestion.bronze import ingest
from topolake.core.settings import load_settings
from topolake.core.spark import get_spark

spark = get_spark(load_settings())
for argument in sys.argv[1:]:
    sample, label, path = argument.split(":", 2)
    report = ingest(spark, [path], sample=sample, label=int(label))
    assert report.events > 0 and not report.rejected, (sample, report)
"""
WHERE = """
import json, sys
from importlib.metadata import version
import topolake
from ml.tracking import git_revision
from topolake.core import project

json.dump({"topolake": topolake.__file__, "source_root": str(project.source_root()),
           "dbt": str(project.dbt_project_dir()), "gx": str(project.gx_context_dir()),
           "grid": str(project.grids_dir() / "hlf-small.yaml"), "revision": git_revision(),
           "version": version("topolake")}, sys.stdout)
"""


def find_uv() -> str | None:
    """uv on PATH, else the one `make install` bootstraps into .cache."""
    bootstrap = REPO / ".cache" / "uv-bootstrap" / "bin" / "uv"
    return shutil.which("uv") or (str(bootstrap) if bootstrap.is_file() else None)


def run(*command: str | Path, timeout: int = 600, **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [str(c) for c in command], capture_output=True, text=True, timeout=timeout, **kwargs
    )
    output = f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert done.returncode == 0, f"{' '.join(map(str, command[:3]))} failed:\n{output}"
    return done


def fingerprint(*roots: Path) -> dict[str, tuple[int, str]]:
    """Every file and directory under `roots`: mode and content hash, to see any write."""
    found = {}
    for root in roots:
        for path in sorted(root.rglob("*")):
            digest = "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
            found[str(path)] = (stat.S_IFMT(path.stat().st_mode), digest)
    return found


def make_read_only(roots: list[Path], writable: bool = False) -> None:
    """As in a read-only site-packages (root ignores the modes; the fingerprint still tells)."""
    for root in roots:
        for path in [root, *root.rglob("*")]:
            mode = path.stat().st_mode
            path.chmod(mode | stat.S_IWUSR if writable else mode & ~0o222)


def iceberg_rows(warehouse: Path, table: str) -> int:
    """Rows of a table of the Hadoop catalog from its current snapshot's summary: read without
    another JVM, which would cost the test another Spark start."""
    metadata = warehouse.joinpath(*table.split(".")) / "metadata"
    current = (metadata / "version-hint.text").read_text().strip()
    table_metadata = json.loads((metadata / f"v{current}.metadata.json").read_text())
    snapshot_id = table_metadata["current-snapshot-id"]
    (snapshot,) = [s for s in table_metadata["snapshots"] if s["snapshot-id"] == snapshot_id]
    return int(snapshot["summary"]["total-records"])


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, Path]:
    """(the new environment's bin/, its site-packages) with only the wheel installed in it."""
    uv = find_uv()
    if uv is None:
        pytest.skip("uv is needed to build the wheel (`make install` bootstraps it)")
    base = tmp_path_factory.mktemp("wheel")
    run(uv, "build", "--wheel", "--out-dir", base / "dist", REPO, cwd=base)
    (wheel,) = (base / "dist").glob("topolake-*.whl")
    venv = base / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv)
    python = venv / "bin" / "python"
    purelib = Path(
        run(
            python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"
        ).stdout.strip()
    )
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (purelib / "topolake-dependencies.pth").write_text("".join(f"{p}\n" for p in sorted(ours)))
    run(uv, "pip", "install", "--no-deps", "--python", python, wheel, cwd=base)
    return venv / "bin", purelib


def test_the_installed_wheel_ingests_and_builds_from_anywhere(installed, tmp_path):
    from simulation.tasks import generate_locally, plan

    bin_dir, purelib = installed
    work, home = tmp_path / "elsewhere", tmp_path / "lakehouse"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env |= {
        "TOPOLAKE_HOME": str(home),
        "SPARK_MASTER": "local[2]",
        "PATH": f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
    }

    where = json.loads(run(bin_dir / "python", "-c", WHERE, cwd=work, env=env).stdout)
    shipped = purelib / "topolake" / "_project"
    assert Path(where["topolake"]).is_relative_to(purelib), "not the wheel's topolake"
    assert where["source_root"] == "None"
    assert Path(where["dbt"]) == shipped and (shipped / "models").is_dir()
    assert Path(where["gx"]) == purelib / "expectations" / "gx"
    assert Path(where["grid"]).is_file()
    assert where["revision"] == f"v{where['version']}"

    for sample, _, events in SAMPLES:
        generate_locally(plan(sample, events, work, seed=7, files=1), 1, lambda n: None)
    project_files = [shipped, purelib / "expectations" / "gx"]
    before = fingerprint(*project_files)
    make_read_only(project_files)
    try:
        (sample, label, _), *rest = SAMPLES
        topolake = bin_dir / "topolake"
        run(
            topolake,
            "ingest",
            work / sample,
            "--sample",
            sample,
            "--label",
            label,
            cwd=work,
            env=env,
        )
        run(
            bin_dir / "python",
            "-c",
            INGEST_REST,
            *[f"{s}:{lab}:{work / s}" for s, lab, _ in rest],
            cwd=work,
            env=env,
        )
        built = run(topolake, "build", cwd=work, env=env, timeout=900)
    finally:
        make_read_only(project_files, writable=True)

    # every gate ran on the wheel's suites: the gold tables were validated and passed
    assert "lake.gold.hlf_features@" in built.stderr and "FAILED" not in built.stderr
    assert iceberg_rows(home / "warehouse", "gold.hlf_features") > 0
    assert fingerprint(*project_files) == before, "the build wrote into the installed project"
    # dbt's and GX's output went to the lakehouse, not to the project or the current directory
    assert (home / "dbt" / "target" / "manifest.json").is_file()
    assert (home / "gx" / "data_docs" / "local_site" / "index.html").is_file()
    assert not {"target", "logs", "dbt_packages"} & {p.name for p in work.iterdir()}
