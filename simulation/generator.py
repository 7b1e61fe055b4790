"""Pythia 8 set-up per sample, batches of final-state particles, and the generator-level filter.

Pythia's own `nextBatch` returns events as Awkward arrays, so nothing downstream loops over
particles in Python.
"""

from __future__ import annotations

from dataclasses import dataclass

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
        *(f"{h}:onMode = off" for h in HEAVY_FLAVOUR_HADRONS),
        *(f"{h}:onIfAny = 11 13" for h in HEAVY_FLAVOUR_HADRONS),
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


def make_pythia(sample: str, seed: int) -> pythia8mc.Pythia:
    if sample not in PROCESSES:
        raise ValueError(f"Unknown sample {sample!r}: choose one of {', '.join(SAMPLES)}.")
    pythia = pythia8mc.Pythia("", False)
    for setting in [*COMMON_SETTINGS, f"Random:seed = {seed}", *PROCESSES[sample]]:
        if not pythia.readString(setting):
            raise RuntimeError(f"Pythia refused the setting {setting!r}")
    if not pythia.init():
        raise RuntimeError(f"Pythia failed to initialise for sample {sample!r}")
    return pythia


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
