"""PHYSICS.md computed independently of the SQL: plain NumPy, one event at a time, from ROOT.

Written for the tests only; it shares no code with the dbt models.
"""

from __future__ import annotations

import numpy as np
import uproot

CONE2 = 0.3**2


def _leaf(tree, collection: str, field: str):
    for name in (f"{collection}/{collection}.{field}", f"{collection}.{field}"):
        if name in tree:
            return tree[name].array(library="np")
    raise KeyError(f"{collection}.{field}")


def read_events(path: str) -> list[dict[str, dict[str, np.ndarray]]]:
    tree = uproot.open(path)["Delphes"]
    # a TTree iterates over branch objects, hence keys()
    muon = "MuonTight" if any(k.startswith("MuonTight") for k in tree.keys()) else "Muon"  # noqa: SIM118
    fields = {
        "EFlowTrack": ["PT", "Eta", "Phi", "Charge", "X", "Y", "Z"],
        "EFlowPhoton": ["ET", "Eta", "Phi"],
        "EFlowNeutralHadron": ["ET", "Eta", "Phi"],
        "Electron": ["PT", "Eta", "Phi", "Charge"],
        muon: ["PT", "Eta", "Phi", "Charge"],
        "Jet": ["PT", "Eta", "BTag"],
        "MissingET": ["MET", "Phi"],
    }
    columns = {(c, f): _leaf(tree, c, f) for c, fs in fields.items() for f in fs}
    events = []
    for i in range(tree.num_entries):
        event = {
            c: {f: np.asarray(columns[(c, f)][i], dtype=np.float64) for f in fs}
            for c, fs in fields.items()
        }
        event["MuonTight"] = event.pop(muon)
        events.append(event)
    return events


def _dphi(phi1, phi2):
    return np.mod(phi2 - phi1 + np.pi, 2 * np.pi) - np.pi


def _cone(eta, phi, objects, energy):
    d2 = (objects["Eta"] - eta) ** 2 + _dphi(phi, objects["Phi"]) ** 2
    return float(objects[energy][d2 < CONE2].sum())


def _select(collection, mask):
    return {f: v[mask] for f, v in collection.items()}


def event_features(event) -> tuple[list[float], np.ndarray] | None:
    """(14 HLF in PHYSICS.md order, particle sequence [n, 19]) or None if not selected."""
    tracks = _select(event["EFlowTrack"], event["EFlowTrack"]["PT"] > 0.5)
    photons = _select(event["EFlowPhoton"], event["EFlowPhoton"]["ET"] > 1)
    neutrals = _select(event["EFlowNeutralHadron"], event["EFlowNeutralHadron"]["ET"] > 1)
    jet = event["Jet"]
    jets = _select(jet, (jet["PT"] > 30) & (np.abs(jet["Eta"]) < 2.6))

    def isolation(pt, eta, phi, charged):
        ch = _cone(eta, phi, tracks, "PT") / pt - (1.0 if charged else 0.0)
        return ch, _cone(eta, phi, photons, "ET") / pt, _cone(eta, phi, neutrals, "ET") / pt

    best = None
    for is_ele, leptons in ((1, event["Electron"]), (0, event["MuonTight"])):
        for pt, eta, phi, charge in zip(
            leptons["PT"], leptons["Eta"], leptons["Phi"], leptons["Charge"], strict=True
        ):
            if pt <= 23:
                continue
            iso = isolation(pt, eta, phi, True)
            if sum(iso) < 0.45 and (best is None or pt > best[0]):
                best = (pt, eta, phi, charge, is_ele, iso)
    if best is None:
        return None
    pt, eta, phi, charge, is_ele, (ch, gamma, neu) = best
    met, phimet = event["MissingET"]["MET"][0], event["MissingET"]["Phi"][0]
    hlf = [
        jets["PT"].sum(),
        met,
        phimet,
        np.sqrt(2 * met * pt * (1 - np.cos(phi - phimet))),
        len(jets["PT"]),
        int((jets["BTag"] > 0).sum()),
        pt,
        eta,
        phi,
        ch,
        gamma,
        neu,
        charge,
        is_ele,
    ]

    rows = [(pt, eta, phi, 0, 0, 0, ch, gamma, neu, 0, 0, 0, is_ele, 1 - is_ele, charge)]
    dr = lambda e, p: np.sqrt((e - eta) ** 2 + _dphi(phi, p) ** 2)  # noqa: E731
    own = dr(tracks["Eta"], tracks["Phi"]) > 1e-4
    t = _select(tracks, own)
    for k in range(min(len(t["PT"]), 450)):
        iso = isolation(t["PT"][k], t["Eta"][k], t["Phi"][k], True)
        rows.append(
            (
                t["PT"][k],
                t["Eta"][k],
                t["Phi"][k],
                t["X"][k],
                t["Y"][k],
                t["Z"][k],
                *iso,
                1,
                0,
                0,
                0,
                0,
                t["Charge"][k],
            )
        )
    for objects, cap, flags in ((photons, 150, (0, 0, 1)), (neutrals, 200, (0, 1, 0))):
        for k in range(min(len(objects["ET"]), cap)):
            et, e, p = objects["ET"][k], objects["Eta"][k], objects["Phi"][k]
            rows.append(
                (
                    et,
                    e,
                    p,
                    0,
                    0,
                    0,
                    *isolation(et, e, p, False),
                    flags[0],
                    flags[1],
                    flags[2],
                    0,
                    0,
                    0,
                )
            )
    rows = np.array(rows, dtype=np.float64)
    pts, etas, phis = rows[:, 0], rows[:, 1], rows[:, 2]
    sequence = np.column_stack(
        [
            pts * np.cosh(etas),
            pts * np.cos(phis),
            pts * np.sin(phis),
            pts * np.sinh(etas),
            pts,
            etas,
            phis,
            rows[:, 3:],
        ]
    )
    order = np.argsort(-dr(etas, phis), kind="stable")
    return hlf, sequence[order]
