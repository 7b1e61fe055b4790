"""The Delphes contract (topolake/layout.py): pure logic, no Spark."""

from __future__ import annotations

from topolake.core.layout import COLLECTIONS, OPTIONAL_FIELDS, is_required, required_fields


def test_the_required_fields_are_exactly_those_physics_lists():
    assert {"MissingET.Eta"} == OPTIONAL_FIELDS
    assert required_fields("MissingET") == ["MET", "Phi"]
    assert required_fields("EFlowTrack") == ["PT", "Eta", "Phi", "PID", "Charge", "X", "Y", "Z"]
    assert required_fields("Jet") == ["PT", "Eta", "Phi", "Mass", "BTag"]


def test_every_optional_field_is_a_bronze_field():
    bronze = {f"{c}.{f}" for c, fields in COLLECTIONS.items() for f in fields}
    assert bronze >= OPTIONAL_FIELDS
    assert not is_required("MissingET", "Eta") and is_required("MissingET", "Phi")
