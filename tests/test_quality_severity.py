"""Quality gates: invariants stop a build, a producer's assumptions only warn."""

from __future__ import annotations

import json
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot

from ingestion.bronze import ingest
from simulation.synthetic import synthetic_events
from simulation.tasks import generate_locally, plan
from simulation.writer import write_delphes
from topolake.app.pipeline import QualityGateFailed, build_lakehouse
from topolake.core.layout import COLLECTIONS
from topolake.core.settings import load_settings
from topolake.core.tables import GOLD_HLF_FEATURES, QUALITY_VALIDATIONS
from topolake.core.vocabulary import SAMPLE_LABELS

pytestmark = pytest.mark.slow

LOST_TRACK_SHARE = 0.3
MOMENTUM_RESOLUTION = 0.03


def read_events(path: Path) -> dict[str, ak.Array]:
    tree = uproot.open(path)["Delphes"]
    events = {}
    for collection, fields in COLLECTIONS.items():
        arrays = tree.arrays([f"{collection}.{f}" for f in fields])
        events[collection] = ak.zip({f: arrays[f"{collection}.{f}"] for f in fields})
    return events


def as_another_producer(source: Path, destination: Path, seed: int) -> Path:
    """The same events as a producer that measures leptons apart from their tracks would write.

    Each lepton's PT is smeared on its own (a calorimeter or combined fit), and in some events
    the lepton's track is lost, as happens in a real particle flow.
    """
    rng = np.random.default_rng(seed)
    events = read_events(source)
    for collection in ("Electron", "MuonTight"):
        leptons = events[collection]
        counts = ak.num(leptons)
        smear = 1 + MOMENTUM_RESOLUTION * rng.standard_normal(int(ak.sum(counts)))
        pt = ak.unflatten(ak.flatten(leptons.PT) * smear.astype(np.float32), counts)
        events[collection] = ak.with_field(leptons, pt, "PT")
    tracks = events["EFlowTrack"]
    leptons = ak.concatenate([events["Electron"], events["MuonTight"]], axis=1)
    track, lepton = ak.unzip(ak.cartesian([tracks, leptons], nested=True))
    dphi = (track.Phi - lepton.Phi + np.pi) % (2 * np.pi) - np.pi
    own = ak.any(np.hypot(track.Eta - lepton.Eta, dphi) < 1e-3, axis=2)
    lost = rng.random(len(tracks)) < LOST_TRACK_SHARE
    events["EFlowTrack"] = tracks[~(own & lost)]
    return write_delphes(destination, events)


@pytest.fixture(scope="module")
def other_producer(tmp_path_factory) -> Path:
    """Three small simulated samples, rewritten as the other producer would write them."""
    out = tmp_path_factory.mktemp("producer")
    for seed, (sample, events) in enumerate((("ttbar", 60), ("wjets", 60), ("qcd", 20))):
        generate_locally(
            plan(sample, events, out / "simulated", seed=31, files=1), 1, lambda n: None
        )
        (source,) = (out / "simulated" / sample).glob("*.root")
        (out / sample).mkdir()
        as_another_producer(source, out / sample / source.name, seed)
    return out


def build(topolake_home: Path, spark) -> None:
    build_lakehouse(spark, load_settings(home=topolake_home))


def test_a_producer_that_breaks_an_assumption_builds_with_warnings_shown_and_recorded(
    lake, topolake_home, other_producer, capsys
):
    for sample, label in SAMPLE_LABELS.items():
        ingest(lake, [str(other_producer / sample)], sample=sample, label=label)

    build(topolake_home, lake)  # no exception: every gate passed

    output = capsys.readouterr().err
    assert "passed with" in output
    assert (
        "warning (a producer assumption): expect_column_values_to_be_between on lepton_ChPFIso"
        in output
    )
    silver = lake.sql(
        f"SELECT success, warned, warnings FROM {QUALITY_VALIDATIONS} WHERE layer = 'silver'"
    ).collect()
    assert [(r.success, r.warned > 0) for r in silver] == [(True, True)]
    assert any("lepton_ChPFIso" in w for w in json.loads(silver[0].warnings))
    iso = lake.sql(f"SELECT min(LepIsoCh) lowest, count(*) n FROM {GOLD_HLF_FEATURES}").first()
    assert iso.n > 20
    assert -1 <= iso.lowest < -0.5  # events whose lepton lost its track got through


def test_an_invariant_broken_in_bronze_stops_the_build_before_silver(
    lake, topolake_home, tmp_path, capsys
):
    events = synthetic_events(30, seed=60)
    tracks = events["EFlowTrack"]
    flat_pt = ak.to_numpy(ak.flatten(tracks.PT)).copy()
    flat_pt[5] = np.nan  # legal in ROOT, not a momentum
    events["EFlowTrack"] = ak.with_field(tracks, ak.unflatten(flat_pt, ak.num(tracks)), "PT")
    report = ingest(lake, [str(write_delphes(tmp_path / "nan.root", events))], "ttbar", 1)
    assert report.events == 30  # it lands: the gate, not the reader, judges physics

    with pytest.raises(QualityGateFailed) as stop:
        build(topolake_home, lake)
    assert stop.value.exit_code == 1
    output = capsys.readouterr().err
    assert "expect_column_values_to_be_between on nonfinite_kinematics: 1 of 30 rows" in output
    assert not lake.catalog.tableExists("lake.silver.selected_events")
