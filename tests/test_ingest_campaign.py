"""The bad-input campaign: generated Delphes files, valid and mutated, TTree and RNTuple.

Hypothesis draws batches of files, each a small valid file with at most one mutation; every
batch goes through ONE `ingest` (which is also how "a bad file never fails its neighbours"
is tested), and each file's outcome is checked against its contract: it lands with the values
uproot reads and the bronze types, or it is refused with one sentence and a quarantine row,
with none of its events landed. `--hypothesis-profile thorough` runs more batches.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from ingestion.bronze import ingest
from simulation.synthetic import synthetic_events
from simulation.writer import TREE_NAME, write_delphes
from tests.helpers import drop_all_tables
from topolake.core.layout import COLLECTIONS, OPTIONAL_FIELDS
from topolake.core.tables import BRONZE_EVENTS, BRONZE_INGESTED_FILES, BRONZE_REJECTED_FILES

pytestmark = pytest.mark.slow

settings.register_profile(
    "ci",
    max_examples=1,
    deadline=None,
    # each example is a whole Spark ingest: report a failure as found, do not shrink it
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.register_profile("thorough", parent=settings.get_profile("ci"), max_examples=40)
settings.load_profile("ci")

#: files per batch beyond one of every mutation
RANDOM_FILES_PER_BATCH = 87

#: mutation -> (TTree only, expected refusal reason prefix or None when the file must land)
MUTATIONS: dict[str, tuple[bool, str | None]] = {
    "none": (False, None),
    "zero entries": (False, "holds no events"),
    "every collection empty": (False, None),
    "NaN and infinities": (False, None),
    "negative PT": (False, None),
    "5,000 tracks": (False, None),
    "counter disagrees": (True, None),
    "PT as double, Charge as float": (False, None),
    "unknown extra branches": (False, None),
    "optional field missing": (False, None),
    "required field missing": (False, "lacks the required collections"),
    "corrupted basket": (True, "is damaged"),
    "fields of one collection disagree in length": (True, "could not be read"),
}


@dataclass
class Case:
    name: str
    path: Path
    events: dict[str, ak.Array] | None  # what must land; None when the file must be refused
    refusal: str | None


def _set(events: dict[str, ak.Array], collection: str, field: str, values) -> None:
    records = events[collection]
    counts = ak.num(records)
    events[collection] = ak.with_field(records, ak.unflatten(values, counts), field)


def _flat(events: dict[str, ak.Array], collection: str, field: str) -> np.ndarray:
    return ak.to_numpy(ak.flatten(events[collection][field])).copy()


def make_case(
    directory: Path, index: int, mutation: str, rntuple: bool, seed: int, n_events: int
) -> Case:
    """Write one file: valid events from `seed`, then `mutation` applied."""
    rng = np.random.default_rng(seed)
    events = synthetic_events(n_events, seed)
    path = directory / f"{index:03d}-{mutation.replace(' ', '_').replace(',', '')}.root"
    refusal = MUTATIONS[mutation][1]
    extra: dict[str, ak.Array] = {}
    if mutation == "zero entries":
        events = {name: array[:0] for name, array in events.items()}
    elif mutation == "every collection empty":
        events = {name: array[:, :0] for name, array in events.items()}
    elif mutation == "NaN and infinities":
        for field in ("PT", "Eta", "Phi"):
            values = _flat(events, "EFlowTrack", field)
            values[rng.integers(0, len(values), 3)] = [np.nan, np.inf, -np.inf]
            _set(events, "EFlowTrack", field, values)
    elif mutation == "negative PT":
        values = _flat(events, "Jet", "PT")
        values[::2] *= -1
        _set(events, "Jet", "PT", values)
    elif mutation == "5,000 tracks":
        many = ak.zip(
            {
                f: ak.Array([rng.normal(size=5_000).astype(dtype.to_pandas_dtype())])
                for f, dtype in COLLECTIONS["EFlowTrack"].items()
            }
        )
        events["EFlowTrack"] = ak.concatenate([events["EFlowTrack"][:-1], many], axis=0)
    elif mutation == "PT as double, Charge as float":
        _set(events, "EFlowTrack", "PT", _flat(events, "EFlowTrack", "PT").astype(np.float64))
        _set(events, "Electron", "Charge", _flat(events, "Electron", "Charge").astype(np.float32))
    elif mutation == "unknown extra branches":
        extra["Weight"] = ak.zip({"Weight": ak.Array(rng.random((n_events, 1)))})
        _set(events, "Jet", "Flavor", rng.integers(0, 6, int(ak.sum(ak.num(events["Jet"])))))
    elif mutation == "optional field missing":
        for name in OPTIONAL_FIELDS:
            collection, field = name.split(".")
            events[collection] = events[collection][
                [f for f in events[collection].fields if f != field]
            ]
    elif mutation == "required field missing":
        collection = list(COLLECTIONS)[seed % len(COLLECTIONS)]
        field = list(COLLECTIONS[collection])[seed % 3]
        events[collection] = events[collection][
            [f for f in events[collection].fields if f != field]
        ]
    write_delphes(path, {**events, **extra}, rntuple=rntuple)
    if mutation == "counter disagrees":
        _rewrite_with_wrong_counter(path, events, rng)
    elif mutation == "fields of one collection disagree in length":
        _rewrite_with_a_longer_field(path, events)
    elif mutation == "corrupted basket":
        _corrupt_a_basket(path, rng)
    return Case(mutation, path, None if refusal else events, refusal)


def _rewrite_with_wrong_counter(path: Path, events: dict[str, ak.Array], rng) -> None:
    """A tree whose `EFlowTrack_size` branch disagrees with the data (uproot reads the data's
    own offsets, through its real counter `EFlowTrack_n`)."""
    wrong = ak.to_numpy(ak.num(events["EFlowTrack"])) + rng.integers(1, 5, len(events["Jet"]))
    with uproot.recreate(path) as file:
        types = {name: str(array.type.content) for name, array in events.items()}
        tree = file.mktree(
            TREE_NAME,
            {**types, "EFlowTrack_size": "int32"},
            field_name=lambda outer, inner: f"{outer}.{inner}",
            counter_name=lambda counter: f"{counter}_n",
        )
        tree.extend({**events, "EFlowTrack_size": wrong.astype(np.int32)})


def _rewrite_with_a_longer_field(path: Path, events: dict[str, ak.Array]) -> None:
    """Every field its own jagged branch, and in the last event `EFlowTrack.Eta` has one value
    more than `EFlowTrack.PT`: the first entries look right, the file is not."""
    branches = {
        f"{collection}.{field}": ak.from_regular(events[collection][field], axis=1)
        for collection in events
        for field in events[collection].fields
    }
    eta = ak.to_list(branches["EFlowTrack.Eta"])
    eta[-1] = [*eta[-1], 0.5]
    branches["EFlowTrack.Eta"] = ak.values_astype(ak.Array(eta), np.float32)
    with uproot.recreate(path) as file:
        file.mktree(
            TREE_NAME,
            {name: array.type.content for name, array in branches.items()},
            counter_name=lambda counted: f"{counted}_size",
        ).extend(branches)


def _corrupt_a_basket(path: Path, rng) -> None:
    """4 KiB of random bytes inside the compressed data of the largest basket."""
    tree = uproot.open(path)[TREE_NAME]
    seek, size = max(
        (int(b.member("fBasketSeek")[i]), int(b.member("fBasketBytes")[i]))
        for b in tree.values(recursive=True)
        for i in range(b.num_baskets)
    )
    data = bytearray(path.read_bytes())
    start = seek + 100  # past the basket's key, into its compressed payload
    length = min(4096, size - 120)
    data[start : start + length] = rng.integers(0, 256, length, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))


@st.composite
def cases(draw, mutation: str | None = None):
    mutation = mutation or draw(st.sampled_from(list(MUTATIONS)))
    ttree_only = MUTATIONS[mutation][0]
    rntuple = False if ttree_only else draw(st.booleans())
    # a corrupted basket needs a basket big enough to be compressed
    n_events = 300 if mutation == "corrupted basket" else draw(st.integers(2, 12))
    return mutation, rntuple, draw(st.integers(0, 2**31)), n_events


def _same(landed: list, expected: np.ndarray) -> bool:
    return np.array_equal(
        np.asarray(landed, dtype=np.float64), expected.astype(np.float64), equal_nan=True
    )


def check_landed(spark, case: Case, rows: list) -> None:
    events = case.events
    n_events = len(events["Jet"])
    assert [r.entry for r in rows] == list(range(n_events)), case.name
    for collection, fields in COLLECTIONS.items():
        for field, dtype in fields.items():
            landed = [getattr(item, field) for r in rows for item in r[collection]]
            if field not in events[collection].fields:
                assert landed == [None] * len(landed), (case.name, collection, field)
                continue
            expected = _flat(events, collection, field).astype(dtype.to_pandas_dtype())
            assert _same(landed, expected), (case.name, collection, field)


@pytest.fixture(scope="module", autouse=True)
def empty_lakehouse_afterwards(spark):
    """The campaign lands NaN kinematics that the shared lakehouse's later builds would refuse."""
    yield
    drop_all_tables(spark)


#: every mutation once, then random cases: each batch (one ingest) covers the whole campaign
batches = st.tuples(
    st.tuples(*(cases(mutation) for mutation in MUTATIONS)),
    st.lists(cases(), min_size=RANDOM_FILES_PER_BATCH, max_size=RANDOM_FILES_PER_BATCH),
).map(lambda parts: [*parts[0], *parts[1]])


@given(batch=batches)
def test_every_generated_file_lands_exactly_or_is_refused_alone(spark, tmp_path_factory, batch):
    drop_all_tables(spark)
    directory = tmp_path_factory.mktemp("campaign")
    made = [make_case(directory, i, *case) for i, case in enumerate(batch)]

    report = ingest(spark, [str(directory)], sample="ttbar", label=1)

    reasons = {s.path: s.reason for s in report.rejected}
    landed_paths = {s.path for s in report.landed}
    quarantined = {r.path: r.reason for r in spark.table(BRONZE_REJECTED_FILES).collect()}
    assert quarantined == reasons
    by_file: dict[str, list] = {}
    for row in spark.sql(f"SELECT * FROM {BRONZE_EVENTS} ORDER BY entry").collect():
        by_file.setdefault(row.source_file, []).append(row)
    for case in made:
        path = str(case.path)
        if case.refusal:
            assert path in reasons, (case.name, path)
            assert reasons[path].startswith(case.refusal), (case.name, reasons[path])
            assert "\n" not in reasons[path] and len(reasons[path]) < 400
            assert path not in by_file  # nothing of it landed
        else:
            assert path in landed_paths, (case.name, reasons.get(path))
            check_landed(spark, case, by_file[path])
    assert spark.table(BRONZE_INGESTED_FILES).count() == len(landed_paths)
    assert math.isclose(spark.table(BRONZE_EVENTS).count(), sum(s.entries for s in report.landed))
