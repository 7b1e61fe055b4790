"""Shared fixtures: one Spark session on a throw-away lakehouse, real files, a real xrootd."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import SHARED_DELPHES, TEST_MASTER, drop_all_tables, free_port, run_topolake


@pytest.fixture(scope="session")
def shared_delphes() -> Path:
    """The real Delphes files in ../shared; tests that need them skip where it is absent."""
    if not (SHARED_DELPHES / "cms_card_10_events.root").is_file():
        pytest.skip(f"the shared Delphes fixtures are not at {SHARED_DELPHES}")
    return SHARED_DELPHES


@pytest.fixture(scope="session")
def topolake_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("lakehouse")
    os.environ["TOPOLAKE_HOME"] = str(home)
    os.environ["SPARK_MASTER"] = TEST_MASTER
    return home


@pytest.fixture(scope="session")
def spark(topolake_home: Path):
    from topolake.core.settings import load_settings
    from topolake.core.spark import get_spark

    session = get_spark(load_settings(master=TEST_MASTER, home=topolake_home))
    yield session
    session.stop()


@pytest.fixture
def lake(spark):
    """The Spark session on an empty lakehouse; its tables are dropped after the test."""
    drop_all_tables(spark)
    yield spark
    drop_all_tables(spark)


@pytest.fixture(scope="session")
def xrootd_server() -> Iterator[tuple[str, Path]]:
    """Debian's xrootd on 127.0.0.1: yields (root://127.0.0.1:PORT, exported directory)."""
    executable = shutil.which("xrootd")
    if executable is None:
        message = "xrootd-server is not installed (`make test` installs it when run as root)"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; in CI the XRootD tests must run")
        pytest.skip(message)
    base = Path(tempfile.mkdtemp(prefix="topolake-xrootd-"))
    base.chmod(0o755)
    export, admin, run = base / "export", base / "admin", base / "run"
    for directory in (export, admin, run):
        directory.mkdir()
    port = free_port()
    config = base / "xrootd.cfg"
    config.write_text(
        f"xrd.port {port}\nall.export {export}\nall.adminpath {admin}\n"
        f"all.pidpath {run}\nxrd.allow host 127.0.0.1\n"
    )
    command = [executable, "-c", str(config), "-l", str(base / "xrootd.log")]
    if os.geteuid() == 0:  # xrootd refuses to run as root; Debian creates its user
        for path in (base, export, admin, run):
            shutil.chown(path, "xrootd", "xrootd")
        command += ["-R", "xrootd"]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while True:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                break
        if server.poll() is not None or time.monotonic() > deadline:
            server.kill()
            log = (base / "xrootd.log").read_text() if (base / "xrootd.log").exists() else ""
            pytest.fail(f"xrootd did not start on port {port}: {log[-2000:]}")
        time.sleep(0.2)
    try:
        yield f"root://127.0.0.1:{port}", export
    finally:
        os.kill(server.pid, 15)
        server.wait(timeout=30)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def validated_gold(spark, topolake_home, shared_delphes, tmp_path_factory):
    """Three simulated samples and the CMS file in bronze, built and validated by
    `topolake build`; rebuilt if a test dropped the tables since. Yields the build's result."""
    from ingestion.bronze import ingest
    from simulation.tasks import generate_locally, plan

    work = tmp_path_factory.mktemp("validated")
    for sample, events in (("ttbar", 120), ("wjets", 120), ("qcd", 40)):
        generate_locally(plan(sample, events, work, seed=21, files=1), 1, lambda n: None)

    def build() -> subprocess.CompletedProcess:
        ingest(
            spark,
            [str(work / "ttbar"), str(shared_delphes / "cms_card_10_events.root")],
            sample="ttbar",
            label=1,
        )
        ingest(spark, [str(work / "wjets")], sample="wjets", label=2)
        ingest(spark, [str(work / "qcd")], sample="qcd", label=0)
        return run_topolake("build", home=topolake_home, cwd=work)

    result = build()

    def current() -> subprocess.CompletedProcess:
        nonlocal result
        if not spark.catalog.tableExists("lake.gold.training_set"):
            drop_all_tables(spark)  # whatever another test left in bronze is not this fixture's
            result = build()
        return result

    yield current, work
    drop_all_tables(spark)


#: Modules that share the `validated_gold` lakehouse run last and one after another, so that it
#: is built once: a module between them that empties the lakehouse would make it rebuild
#: (about two minutes each time). `test_validate` corrupts bronze on purpose: it goes last.
SHARED_GOLD_ORDER = (
    "test_notebook",
    "test_publish",
    "test_train",
    "test_pfn",
    "test_baselines",
    "test_tune",
    "test_validate",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def position(item: pytest.Item) -> int:
        module = item.path.stem
        return SHARED_GOLD_ORDER.index(module) + 1 if module in SHARED_GOLD_ORDER else 0

    items.sort(key=position)  # stable: every other test keeps its place
