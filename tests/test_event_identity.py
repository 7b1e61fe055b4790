"""The input contract and event identity: optional fields, content-based splits, two writers."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import awkward as ak
import pytest
import uproot
from pyspark.sql import functions as F

from ingestion.bronze import (
    CommitConflict,
    commit_validated,
    events_frame,
    head_snapshot,
    ingest,
    migrate,
)
from ingestion.delphes import survey_file
from simulation.synthetic import synthetic_events
from simulation.tasks import generate_locally, plan
from simulation.writer import write_delphes
from tests.helpers import TEST_MASTER, TOPOLAKE
from topolake.app.dbt_runner import built_before_content_identity, invoke_dbt
from topolake.core.layout import COLLECTIONS, required_fields
from topolake.core.settings import load_settings
from topolake.core.tables import (
    BRONZE_EVENTS,
    BRONZE_INGESTED_FILES,
    GOLD_HLF_FEATURES,
    GOLD_PARTICLE_SEQUENCES,
)
from topolake.core.vocabulary import HLF_FEATURES

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ttbar_file(tmp_path_factory) -> Path:
    """Simulated tt̄ events, most of which pass the selection."""
    out = tmp_path_factory.mktemp("identity")
    generate_locally(plan("ttbar", 40, out, seed=5, files=1), 1, lambda n: None)
    return next((out / "ttbar").glob("*.root"))


def with_required_fields_only(source: Path, destination: Path) -> Path:
    """The same events with only the fields PHYSICS.md lists, as another producer writes them."""
    tree = uproot.open(source)["Delphes"]
    events = {}
    for collection in COLLECTIONS:
        fields = required_fields(collection)
        arrays = tree.arrays([f"{collection}.{f}" for f in fields])
        events[collection] = ak.zip({f: arrays[f"{collection}.{f}"] for f in fields})
    return write_delphes(destination, events)


def build_hlf(topolake_home: Path) -> None:
    invoke_dbt(load_settings(home=topolake_home), "run", "--select", "+hlf_features")


def splits(spark) -> dict[tuple[str, int], str]:
    return {
        (r.content_hash, r.entry): r.split
        for r in spark.table(GOLD_HLF_FEATURES).select("content_hash", "entry", "split").collect()
    }


def test_a_file_without_optional_fields_lands_nulls_and_builds_the_same_features(
    lake, topolake_home, ttbar_file, tmp_path
):
    minimal = with_required_fields_only(ttbar_file, tmp_path / "required-only.root")
    assert survey_file(str(minimal)).absent_fields == ["MissingET.Eta"]

    report = ingest(lake, [str(ttbar_file), str(minimal)], sample="ttbar", label=1)
    assert len(report.landed) == 2 and not report.rejected
    ledger = {r.path: r.absent_fields for r in lake.table(BRONZE_INGESTED_FILES).collect()}
    assert ledger == {str(ttbar_file): [], str(minimal): ["MissingET.Eta"]}
    met_eta = lake.sql(
        f"SELECT source_file, collect_set(MissingET[0].Eta IS NULL) AS null_eta "
        f"FROM {BRONZE_EVENTS} GROUP BY source_file"
    ).collect()
    assert {r.source_file: r.null_eta for r in met_eta} == {
        str(ttbar_file): [False],
        str(minimal): [True],
    }

    build_hlf(topolake_home)
    invoke_dbt(load_settings(home=topolake_home), "run", "--select", "particle_sequences")
    by_file = {}
    for table, columns in (
        (GOLD_HLF_FEATURES, HLF_FEATURES),
        (GOLD_PARTICLE_SEQUENCES, ["particles"]),
    ):
        rows = lake.table(table).select("source_file", "entry", *columns).collect()
        for r in rows:
            by_file.setdefault((table, r.source_file), {})[r.entry] = tuple(r)[2:]
    for table in (GOLD_HLF_FEATURES, GOLD_PARTICLE_SEQUENCES):
        full, required_only = by_file[(table, str(ttbar_file))], by_file[(table, str(minimal))]
        assert len(full) > 10
        assert full == required_only


@pytest.mark.xrootd
def test_the_same_file_from_another_path_or_over_xrootd_gets_the_same_split_for_every_event(
    lake, topolake_home, ttbar_file, tmp_path, xrootd_server
):
    here = shutil.copy(ttbar_file, tmp_path / "here.root")
    ingest(lake, [str(here)], sample="ttbar", label=1)
    build_hlf(topolake_home)
    first = splits(lake)
    assert len(first) > 10 and set(first.values()) == {"train", "test"}

    for table in (GOLD_HLF_FEATURES, "lake.silver.selected_events", BRONZE_INGESTED_FILES):
        lake.sql(f"DROP TABLE IF EXISTS {table} PURGE")
    lake.sql(f"DROP TABLE {BRONZE_EVENTS} PURGE")
    url, export = xrootd_server
    shutil.copy(ttbar_file, export / "elsewhere.root")
    remote = f"{url}/{export / 'elsewhere.root'}"
    ingest(lake, [remote], sample="ttbar", label=1)
    build_hlf(topolake_home)
    assert {r.source_file for r in lake.table(GOLD_HLF_FEATURES).collect()} == {remote}
    assert splits(lake) == first


def test_a_commit_is_refused_when_another_writer_landed_the_same_file_after_its_check(
    lake, tmp_path
):
    path = write_delphes(tmp_path / "raced.root", synthetic_events(30, seed=40))
    ingest(
        lake,
        [str(write_delphes(tmp_path / "x.root", synthetic_events(5, seed=41)))],
        sample="ttbar",
        label=1,
    )
    survey = survey_file(str(path))
    base = head_snapshot(lake, BRONZE_EVENTS)  # what this writer checked: the file is not landed

    ingest(lake, [str(path)], sample="ttbar", label=1)  # another writer lands it meanwhile

    frame = events_frame(lake, [survey], "ttbar", 1, "late-writer")
    with pytest.raises(CommitConflict, match="conflicting files"):
        commit_validated(
            frame, BRONZE_EVENTS, F.col("content_hash").isin([survey.content_hash]), base
        )
    counts = lake.sql(
        f"SELECT count(*) n, count(DISTINCT content_hash, entry) d FROM {BRONZE_EVENTS}"
    ).first()
    assert (counts.n, counts.d) == (35, 35)

    other = survey_file(str(write_delphes(tmp_path / "other.root", synthetic_events(7, seed=42))))
    frame = events_frame(lake, [other], "ttbar", 1, "unrelated-writer")
    commit_validated(frame, BRONZE_EVENTS, F.col("content_hash").isin([other.content_hash]), base)
    assert lake.table(BRONZE_EVENTS).count() == 42  # other files never conflict


def start_ingest(paths: list[Path], home: Path, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [
            TOPOLAKE,
            "--master",
            TEST_MASTER,
            "--home",
            str(home),
            "ingest",
            *map(str, paths),
            "--sample",
            "ttbar",
            "--label",
            "1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=cwd,
    )


def test_two_processes_ingesting_at_once_land_a_shared_file_once_and_their_own_files_too(
    lake, topolake_home, tmp_path
):
    same = write_delphes(tmp_path / "same.root", synthetic_events(2_000, seed=43))
    own = [
        write_delphes(tmp_path / f"own{i}.root", synthetic_events(300, seed=44 + i)) for i in (0, 1)
    ]
    processes = [start_ingest([same, mine], topolake_home, tmp_path) for mine in own]
    outputs = [p.communicate(timeout=600)[0] for p in processes]
    assert [p.returncode for p in processes] == [0, 0], outputs

    counts = lake.sql(
        f"SELECT count(*) n, count(DISTINCT content_hash, entry) d FROM {BRONZE_EVENTS}"
    ).first()
    assert (counts.n, counts.d) == (2_600, 2_600)
    assert lake.table(BRONZE_INGESTED_FILES).count() == 3
    said = sorted(
        "landed" if f"landed {same}: 2000 events" in out else "skipped"
        for out in outputs
        if f"landed {same}" in out or f"skipped {same}: already ingested" in out
    )
    assert said == ["landed", "skipped"], outputs
    for mine, out in zip(own, outputs, strict=True):
        assert f"landed {mine}: 300 events" in out


def test_a_lakehouse_from_before_content_identity_is_upgraded_in_place(lake, tmp_path):
    files = [
        write_delphes(tmp_path / f"{i}.root", synthetic_events(20, seed=50 + i)) for i in (0, 1)
    ]
    ingest(lake, [str(f) for f in files], sample="wjets", label=2)
    landed = {(r.source_file, r.entry): r.content_hash for r in lake.table(BRONZE_EVENTS).collect()}
    # the layout of the earlier version: no content_hash column, partitioned by sample only
    old_columns = ", ".join(c for c in lake.table(BRONZE_EVENTS).columns if c != "content_hash")
    lake.sql(f"CREATE TABLE lake.bronze.events_copy USING iceberg AS SELECT * FROM {BRONZE_EVENTS}")
    lake.sql(f"DROP TABLE {BRONZE_EVENTS} PURGE")
    lake.sql(
        f"CREATE TABLE {BRONZE_EVENTS} USING iceberg PARTITIONED BY (sample) "
        f"TBLPROPERTIES ('format-version' = '2') "
        f"AS SELECT {old_columns} FROM lake.bronze.events_copy"
    )
    lake.sql("DROP TABLE lake.bronze.events_copy PURGE")
    lake.sql(f"ALTER TABLE {BRONZE_INGESTED_FILES} DROP COLUMN absent_fields")
    before = head_snapshot(lake, BRONZE_EVENTS)

    assert migrate(lake) is True
    upgraded = {
        (r.source_file, r.entry): r.content_hash for r in lake.table(BRONZE_EVENTS).collect()
    }
    assert upgraded == landed
    assert (
        lake.sql(f"SELECT count(*) n FROM {BRONZE_EVENTS} VERSION AS OF {before}").first().n == 40
    )
    assert migrate(lake) is False
    assert ingest(lake, [str(files[0])], sample="wjets", label=2).landed == []

    lake.sql("CREATE NAMESPACE IF NOT EXISTS lake.gold")
    lake.sql(f"CREATE TABLE {GOLD_HLF_FEATURES} (source_file STRING, entry BIGINT) USING iceberg")
    assert built_before_content_identity(lake) == [GOLD_HLF_FEATURES]
