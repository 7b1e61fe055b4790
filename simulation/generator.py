"""Pythia 8 set-up per sample, batches of final-state particles, and the generator-level filter.

Pythia's own `nextBatch` returns events as Awkward arrays, so nothing downstream loops over
particles in Python.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import awkward as ak
import numpy as np
import pythia8mc

from topolake.core.vocabulary import SAMPLE_LABELS

#: The processes the generator knows: the samples of the vocabulary.
SAMPLES = tuple(SAMPLE_LABELS)

#: Weakly decaying b and c hadrons whose decays the QCD sample forces to be semileptonic.
HEAVY_FLAVOUR_HADRONS = (
    511,
    521,
    531,
    541,
    5122,
    5132,
    5232,
    5332,
    411,
    421,
    431,
    4122,
    4132,
    4232,
    4332,
)

#: The QCD sample's decay settings: every weakly decaying b and c hadron decays to e or mu.
FORCED_SEMILEPTONIC = [
    *(f"{h}:onMode = off" for h in HEAVY_FLAVOUR_HADRONS),
    *(f"{h}:onIfAny = 11 13" for h in HEAVY_FLAVOUR_HADRONS),
]

PROCESSES: dict[str, list[str]] = {
    "ttbar": ["Top:gg2ttbar = on", "Top:qqbar2ttbar = on"],
    "wjets": [
        "WeakBosonAndParton:qqbar2Wg = on",
        "WeakBosonAndParton:qg2Wq = on",
        "PhaseSpace:pTHatMin = 20",
        "24:onMode = off",
        "24:onIfAny = 11 13 15",
    ],
    # Heavy-flavour enriched: plain QCD almost never has an isolated lepton (STACK.md).
    "qcd": [
        "HardQCD:hardbbbar = on",
        "HardQCD:hardccbar = on",
        "PhaseSpace:pTHatMin = 60",
        *FORCED_SEMILEPTONIC,
    ],
}

COMMON_SETTINGS = [
    "Beams:eCM = 13000",
    "PartonLevel:MPI = on",
    "HadronLevel:all = on",
    # Luminous region as at the LHC, so tracks carry realistic production vertices (mm).
    "Beams:allowVertexSpread = on",
    "Beams:sigmaVertexX = 0.01",
    "Beams:sigmaVertexY = 0.01",
    "Beams:sigmaVertexZ = 50",
    "Print:quiet = on",
    "Random:setSeed = on",
]


@dataclass(frozen=True)
class LeptonFilter:
    """Keep events with a final-state e or mu above pt_min in |eta| < eta_max, isolated if asked."""

    pt_min: float = 23.0
    eta_max: float = 2.5
    isolation_max: float | None = 0.45
    cone: float = 0.3


def make_pythia(sample: str, seed: int, extra: Sequence[str] = ()) -> pythia8mc.Pythia:
    """An initialised Pythia for `sample`; `extra` settings come last, so they win."""
    if sample not in PROCESSES:
        raise ValueError(f"Unknown sample {sample!r}: choose one of {', '.join(SAMPLES)}.")
    return configured_pythia(
        [*COMMON_SETTINGS, f"Random:seed = {seed}", *PROCESSES[sample], *extra], sample
    )


def configured_pythia(settings: Sequence[str], purpose: str) -> pythia8mc.Pythia:
    pythia = pythia8mc.Pythia("", False)
    for setting in settings:
        if not pythia.readString(setting):
            raise RuntimeError(f"Pythia refused the setting {setting!r}")
    if not pythia.init():
        raise RuntimeError(f"Pythia failed to initialise for {purpose!r}")
    return pythia


@dataclass(frozen=True)
class Batch:
    """What one generator call made: the events that may pass the filter, and their cost.

    `events` are records with a `prt` field laid out as Pythia's `nextBatch` lays it out, only
    those with a lepton candidate (`has_lepton_candidate`): the others cannot pass the filter.
    `hard[i]` numbers the hard event that `events[i]` was decayed from, in generation order;
    with re-decays several events share one, otherwise each event is its own hard event.
    """

    events: ak.Array
    hard: np.ndarray
    #: hard events generated (hard process, showers, MPI, hadronisation)
    hard_events: int
    #: events made from them: hard_events times the decays of each
    decayed: int


class EventSource(Protocol):
    """Makes batches of events; `pythia` generates the hard events, `timings` add up seconds
    spent generating them, re-decaying them and assembling/preselecting the events."""

    pythia: pythia8mc.Pythia
    timings: dict[str, float]

    def next_batch(self, size: int) -> Batch: ...


class PlainEvents:
    """The plain method: each hard event is decayed once, in Pythia's own `nextBatch`."""

    def __init__(self, sample: str, seed: int, cut: LeptonFilter):
        self.pythia = make_pythia(sample, seed)
        self.cut = cut
        self.timings = dict.fromkeys(("generate", "redecay", "assemble"), 0.0)

    def next_batch(self, size: int) -> Batch:
        started = time.perf_counter()
        events = self.pythia.nextBatch(size)
        self.timings["generate"] += time.perf_counter() - started
        started = time.perf_counter()
        candidates = np.flatnonzero(has_lepton_candidate(events.prt, self.cut))
        self.timings["assemble"] += time.perf_counter() - started
        return Batch(events[candidates], candidates, len(events), len(events))


class ChargeTable:
    """Particle charges by PDG id, looked up once per distinct id from Pythia's tables."""

    def __init__(self, pythia: pythia8mc.Pythia):
        self._data = pythia.particleData
        self._ids = np.zeros(0, dtype=np.int64)
        self._charges = np.zeros(0, dtype=np.float64)

    def __call__(self, ids: ak.Array) -> ak.Array:
        flat = ak.to_numpy(ak.flatten(ids)).astype(np.int64)
        unknown = np.setdiff1d(np.unique(flat), self._ids)
        if unknown.size:
            charges = [self._data.charge(int(i)) for i in unknown]  # distinct ids only
            ids_all = np.concatenate([self._ids, unknown])
            order = np.argsort(ids_all)
            self._ids = ids_all[order]
            self._charges = np.concatenate([self._charges, charges])[order]
        return ak.unflatten(self._charges[np.searchsorted(self._ids, flat)], ak.num(ids))


def kinematics(px, py, pz):
    pt = np.hypot(px, py)
    eta = np.arcsinh(pz / np.maximum(pt, 1e-12))
    phi = np.arctan2(py, px)
    return pt, eta, phi


def particles_of(batch: ak.Array, charges: ChargeTable) -> tuple[ak.Array, ak.Array]:
    """Final-state particles and the heavy-flavour hadrons (for b-tagging) of a batch."""
    prt = batch.prt
    final = prt[prt.status > 0]
    vertex = ak.fill_none(final.vProd, {"px": 0.0, "py": 0.0, "pz": 0.0, "e": 0.0})
    pt, eta, phi = kinematics(final.p.px, final.p.py, final.p.pz)
    particles = ak.zip(
        {
            "id": final.id,
            "charge": charges(final.id),
            "pt": pt,
            "eta": eta,
            "phi": phi,
            "e": final.p.e,
            "x": vertex.px,
            "y": vertex.py,
            "z": vertex.pz,
        }
    )
    abs_id = abs(prt.id)
    quark = ak.where(abs_id >= 1000, (abs_id // 1000) % 10, (abs_id // 100) % 10)
    diquark = (abs_id >= 1000) & ((abs_id // 10) % 10 == 0)
    is_heavy = (abs_id > 100) & ~diquark & ((quark == 5) | (quark == 4))
    heavy = prt[is_heavy]
    hpt, heta, hphi = kinematics(heavy.p.px, heavy.p.py, heavy.p.pz)
    hadrons = ak.zip({"flavour": quark[is_heavy], "pt": hpt, "eta": heta, "phi": hphi})
    return particles, hadrons


def delta_r(eta1, phi1, eta2, phi2):
    dphi = (phi2 - phi1 + np.pi) % (2 * np.pi) - np.pi
    return np.hypot(eta2 - eta1, dphi)


def has_lepton_candidate(prt: ak.Array, cut: LeptonFilter) -> np.ndarray:
    """Boolean per event of Pythia records: a final e or mu inside the filter's pT and |eta|.

    The filter's condition without the isolation, so an event without a candidate cannot pass
    it; evaluated on the raw record, before `particles_of` builds the particles.
    """
    abs_id = abs(prt.id)
    leptons = prt[(prt.status > 0) & ((abs_id == 11) | (abs_id == 13))]
    pt, eta, _ = kinematics(leptons.p.px, leptons.p.py, leptons.p.pz)
    return ak.to_numpy(ak.any((pt > cut.pt_min) & (abs(eta) < cut.eta_max), axis=1))


def first_per_hard_event(passed: np.ndarray, hard: np.ndarray) -> np.ndarray:
    """`passed` with only the first passing event of each hard event left True.

    The re-decay policy: copies of one hard event share its jets and most of its particles,
    so at most one of them enters the sample (see README, Simulation).
    """
    passed = np.asarray(passed, dtype=bool)
    keep = np.zeros_like(passed)
    passing = np.flatnonzero(passed)
    _, first = np.unique(np.asarray(hard)[passing], return_index=True)
    keep[passing[first]] = True
    return keep


def passes_filter(particles: ak.Array, cut: LeptonFilter) -> np.ndarray:
    """Boolean per event: the generator-level lepton filter."""
    abs_id = abs(particles.id)
    leptons = particles[
        ((abs_id == 11) | (abs_id == 13))
        & (particles.pt > cut.pt_min)
        & (abs(particles.eta) < cut.eta_max)
    ]
    if cut.isolation_max is None:
        return ak.to_numpy(ak.num(leptons) > 0)
    visible = particles[(particles.pt > 0.5) & ~((abs_id == 12) | (abs_id == 14) | (abs_id == 16))]
    lepton, other = ak.unzip(ak.cartesian([leptons, visible], nested=True))
    in_cone = delta_r(lepton.eta, lepton.phi, other.eta, other.phi) < cut.cone
    isolation = ak.sum(ak.where(in_cone, other.pt, 0.0), axis=-1) / leptons.pt - 1.0
    return ak.to_numpy(ak.any(isolation < cut.isolation_max, axis=1))
