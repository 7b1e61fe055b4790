"""Write events as a Delphes-layout TTree with uproot (leaves `EFlowTrack.PT`, counters `_size`).

Shared by the simulation and by tests that need files of a known content.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import awkward as ak
import uproot

from topolake.core.layout import TREE_NAME

#: Events per basket: several baskets per branch, as real Delphes files have.
BASKET_EVENTS = 5_000


def write_delphes(
    path: str | Path, collections: Mapping[str, ak.Array], rntuple: bool = False
) -> Path:
    """Write one Delphes tree; each value is a jagged record array (one list per event).

    A TTree by default (what Delphes writes); with ``rntuple`` an RNTuple, ROOT's successor
    format, with the same fields (``EFlowTrack.PT``). The file appears under its final name
    only once complete (written as `.part`, then renamed), so an interrupted run never leaves
    a half-written file that looks finished.
    """
    path = Path(path)
    partial = path.with_name(path.name + ".part")
    arrays = {name: ak.from_regular(array, axis=1) for name, array in collections.items()}
    n_events = len(next(iter(arrays.values())))
    with uproot.recreate(partial) as file:
        if rntuple:
            file[TREE_NAME] = arrays
            partial.replace(path)
            return path
        tree = file.mktree(
            TREE_NAME,
            {name: str(array.type.content) for name, array in arrays.items()},
            field_name=lambda outer, inner: f"{outer}.{inner}",
            counter_name=lambda counter: f"{counter}_size",
        )
        for start in range(0, n_events, BASKET_EVENTS):
            tree.extend(
                {name: array[start : start + BASKET_EVENTS] for name, array in arrays.items()}
            )
    partial.replace(path)
    return path
