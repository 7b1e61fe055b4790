"""The gold features equal an independent NumPy implementation of PHYSICS.md, per event."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pytest

from ingestion.bronze import ingest
from simulation.tasks import generate_locally, plan
from simulation.writer import write_delphes
from tests.helpers import drop_all_tables
from tests.physics_reference import event_features, read_events
from topolake.app.dbt_runner import invoke_dbt
from topolake.core.layout import COLLECTIONS
from topolake.core.settings import load_settings

pytestmark = pytest.mark.slow

HLF = [
    "HT",
    "MET",
    "PhiMET",
    "MT",
    "nJets",
    "nBJets",
    "LepPt",
    "LepEta",
    "LepPhi",
    "LepIsoCh",
    "LepIsoGamma",
    "LepIsoNeu",
    "LepCharge",
    "LepIsEle",
]
SEQUENCE = [
    "Energy",
    "Px",
    "Py",
    "Pz",
    "Pt",
    "Eta",
    "Phi",
    "vtxX",
    "vtxY",
    "vtxZ",
    "ChPFIso",
    "GammaPFIso",
    "NeuPFIso",
    "isChHad",
    "isNeuHad",
    "isGamma",
    "isEle",
    "isMu",
    "Charge",
]


def track(pt, eta, phi, charge=1, pid=211, z=0.0):
    return {
        "PT": pt,
        "Eta": eta,
        "Phi": phi,
        "PID": pid,
        "Charge": charge,
        "X": 0.01,
        "Y": -0.02,
        "Z": z,
    }


def lepton(pt, eta, phi, charge=-1):
    return {"PT": pt, "Eta": eta, "Phi": phi, "Charge": charge}


def edge_case_events() -> list[dict]:
    """Events exercising each defect of the reference code that PHYSICS.md corrects."""
    rng = np.random.default_rng(0)
    quiet = {
        "EFlowPhoton": [],
        "EFlowNeutralHadron": [],
        "Jet": [],
        "Electron": [],
        "MuonTight": [],
        "MissingET": [{"MET": 35.0, "Eta": 0.0, "Phi": 1.0}],
    }
    crowded = [
        track(float(pt), float(eta), float(phi), charge=int(c))
        for pt, eta, phi, c in zip(
            rng.uniform(0.6, 5, 600),
            rng.uniform(-2.4, 2.4, 600),
            rng.uniform(-3.1, 3.1, 600),
            rng.choice([-1, 1], 600),
            strict=True,
        )
    ]
    return [
        # a cone across phi = +-pi: the track at -3.12 is 0.06 from the electron at 3.1
        {
            **quiet,
            "Electron": [lepton(50, 0.3, 3.10)],
            "EFlowTrack": [track(50, 0.3, 3.10, -1, 11), track(12, 0.32, -3.12)],
            "EFlowPhoton": [{"ET": 4.0, "Eta": 0.28, "Phi": -3.13}],
        },
        # isolated electron and muon: the higher PT (muon) wins, not the larger Eta
        {
            **quiet,
            "Electron": [lepton(40, 2.0, 0.5)],
            "MuonTight": [lepton(60, 0.1, -1.0, 1)],
            "EFlowTrack": [track(60, 0.1, -1.0, 1, -13), track(40, 2.0, 0.5, -1, 11)],
        },
        # an electron track of charge -1 (PID 11: sign(PID) would say +1) in the sequence
        {
            **quiet,
            "MuonTight": [lepton(30, -0.5, 2.0)],
            "EFlowTrack": [track(30, -0.5, 2.0, -1, 13), track(8, 1.5, -2.0, -1, 11)],
        },
        # more than 450 tracks: the sequence keeps 450 of them
        {
            **quiet,
            "MuonTight": [lepton(80, 0.0, 0.0, 1)],
            "EFlowTrack": [track(80, 0.0, 0.0, 1, -13), *crowded],
        },
        # empty cones and no photons or neutral hadrons at all: kept, zero isolation
        {
            **quiet,
            "MuonTight": [lepton(45, 1.0, 1.0)],
            "EFlowTrack": [track(45, 1.0, 1.0, -1, 13)],
            "Jet": [{"PT": 35.0, "Eta": -1.0, "Phi": 2.0, "Mass": 5.0, "BTag": 1}],
        },
        # a lepton that is not isolated: not selected
        {
            **quiet,
            "MuonTight": [lepton(30, 0.0, 0.0)],
            "EFlowTrack": [track(30, 0.0, 0.0, -1, 13), track(20, 0.1, 0.1)],
        },
    ]


def write_events(path: Path, events: list[dict]) -> Path:
    """Hand-made events (lists of dicts per collection) as a Delphes-layout file."""
    columns = {}
    for name, fields in COLLECTIONS.items():
        counts = [len(event[name]) for event in events]
        columns[name] = ak.zip(
            {
                field: ak.unflatten(
                    np.array(
                        [obj[field] for event in events for obj in event[name]],
                        dtype=arrow_type.to_pandas_dtype(),
                    ),
                    counts,
                )
                for field, arrow_type in fields.items()
            }
        )
    return write_delphes(path, columns)


@pytest.fixture(scope="module")
def gold(spark, topolake_home, shared_delphes, tmp_path_factory):
    """Bronze from three kinds of files, built to gold by dbt; yields (gold rows, sources)."""
    work = tmp_path_factory.mktemp("features")
    edge = write_events(work / "edge_cases.root", edge_case_events())
    simulated = work / "simulated"
    for sample, events in (("ttbar", 150), ("wjets", 150), ("qcd", 60)):
        generate_locally(plan(sample, events, simulated, seed=9, files=1), 1, lambda n: None)
    ingest(
        spark,
        [str(shared_delphes / "cms_card_10_events.root"), str(edge), str(simulated / "ttbar")],
        sample="ttbar",
        label=1,
    )
    ingest(spark, [str(simulated / "wjets")], sample="wjets", label=2)
    ingest(spark, [str(simulated / "qcd")], sample="qcd", label=0)
    invoke_dbt(load_settings(home=topolake_home), "build")
    hlf = {(r.source_file, r.entry): r for r in spark.table("lake.gold.hlf_features").collect()}
    sequences = {
        (r.source_file, r.entry): r for r in spark.table("lake.gold.particle_sequences").collect()
    }
    sources = [
        str(shared_delphes / "cms_card_10_events.root"),
        str(edge),
        *map(str, sorted(simulated.glob("*/*.root"))),
    ]
    yield hlf, sequences, sources
    drop_all_tables(spark)


def test_every_event_matches_the_independent_implementation(gold):
    hlf, sequences, sources = gold
    compared = selected = 0
    for source in sources:
        for entry, event in enumerate(read_events(source)):
            expected = event_features(event)
            key = (source, entry)
            compared += 1
            if expected is None:
                assert key not in hlf, f"{key} should fail the selection"
                continue
            selected += 1
            features, sequence = expected
            row = hlf[key]
            np.testing.assert_allclose(
                [row[name] for name in HLF], features, rtol=2e-5, atol=2e-5, err_msg=str(key)
            )
            stored = np.array([[p[f] for f in SEQUENCE] for p in sequences[key].particles])
            assert stored.dtype == np.float64 and stored.shape == sequence.shape, key
            np.testing.assert_allclose(stored, sequence, rtol=2e-5, atol=2e-4, err_msg=str(key))
    assert (compared, len(hlf)) == (10 + 6 + 360, selected) and selected > 250


def test_the_corrected_defects(gold):
    hlf, sequences, sources = gold
    edge = sources[1]
    across_pi, both, negative, crowded, empty, not_isolated = (hlf.get((edge, i)) for i in range(6))
    assert across_pi.LepIsoCh == pytest.approx(12 / 50, rel=1e-5)
    assert across_pi.LepIsoGamma == pytest.approx(4 / 50, rel=1e-5)
    assert (both.LepIsEle, both.LepPt) == (0, 60)
    assert [p.Charge for p in sequences[(edge, 2)].particles if p.isChHad == 1] == [-1]
    assert sum(p.isChHad for p in sequences[(edge, 3)].particles) == 450
    assert (empty.LepIsoCh, empty.LepIsoGamma, empty.LepIsoNeu) == (0, 0, 0)
    assert (empty.nJets, empty.nBJets) == (1, 1)
    assert sequences[(edge, 4)].n_particles == 1
    assert not_isolated is None
    mt = np.sqrt(2 * 35.0 * 45 * (1 - np.cos(1.0 - 1.0)))
    assert pytest.approx(mt, abs=1e-3) == empty.MT
    last = sequences[(edge, 0)].particles[-1]
    assert (last.isEle, last.Pt) == (1, 50)  # the lepton, at deltaR 0, comes last
