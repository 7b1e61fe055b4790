"""Distributions of the simulated samples (jets, HT, MET, lepton pT), for eyeballing."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import uproot

from simulation.generator import SAMPLES

JET_PT_MIN, JET_ETA_MAX = 30.0, 2.6


def summaries(directory: Path) -> dict[str, dict[str, np.ndarray]]:
    """Per-sample arrays of per-event quantities, read back from the written files."""
    found = {}
    for sample in SAMPLES:
        files = sorted((directory / sample).glob("*.root"))
        if not files:
            continue
        events = uproot.concatenate(
            [f"{f}:Delphes" for f in files],
            ["Jet.PT", "Jet.Eta", "Jet.BTag", "MissingET.MET", "Electron.PT", "MuonTight.PT"],
        )
        jets = (events["Jet.PT"] > JET_PT_MIN) & (abs(events["Jet.Eta"]) < JET_ETA_MAX)
        leptons = ak.concatenate([events["Electron.PT"], events["MuonTight.PT"]], axis=1)
        found[sample] = {
            "jets": ak.to_numpy(ak.sum(jets, axis=1)),
            "bjets": ak.to_numpy(ak.sum(jets & (events["Jet.BTag"] > 0), axis=1)),
            "ht": ak.to_numpy(ak.sum(events["Jet.PT"][jets], axis=1)),
            "met": ak.to_numpy(ak.firsts(events["MissingET.MET"])),
            "lepton_pt": ak.to_numpy(ak.fill_none(ak.max(leptons, axis=1), 0.0)),
        }
    return found


PLOTS = {
    "jets": ("Number of jets ($p_T$ > 30 GeV, $|\\eta|$ < 2.6)", np.arange(-0.5, 12.5, 1)),
    "bjets": ("Number of b-tagged jets", np.arange(-0.5, 6.5, 1)),
    "ht": ("$H_T$ [GeV]", np.linspace(0, 1000, 41)),
    "met": ("Missing $E_T$ [GeV]", np.linspace(0, 300, 31)),
    "lepton_pt": ("Leading lepton $p_T$ [GeV]", np.linspace(0, 300, 31)),
}


def plot_samples(directory: Path, out: Path) -> list[Path]:
    """One PNG per quantity, samples overlaid and normalised; returns the written paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mplhep

    plt.style.use(mplhep.style.CMS)
    data = summaries(directory)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for key, (label, bins) in PLOTS.items():
        figure, axis = plt.subplots(figsize=(8, 6))
        for sample, values in data.items():
            counts, edges = np.histogram(np.clip(values[key], bins[0], bins[-1]), bins=bins)
            mplhep.histplot(
                counts / max(counts.sum(), 1),
                edges,
                ax=axis,
                label=f"{sample} ({len(values[key])} events)",
            )
        axis.set_xlabel(label)
        axis.set_ylabel("Fraction of events")
        axis.legend()
        axis.set_title(
            "topolake simulation, pp 13 TeV, CMS-like detector model", loc="left", fontsize=14
        )
        path = out / f"{key}.png"
        figure.savefig(path, dpi=100, bbox_inches="tight")
        plt.close(figure)
        written.append(path)
    return written
