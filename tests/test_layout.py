"""The Delphes contract (topolake/core/layout.py): pure logic, no Spark."""

from __future__ import annotations

import pyarrow as pa

from topolake.core.layout import (
    COLLECTIONS,
    FALLBACKS,
    OPTIONAL_FIELDS,
    TREE_NAME,
    is_required,
    required_fields,
)


def test_the_required_fields_are_exactly_those_physics_lists():
    assert {"MissingET.Eta"} == OPTIONAL_FIELDS
    assert required_fields("MissingET") == ["MET", "Phi"]
    assert required_fields("EFlowTrack") == ["PT", "Eta", "Phi", "PID", "Charge", "X", "Y", "Z"]
    assert required_fields("Jet") == ["PT", "Eta", "Phi", "Mass", "BTag"]


def test_every_optional_field_is_a_bronze_field():
    bronze = {f"{c}.{f}" for c, fields in COLLECTIONS.items() for f in fields}
    assert bronze >= OPTIONAL_FIELDS
    assert not is_required("MissingET", "Eta") and is_required("MissingET", "Phi")


def test_required_and_optional_fields_partition_every_collection_in_bronze_order():
    for collection, fields in COLLECTIONS.items():
        required = required_fields(collection)
        optional = [f for f in fields if f"{collection}.{f}" in OPTIONAL_FIELDS]
        assert required == [f for f in fields if f not in optional]
        assert sorted(required + optional) == sorted(fields)


def test_every_field_is_a_32_bit_delphes_type_and_every_collection_has_a_direction():
    for collection, fields in COLLECTIONS.items():
        assert set(fields.values()) <= {pa.float32(), pa.int32()}, collection
        assert {"Eta", "Phi"} <= set(fields), collection
    assert TREE_NAME == "Delphes"


def test_a_fallback_reads_a_collection_bronze_does_not_store_into_one_it_does():
    assert FALLBACKS == {"MuonTight": "Muon"}
    for stored, fallback in FALLBACKS.items():
        assert stored in COLLECTIONS and fallback not in COLLECTIONS
