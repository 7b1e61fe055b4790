"""Detector parameters, after the CMS card of Delphes (delphes_card_CMS.tcl), in one place.

Values are simplified to a few |eta| bins; the names say which Delphes module each follows.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CmsCard:
    # ChargedHadronTrackingEfficiency / ElectronTrackingEfficiency / MuonTrackingEfficiency:
    # (|eta| <= 1.5, 1.5 < |eta| <= 2.5) x (0.1 < pt <= 1, pt > 1)
    tracker_eta_max: float = 2.5
    track_pt_min: float = 0.1
    hadron_tracking_efficiency: tuple[tuple[float, float], tuple[float, float]] = (
        (0.70, 0.95),
        (0.60, 0.85),
    )
    electron_tracking_efficiency: tuple[tuple[float, float], tuple[float, float]] = (
        (0.73, 0.95),
        (0.50, 0.83),
    )
    muon_tracking_efficiency: tuple[tuple[float, float], tuple[float, float]] = (
        (0.75, 0.99),
        (0.70, 0.98),
    )
    # ChargedHadronMomentumSmearing: sigma(pt)/pt = sqrt(a^2 + (b pt)^2) in |eta| bins
    track_resolution_eta_edges: tuple[float, ...] = (0.5, 1.5, 2.5)
    track_resolution_constant: tuple[float, ...] = (0.06, 0.10, 0.25)
    track_resolution_slope: tuple[float, ...] = (1.3e-3, 1.7e-3, 3.1e-3)
    # MuonMomentumSmearing
    muon_resolution_constant: float = 0.01
    muon_resolution_slope: float = 1.0e-4
    # ECal: sigma(E) = sqrt((a E)^2 + b^2 E + c^2); EFlow photons above EnergyMin
    ecal_eta_max: float = 3.0
    ecal_resolution: tuple[float, float, float] = (0.009, 0.12, 0.45)
    ecal_energy_min: float = 0.5
    # HCal: sigma(E) = sqrt((a E)^2 + b^2 E); EFlow neutral hadrons above EnergyMin
    hcal_eta_max: float = 3.0
    hcal_resolution: tuple[float, float] = (0.050, 1.50)
    hcal_energy_min: float = 1.0
    # ElectronEfficiency / MuonEfficiency: (|eta| <= 1.5, outer) for pt > pt_min
    electron_pt_min: float = 10.0
    electron_efficiency: tuple[float, float] = (0.95, 0.85)
    muon_pt_min: float = 10.0
    muon_eta_max: float = 2.4
    muon_efficiency: tuple[float, float] = (0.95, 0.90)
    # FastJetFinder on EFlow objects: anti-kt R = 0.4, stored above JetPTMin
    jet_radius: float = 0.4
    jet_pt_min: float = 20.0
    # BTagging: matched to a B (C) hadron within DeltaR; efficiency by flavour
    btag_eta_max: float = 2.5
    btag_match_radius: float = 0.3
    btag_hadron_pt_min: float = 5.0
    btag_efficiency_b: float = 0.70
    btag_mistag_c: float = 0.20
    btag_mistag_light: float = 0.01


CARD = CmsCard()
