"""The Delphes collections topolake reads and writes: the contract between the stages.

Simulation writes these collections and fields; ingestion lands them in bronze with the same
names; the dbt models read them from there. Names and types follow Delphes.

A field is *required* when PHYSICS.md lists it: a file without it cannot give the features, so
ingestion refuses it. Every other bronze field is *optional*: a file without it still lands,
the field is null in its rows, and the file's ledger row names the fields it lacked. This is
what lets files from other producers land as long as they carry what the physics needs.
"""

import pyarrow as pa

F32 = pa.float32()
I32 = pa.int32()

#: The name of the tree (TTree or RNTuple) that holds the events.
TREE_NAME = "Delphes"

#: bronze collection -> {field: Arrow type}, with Delphes names: every field bronze stores.
COLLECTIONS: dict[str, dict[str, pa.DataType]] = {
    "EFlowTrack": {
        "PT": F32,
        "Eta": F32,
        "Phi": F32,
        "PID": I32,
        "Charge": I32,
        "X": F32,
        "Y": F32,
        "Z": F32,
    },
    "EFlowPhoton": {"ET": F32, "Eta": F32, "Phi": F32},
    "EFlowNeutralHadron": {"ET": F32, "Eta": F32, "Phi": F32},
    "Electron": {"PT": F32, "Eta": F32, "Phi": F32, "Charge": I32},
    "MuonTight": {"PT": F32, "Eta": F32, "Phi": F32, "Charge": I32},
    "Jet": {"PT": F32, "Eta": F32, "Phi": F32, "Mass": F32, "BTag": I32},
    "MissingET": {"MET": F32, "Eta": F32, "Phi": F32},
}

#: ``Collection.Field`` names of COLLECTIONS that PHYSICS.md does not list: null when absent.
OPTIONAL_FIELDS: frozenset[str] = frozenset({"MissingET.Eta"})

#: Collections that may be read from another one when absent (a card without MuonTight).
FALLBACKS = {"MuonTight": "Muon"}


def is_required(collection: str, field: str) -> bool:
    """Whether a file must carry ``collection.field`` to be ingested (PHYSICS.md's list)."""
    return f"{collection}.{field}" not in OPTIONAL_FIELDS


def required_fields(collection: str) -> list[str]:
    """The fields of a collection that PHYSICS.md lists, in bronze order."""
    return [f for f in COLLECTIONS[collection] if is_required(collection, f)]
