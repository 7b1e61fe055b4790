"""A Delphes-like detector model, vectorised over events and particles with awkward/NumPy.

Follows the structure of Delphes' CMS card: tracking efficiency and momentum smearing for
charged particles (electrons and muons leave tracks too), calorimeter objects for photons and
neutral hadrons (and for charged particles the tracker missed), lepton identification on top
of the lepton's track, anti-kt jets over the energy-flow objects, b-tagging by matching to
heavy-flavour hadrons, and missing ET from the visible sum.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import awkward as ak
import fastjet
import numpy as np

from simulation.card import CARD, CmsCard
from simulation.generator import delta_r

ELECTRON, MUON, PHOTON = 11, 13, 22


def _like(values: np.ndarray, template: ak.Array) -> ak.Array:
    return ak.unflatten(values, ak.num(template))


def _uniform(rng: np.random.Generator, template: ak.Array) -> ak.Array:
    return _like(rng.random(int(ak.sum(ak.num(template)))), template)


def _normal(rng: np.random.Generator, template: ak.Array) -> ak.Array:
    return _like(rng.standard_normal(int(ak.sum(ak.num(template)))), template)


def _binned(eta: ak.Array, pt: ak.Array, table) -> ak.Array:
    """Efficiency from a (|eta| <= 1.5, outer) x (pt <= 1, pt > 1) table."""
    (inner_low, inner_high), (outer_low, outer_high) = table
    inner = abs(eta) <= 1.5
    low = pt <= 1.0
    return ak.where(
        inner, ak.where(low, inner_low, inner_high), ak.where(low, outer_low, outer_high)
    )


def _sorted(collection: ak.Array, key: str) -> ak.Array:
    return collection[ak.argsort(collection[key], axis=1, ascending=False)]


def _calorimeter_energy(e, rng, resolution, kind: str) -> ak.Array:
    if kind == "ecal":
        a, b, c = resolution
        sigma = np.sqrt((a * e) ** 2 + b**2 * e + c**2)
    else:
        a, b = resolution
        sigma = np.sqrt((a * e) ** 2 + b**2 * e)
    return np.maximum(e + sigma * _normal(rng, e), 0.0)


def reconstruct(
    particles: ak.Array, hadrons: ak.Array, rng: np.random.Generator, card: CmsCard = CARD
) -> dict[str, ak.Array]:
    """Detector response of a batch of events: the Delphes collections topolake reads."""
    abs_id = abs(particles.id)
    charged = particles.charge != 0
    neutrino = (abs_id == 12) | (abs_id == 14) | (abs_id == 16)

    # --- tracking: efficiency by particle type, relative pt smearing in |eta| bins
    in_tracker = (
        charged & (abs(particles.eta) <= card.tracker_eta_max) & (particles.pt > card.track_pt_min)
    )
    efficiency = ak.where(
        abs_id == ELECTRON,
        _binned(particles.eta, particles.pt, card.electron_tracking_efficiency),
        ak.where(
            abs_id == MUON,
            _binned(particles.eta, particles.pt, card.muon_tracking_efficiency),
            _binned(particles.eta, particles.pt, card.hadron_tracking_efficiency),
        ),
    )
    tracked = in_tracker & (_uniform(rng, particles) < efficiency)
    edges = np.asarray(card.track_resolution_eta_edges)
    bin_index = np.minimum(np.searchsorted(edges, ak.to_numpy(ak.flatten(abs(particles.eta)))), 2)
    constant = _like(np.asarray(card.track_resolution_constant)[bin_index], particles)
    slope = _like(np.asarray(card.track_resolution_slope)[bin_index], particles)
    muon_like = abs_id == MUON
    relative = ak.where(
        muon_like,
        np.hypot(card.muon_resolution_constant, card.muon_resolution_slope * particles.pt),
        np.hypot(constant, slope * particles.pt),
    )
    smeared_pt = np.maximum(particles.pt * (1.0 + relative * _normal(rng, particles)), 0.0)
    tracks = particles[tracked]
    track_pt = smeared_pt[tracked]

    # --- leptons: identification on top of their track; the same momentum as the track
    def leptons(pdg: int, pt_min: float, eta_max: float, efficiency_bins) -> ak.Array:
        is_lepton = (abs(tracks.id) == pdg) & (track_pt > pt_min) & (abs(tracks.eta) <= eta_max)
        eff = ak.where(abs(tracks.eta) <= 1.5, efficiency_bins[0], efficiency_bins[1])
        found = is_lepton & (_uniform(rng, tracks) < eff)
        chosen = tracks[found]
        return _sorted(
            ak.zip(
                {
                    "PT": track_pt[found],
                    "Eta": chosen.eta,
                    "Phi": chosen.phi,
                    "Charge": ak.values_astype(chosen.charge, np.int32),
                }
            ),
            "PT",
        )

    electrons = leptons(
        ELECTRON, card.electron_pt_min, card.tracker_eta_max, card.electron_efficiency
    )
    muons = leptons(MUON, card.muon_pt_min, card.muon_eta_max, card.muon_efficiency)

    # --- calorimeters: photons and untracked electrons in the ECal, neutral and untracked
    # charged hadrons in the HCal; muons and neutrinos leave nothing.
    untracked = ~tracked & ~neutrino & (abs_id != MUON)
    to_ecal = untracked & ((abs_id == PHOTON) | (abs_id == ELECTRON))
    to_hcal = untracked & ~to_ecal
    ecal = particles[to_ecal & (abs(particles.eta) <= card.ecal_eta_max)]
    hcal = particles[to_hcal & (abs(particles.eta) <= card.hcal_eta_max)]
    ecal_e = _calorimeter_energy(ecal.e, rng, card.ecal_resolution, "ecal")
    hcal_e = _calorimeter_energy(hcal.e, rng, card.hcal_resolution, "hcal")
    ecal, ecal_e = ecal[ecal_e > card.ecal_energy_min], ecal_e[ecal_e > card.ecal_energy_min]
    hcal, hcal_e = hcal[hcal_e > card.hcal_energy_min], hcal_e[hcal_e > card.hcal_energy_min]
    photons = ak.zip({"ET": ecal_e / np.cosh(ecal.eta), "Eta": ecal.eta, "Phi": ecal.phi})
    neutral_hadrons = ak.zip({"ET": hcal_e / np.cosh(hcal.eta), "Eta": hcal.eta, "Phi": hcal.phi})
    eflow_tracks = ak.zip(
        {
            "PT": track_pt,
            "Eta": tracks.eta,
            "Phi": tracks.phi,
            "PID": ak.values_astype(tracks.id, np.int32),
            "Charge": ak.values_astype(tracks.charge, np.int32),
            "X": tracks.x,
            "Y": tracks.y,
            "Z": tracks.z,
        }
    )

    # --- energy flow: massless four-vectors of every reconstructed object
    flow_pt = ak.concatenate([track_pt, photons.ET, neutral_hadrons.ET], axis=1)
    flow_eta = ak.concatenate([tracks.eta, photons.Eta, neutral_hadrons.Eta], axis=1)
    flow_phi = ak.concatenate([tracks.phi, photons.Phi, neutral_hadrons.Phi], axis=1)
    flow_px, flow_py = flow_pt * np.cos(flow_phi), flow_pt * np.sin(flow_phi)
    missing_px, missing_py = -ak.sum(flow_px, axis=1), -ak.sum(flow_py, axis=1)
    met = ak.to_numpy(np.hypot(missing_px, missing_py))
    missing_et = ak.unflatten(
        ak.zip(
            {
                "MET": met,
                "Eta": np.zeros_like(met),
                "Phi": ak.to_numpy(np.arctan2(missing_py, missing_px)),
            }
        ),
        1,
    )

    jets = _jets(
        flow_px,
        flow_py,
        flow_pt * np.sinh(flow_eta),
        flow_pt * np.cosh(flow_eta),
        hadrons,
        rng,
        card,
    )

    collections = {
        "EFlowTrack": _sorted(eflow_tracks, "PT"),
        "EFlowPhoton": _sorted(photons, "ET"),
        "EFlowNeutralHadron": _sorted(neutral_hadrons, "ET"),
        "Electron": electrons,
        "MuonTight": muons,
        "Jet": jets,
        "MissingET": missing_et,
    }
    return {name: _single_precision(c) for name, c in collections.items()}


def _single_precision(collection: ak.Array) -> ak.Array:
    """Delphes stores floats as float32."""
    return ak.zip(
        {
            f: ak.values_astype(collection[f], np.float32)
            if str(collection[f].type.content).endswith("float64")
            else collection[f]
            for f in collection.fields
        }
    )


def _jets(px, py, pz, e, hadrons, rng, card: CmsCard) -> ak.Array:
    """Anti-kt jets (FastJet's multi-event API) with b-tags from heavy-flavour matching."""
    inputs = ak.zip({"px": px, "py": py, "pz": pz, "E": e}, with_name="Momentum4D")
    definition = fastjet.JetDefinition(fastjet.antikt_algorithm, card.jet_radius)
    with _quiet_fastjet():
        found = fastjet.ClusterSequence(inputs, definition).inclusive_jets(min_pt=card.jet_pt_min)
    pt = np.hypot(found.px, found.py)
    eta = np.arcsinh(found.pz / np.maximum(pt, 1e-12))
    phi = np.arctan2(found.py, found.px)
    mass = np.sqrt(np.maximum(found.E**2 - found.px**2 - found.py**2 - found.pz**2, 0.0))

    tagged_hadrons = hadrons[hadrons.pt > card.btag_hadron_pt_min]
    jet, hadron = ak.unzip(
        ak.cartesian([ak.zip({"eta": eta, "phi": phi}), tagged_hadrons], nested=True)
    )
    matched = delta_r(jet.eta, jet.phi, hadron.eta, hadron.phi) < card.btag_match_radius
    has_b = ak.any(matched & (hadron.flavour == 5), axis=-1)
    has_c = ak.any(matched & (hadron.flavour == 4), axis=-1)
    probability = ak.where(
        has_b, card.btag_efficiency_b, ak.where(has_c, card.btag_mistag_c, card.btag_mistag_light)
    )
    btag = (abs(eta) <= card.btag_eta_max) & (_uniform(rng, pt) < probability)
    return _sorted(
        ak.zip(
            {
                "PT": pt,
                "Eta": eta,
                "Phi": phi,
                "Mass": mass,
                "BTag": ak.values_astype(btag, np.uint32),
            }
        ),
        "PT",
    )


@contextmanager
def _quiet_fastjet() -> Iterator[None]:
    """FastJet prints its banner on first use (C++ stdout); keep it out of the progress display."""
    sys.stdout.flush()
    saved, null = os.dup(1), os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    try:
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(null)
