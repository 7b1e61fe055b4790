"""Ingest over XRootD from a real xrootd server on 127.0.0.1."""

from __future__ import annotations

import shutil

import pytest

from ingestion.bronze import ingest
from simulation.synthetic import synthetic_events
from simulation.writer import write_delphes
from topolake.core.tables import BRONZE_EVENTS

pytestmark = [pytest.mark.slow, pytest.mark.xrootd]

COMPARED = "entry, EFlowTrack, EFlowPhoton, EFlowNeutralHadron, Electron, MuonTight, Jet, MissingET"


def landed(spark) -> list:
    return spark.sql(f"SELECT {COMPARED} FROM {BRONZE_EVENTS} ORDER BY entry").collect()


@pytest.mark.shared
def test_a_file_read_over_xrootd_lands_the_same_rows_as_read_from_disk(
    lake, xrootd_server, shared_delphes
):
    url, export = xrootd_server
    local = shared_delphes / "cms_card_10_events.root"
    shutil.copy(local, export / local.name)

    remote = ingest(lake, [f"{url}/{export / local.name}"], sample="ttbar", label=1)
    assert remote.events == 10
    over_xrootd = landed(lake)
    assert {r.source_file for r in lake.table(BRONZE_EVENTS).collect()} == {
        f"{url}/{export / local.name}"
    }

    same_content = ingest(lake, [str(local)], sample="ttbar", label=1)
    assert same_content.skipped == [
        (str(local), f"already ingested as {url}/{export / local.name}")
    ]

    lake.sql(f"DROP TABLE {BRONZE_EVENTS} PURGE")
    lake.sql("DROP TABLE lake.bronze.ingested_files PURGE")
    assert ingest(lake, [str(local)], sample="ttbar", label=1).events == 10
    assert landed(lake) == over_xrootd


def test_an_xrootd_directory_is_listed_and_its_bad_files_are_rejected(lake, xrootd_server):
    url, export = xrootd_server
    folder = export / "run1"
    folder.mkdir()
    write_delphes(folder / "a.root", synthetic_events(30, seed=30))
    write_delphes(folder / "b.root", synthetic_events(20, seed=31))
    (folder / "broken.root").write_bytes((folder / "a.root").read_bytes()[:3000])

    report = ingest(lake, [f"{url}/{folder}/"], sample="wjets", label=2)
    assert sorted(s.path.rsplit("/", 1)[1] for s in report.landed) == ["a.root", "b.root"]
    assert report.events == 50
    assert [s.path for s in report.rejected] == [f"{url}/{folder}/broken.root"]
    assert report.rejected[0].reason.startswith("is truncated")
