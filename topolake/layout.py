"""The Delphes collections topolake reads and writes: the contract between the stages.

Simulation writes these collections and fields; ingestion lands them in bronze with the same
names; the dbt models read them from there. Names and types follow Delphes.
"""

import pyarrow as pa

F32 = pa.float32()
I32 = pa.int32()

#: bronze collection -> {field: Arrow type}; the fields PHYSICS.md needs, with Delphes names.
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
