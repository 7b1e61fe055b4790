"""Landing Delphes files in lake.bronze.events, checked against uproot's own reading."""

from __future__ import annotations

import shutil
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot

from ingestion.bronze import IngestArgumentError, ingest
from simulation.synthetic import synthetic_events
from simulation.writer import write_delphes
from topolake.core.layout import COLLECTIONS
from topolake.core.tables import BRONZE_EVENTS, BRONZE_INGESTED_FILES, BRONZE_REJECTED_FILES

pytestmark = pytest.mark.slow


def events_of(spark, where: str = "true") -> list:
    return spark.sql(f"SELECT * FROM {BRONZE_EVENTS} WHERE {where} ORDER BY entry").collect()


def current_snapshot(spark) -> int | None:
    row = spark.sql(
        f"SELECT snapshot_id FROM {BRONZE_EVENTS}.history WHERE is_current_ancestor "
        "ORDER BY made_current_at DESC LIMIT 1"
    ).first()
    return row.snapshot_id if row else None


def assert_same_jagged(landed: list[list[float]], expected: ak.Array) -> None:
    """Equal counts per event and bit-equal values (float32 survives the round trip)."""
    assert [len(event) for event in landed] == ak.to_list(ak.num(expected))
    np.testing.assert_array_equal(
        np.array([v for event in landed for v in event], dtype=np.float64),
        ak.to_numpy(ak.flatten(expected)).astype(np.float64),
    )


def write_file(path: Path, n_events: int, seed: int, **rename: str | None) -> Path:
    """A Delphes-layout file from uproot's mktree; rename={'Jet': None} drops a collection."""
    events = synthetic_events(n_events, seed)
    for old, new in rename.items():
        array = events.pop(old)
        if new:
            events[new] = array
    return write_delphes(path, events)


@pytest.mark.shared
def test_cms_file_lands_ten_events_equal_to_uproots_reading(lake, shared_delphes):
    path = shared_delphes / "cms_card_10_events.root"
    report = ingest(lake, [str(path)], sample="ttbar", label=1)
    assert (report.events, len(report.rejected)) == (10, 0)
    assert report.landed[0].notes == "MuonTight read from Muon"

    rows = events_of(lake)
    assert [r.entry for r in rows] == list(range(10))
    assert [len(r.EFlowTrack) for r in rows] == [94, 121, 77, 70, 120, 58, 76, 72, 33, 82]
    muons = {r.entry: [round(m.PT, 1) for m in r.MuonTight] for r in rows if r.MuonTight}
    electrons = {r.entry: [round(e.PT, 1) for e in r.Electron] for r in rows if r.Electron}
    assert muons == {3: [40.7], 5: [67.2], 6: [95.6]}
    assert electrons == {4: [146.3], 5: [94.1]}

    tree = uproot.open(path)["Delphes"]  # uproot picks the highest cycle itself
    for collection, source in [
        ("EFlowTrack", "EFlowTrack"),
        ("Jet", "Jet"),
        ("EFlowPhoton", "EFlowPhoton"),
        ("MuonTight", "Muon"),
        ("MissingET", "MissingET"),
    ]:
        for field in COLLECTIONS[collection]:
            assert_same_jagged(
                [[getattr(item, field) for item in r[collection]] for r in rows],
                tree[f"{source}/{source}.{field}"].array(),
            )
    assert {(r.sample, r.label, r.source_file) for r in rows} == {("ttbar", 1, str(path))}


def test_uproot_written_files_land_with_their_content_and_a_ledger(lake, tmp_path):
    first = write_file(tmp_path / "a.root", 300, seed=1)
    second = write_file(tmp_path / "b.root", 200, seed=2)
    report = ingest(lake, [str(tmp_path)], sample="wjets", label=2, step=128)
    assert report.events == 500

    expected = uproot.open(first)["Delphes"].arrays(["EFlowTrack.PT", "Jet.BTag"])
    rows = events_of(lake, f"source_file = '{first}'")
    assert_same_jagged([[t.PT for t in r.EFlowTrack] for r in rows], expected["EFlowTrack.PT"])
    assert [[j.BTag for j in r.Jet] for r in rows] == ak.to_list(expected["Jet.BTag"])
    assert len(events_of(lake, f"source_file = '{second}'")) == 200

    ledger = lake.table(BRONZE_INGESTED_FILES).orderBy("path").collect()
    assert [(r.path, r.events, r.sample, r.label) for r in ledger] == [
        (str(first), 300, "wjets", 2),
        (str(second), 200, "wjets", 2),
    ]
    assert {r.snapshot_id for r in ledger} == {current_snapshot(lake)} == {report.snapshot_id}
    assert all(len(r.content_hash) == 64 for r in ledger)


def test_large_files_are_read_in_entry_ranges_each_entry_exactly_once(lake, tmp_path):
    path = write_file(tmp_path / "big.root", 10_000, seed=3)
    ingest(lake, [str(path)], sample="qcd", label=0, step=3_000)
    entries = [r.entry for r in lake.sql(f"SELECT entry FROM {BRONZE_EVENTS}").collect()]
    assert sorted(entries) == list(range(10_000))


def test_reingesting_the_same_content_adds_nothing_and_says_so(lake, tmp_path):
    path = write_file(tmp_path / "once.root", 50, seed=4)
    copy = shutil.copy(path, tmp_path / "copy-of-once.root")
    first = ingest(lake, [str(path)], sample="ttbar", label=1)
    snapshot = current_snapshot(lake)
    again = ingest(lake, [str(path), str(copy)], sample="ttbar", label=1)
    assert again.landed == [] and again.snapshot_id is None
    assert again.skipped == [
        (str(path), f"already ingested as {path}"),
        (str(copy), f"already ingested as {path}"),
    ]
    assert current_snapshot(lake) == snapshot == first.snapshot_id
    assert len(events_of(lake)) == 50


@pytest.mark.shared
def test_bad_files_are_quarantined_while_good_files_of_the_same_call_land(
    lake, shared_delphes, tmp_path
):
    good = write_file(tmp_path / "good.root", 40, seed=5)
    data = good.read_bytes()
    truncated = tmp_path / "truncated.root"
    truncated.write_bytes(data[: len(data) - 5000])
    not_root = tmp_path / "text.root"
    not_root.write_text("this is not a ROOT file\n")
    no_jets = write_file(tmp_path / "nojets.root", 10, seed=6, Jet=None)
    bad = [
        shared_delphes / "eic_card_1000_events.root",
        shared_delphes / "malformed_delphes.root",
        truncated,
        not_root,
        no_jets,
        tmp_path / "missing.root",
    ]

    report = ingest(lake, [str(good), *map(str, bad)], sample="ttbar", label=1)

    reasons = {Path(s.path).name: s.reason for s in report.rejected}
    assert reasons["eic_card_1000_events.root"].startswith(
        "lacks the required collections EFlowTrack, EFlowPhoton, EFlowNeutralHadron, Electron, "
        "MuonTight, Jet, MissingET"
    )
    assert reasons["malformed_delphes.root"] == "has no Delphes tree"
    assert reasons["truncated.root"].startswith("is truncated")
    assert reasons["text.root"] == "is not a ROOT file"
    assert reasons["nojets.root"].startswith("lacks the required collections Jet ")
    assert reasons["missing.root"] == "does not exist"
    assert [s.path for s in report.landed] == [str(good)]
    assert {r.source_file for r in events_of(lake)} == {str(good)}

    quarantine = {Path(r.path).name: r for r in lake.table(BRONZE_REJECTED_FILES).collect()}
    assert {name: r.reason for name, r in quarantine.items()} == reasons
    assert {r.ingest_id for r in quarantine.values()} == {report.ingest_id}


def test_the_highest_tree_cycle_and_a_muon_fallback_are_read(lake, tmp_path):
    path = tmp_path / "cycles.root"
    old, new = synthetic_events(3, seed=7), synthetic_events(5, seed=8)
    new["Muon"] = new.pop("MuonTight")
    with uproot.recreate(path) as file:
        for events in (old, new):
            file.mktree(
                "Delphes",
                {k: str(v.type.content) for k, v in events.items()},
                field_name=lambda o, i: f"{o}.{i}",
                counter_name=lambda c: f"{c}_size",
            ).extend(events)
    assert sorted(uproot.open(path).keys()) == ["Delphes;1", "Delphes;2"]

    report = ingest(lake, [str(path)], sample="ttbar", label=1)
    assert (report.landed[0].tree, report.events) == ("Delphes;2", 5)
    rows = events_of(lake)
    assert_same_jagged([[m.PT for m in r.MuonTight] for r in rows], new["Muon"].PT)


def test_time_travel_to_the_snapshot_before_an_ingest_returns_the_old_rows(lake, tmp_path):
    first = ingest(lake, [str(write_file(tmp_path / "1.root", 30, seed=9))], "ttbar", 1)
    ingest(lake, [str(write_file(tmp_path / "2.root", 20, seed=10))], "ttbar", 1)
    assert len(events_of(lake)) == 50
    old = lake.sql(f"SELECT count(*) n FROM {BRONZE_EVENTS} VERSION AS OF {first.snapshot_id}")
    assert old.first().n == 30


def test_a_lost_ledger_commit_is_rebuilt_and_the_file_is_not_landed_twice(lake, tmp_path):
    path = write_file(tmp_path / "ledger.root", 25, seed=11)
    first = ingest(lake, [str(path)], sample="wjets", label=2)
    lake.sql(f"DELETE FROM {BRONZE_INGESTED_FILES}")  # as if the process died between commits

    again = ingest(lake, [str(path)], sample="wjets", label=2)
    assert again.landed == [] and len(again.skipped) == 1
    assert len(events_of(lake)) == 25
    ledger = lake.table(BRONZE_INGESTED_FILES).collect()
    assert [(r.path, r.snapshot_id, r.ingest_id) for r in ledger] == [
        (str(path), first.snapshot_id, first.ingest_id)
    ]


@pytest.mark.parametrize(
    ("sample", "label", "message"),
    [
        ("ttbar", 3, "Label 3 is not a class: use one of 0 (qcd), 1 (ttbar), 2 (wjets)."),
        ("ttbar", 0, "Sample 'ttbar' has label 1, not 0."),
        ("Bad Name", 1, "Sample name 'Bad Name' must be lower-case letters"),
    ],
)
def test_wrong_labels_are_refused_before_anything_is_read(lake, tmp_path, sample, label, message):
    with pytest.raises(IngestArgumentError, match=message.replace("(", r"\(").replace(")", r"\)")):
        ingest(lake, [str(tmp_path / "never-read.root")], sample=sample, label=label)


def test_a_custom_sample_keeps_the_label_it_first_landed_with(lake, tmp_path):
    ingest(lake, [str(write_file(tmp_path / "s.root", 5, seed=12))], "ttbar_alt", 1)
    with pytest.raises(IngestArgumentError, match="already landed with label 1, not 2"):
        ingest(lake, [str(tmp_path / "other.root")], "ttbar_alt", 2)


def test_an_rntuple_lands_the_same_rows_as_a_ttree_of_the_same_events(lake, tmp_path):
    events = synthetic_events(60, seed=13)
    ttree = write_delphes(tmp_path / "ttree.root", events)
    rntuple = write_delphes(tmp_path / "rntuple.root", events, rntuple=True)
    assert uproot.open(rntuple).classnames() == {"Delphes;1": "ROOT::RNTuple"}

    report = ingest(lake, [str(ttree), str(rntuple)], sample="ttbar", label=1)
    assert (report.events, report.rejected) == (120, [])
    compared = ", ".join(["entry", *COLLECTIONS])
    query = f"SELECT {compared} FROM {BRONZE_EVENTS} WHERE source_file = '{{}}' ORDER BY entry"
    rows = {
        path: [tuple(r) for r in lake.sql(query.format(path)).collect()]
        for path in (ttree, rntuple)
    }
    assert len(rows[ttree]) == 60
    assert rows[ttree] == rows[rntuple]
