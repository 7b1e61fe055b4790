"""Random events in the Delphes layout, for I/O tests and benchmarks. No physics here.

They have realistic multiplicities (about 100 tracks, 40 photons, 30 neutral hadrons per event)
so that reading and landing costs what real files cost; `simulation.generate` makes physics.
"""

from __future__ import annotations

import awkward as ak
import numpy as np

from topolake.core.layout import COLLECTIONS

MEAN_MULTIPLICITY = {
    "EFlowTrack": 100,
    "EFlowPhoton": 40,
    "EFlowNeutralHadron": 30,
    "Electron": 0.6,
    "MuonTight": 0.6,
    "Jet": 5,
    "MissingET": 1,
}


def synthetic_events(n_events: int, seed: int = 0) -> dict[str, ak.Array]:
    """Collections of `n_events` random events, each ordered by PT (ET) descending."""
    rng = np.random.default_rng(seed)
    events = {}
    for name, fields in COLLECTIONS.items():
        if name == "MissingET":
            counts = np.ones(n_events, dtype=np.int64)
        else:
            counts = rng.poisson(MEAN_MULTIPLICITY[name], n_events)
        total = int(counts.sum())
        columns = {}
        for field, arrow_type in fields.items():
            dtype = np.dtype(arrow_type.to_pandas_dtype())
            if field in ("PT", "ET", "MET"):
                values = -np.log1p(-rng.random(total)) * 5 + 0.5
                # Delphes orders every collection by PT (ET) descending within an event.
                order = np.lexsort((-values, np.repeat(np.arange(n_events), counts)))
                values = values[order]
            elif field == "Eta":
                values = rng.uniform(-2.5, 2.5, total)
            elif field == "Phi":
                values = rng.uniform(-np.pi, np.pi, total)
            elif field == "Charge":
                values = rng.choice([-1, 1], total)
            elif field == "PID":
                values = rng.choice([211, -211, 11, -11, 13, -13, 321], total)
            elif field == "BTag":
                values = (rng.random(total) < 0.2).astype(int)
            elif field == "Mass":
                values = rng.uniform(0, 20, total)
            else:  # production vertex, mm
                values = rng.normal(0, 0.05 if field != "Z" else 40, total)
            columns[field] = ak.unflatten(values.astype(dtype), counts)
        events[name] = ak.zip(columns)
    return events
