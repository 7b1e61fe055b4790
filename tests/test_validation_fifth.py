"""The validation fifth: early stopping and the grid search look at a fixed fifth of the
training split, chosen by a hash of the event's identity, never at the test split (fast).

Events are split as dbt splits them and keyed as the extract keys them, with the Python
mirrors of Spark's xxhash64 (`tests.test_split`), and written as a hand-made extract; the
parts are then read the way the engines read them (`Extract.part`).
"""

from __future__ import annotations

import hashlib
from functools import cache

import numpy as np
import pyarrow.parquet as pq
import pytest
import xxhash

from ml.data import PARTS, SHUFFLE_SALT, Extract, in_validation
from tests.helpers import write_extract
from tests.test_split import CMS, SPARK_VALUES, TTBAR, A, spark_xxhash64, split_of

# xxhash64(content_hash, entry, 'shuffle') as Spark 3.5.9 returned it for the keys of
# tests.test_split, in their order
SPARK_SHUFFLE_KEYS = {
    (A, 0): -7025975686084394689,
    (A, 7): -3431391184442056064,
    (TTBAR, 0): -1807719453603211831,
    (TTBAR, 1): -3754109630309245175,
    (TTBAR, 123456789012): 5896496522809228252,
    (CMS, 1): 4177523727334454000,
    (CMS, 123456789012): 1850941583814519723,
}


def shuffle_key(content_hash: str, entry: int) -> int:
    """Spark's xxhash64(content_hash, entry, SHUFFLE_SALT): the salt hashed with the pair's
    hash as its seed."""
    seed = spark_xxhash64(content_hash, entry) & ((1 << 64) - 1)  # as unsigned
    unsigned = xxhash.xxh64_intdigest(SHUFFLE_SALT.encode(), seed=seed)
    return unsigned - (1 << 64) if unsigned >= 1 << 63 else unsigned


IDENTITIES = [
    (hashlib.sha256(f"file {f}".encode()).hexdigest(), entry)
    for f in range(40)
    for entry in range(500)
]


@cache
def split_and_key(identity: tuple[str, int]) -> tuple[str, int]:
    return split_of(*identity), shuffle_key(*identity)


def lakehouse_extract(path, identities, files: int = 1) -> Extract:
    """The extract of `identities`, split and keyed as dbt and `ml.data.extract` do."""
    splits = {}
    for split in ("train", "test"):
        mine = [key for key in identities if split_and_key(key)[0] == split]
        splits[split] = {
            "content_hash": [c for c, _ in mine],
            "entry": [e for _, e in mine],
            "label": [0] * len(mine),
            "hlf": np.zeros((len(mine), 14)),
            "shuffle_key": [split_and_key(key)[1] for key in mine],
            "files": files,
        }
    return write_extract(path, splits)


def read_part(extract: Extract, part: str, fraction: float = 1.0) -> set[tuple[str, int]]:
    """The identities of a part's events, read as `ml.data.batches` reads them."""
    files, where = extract.part(part, fraction)
    found = set()
    for file in files:
        for record in pq.ParquetFile(file).iter_batches():
            kept = np.ones(record.num_rows, bool) if where is None else where(record)
            rows = record.filter(kept).to_pydict()
            found |= set(zip(rows["content_hash"], rows["entry"], strict=True))
    return found


@pytest.fixture(scope="module")
def extract(tmp_path_factory) -> Extract:
    return lakehouse_extract(tmp_path_factory.mktemp("extract"), IDENTITIES)


def test_the_python_shuffle_key_is_the_one_spark_writes_into_the_extract():
    assert SPARK_SHUFFLE_KEYS.keys() == SPARK_VALUES.keys()
    assert {key: shuffle_key(*key) for key in SPARK_SHUFFLE_KEYS} == SPARK_SHUFFLE_KEYS


def test_the_validation_fifth_never_holds_a_test_event_and_is_a_fifth_of_the_training_split(
    extract,
):
    train, validation, test = (read_part(extract, part) for part in PARTS)
    in_train_split = {key for key in IDENTITIES if split_and_key(key)[0] == "train"}
    assert validation and not validation & test
    assert not validation & train and validation | train == in_train_split
    assert test == set(IDENTITIES) - in_train_split
    share = len(validation) / len(in_train_split)
    assert share == pytest.approx(0.2, abs=0.015)  # 16,000 training events: sd 0.3 %
    assert extract.part_events("validation") == len(validation)
    assert extract.part_events("train") == len(train)
    assert extract.part_events("test") == len(test)


def test_an_event_is_in_the_validation_fifth_by_its_identity_not_by_where_it_is_stored(
    extract, tmp_path
):
    expected = {
        key
        for key in IDENTITIES
        if split_and_key(key)[0] == "train" and in_validation(np.int64(split_and_key(key)[1]))
    }
    assert read_part(extract, "validation") == expected
    # the same events in another order and in other files
    shuffled = lakehouse_extract(tmp_path, IDENTITIES[::-1], files=3)
    assert len(shuffled.files("train")) == 3
    assert read_part(shuffled, "validation") == expected
    # every file contributes its fifth: the validation events are not whole files
    per_file = [
        np.mean(in_validation(pq.read_table(f, columns=["shuffle_key"])[0].to_numpy()))
        for f in shuffled.files("train")
    ]
    assert all(0.15 < share < 0.25 for share in per_file)


def test_a_grid_search_fraction_takes_a_subset_of_the_fitted_part_never_the_fifth(extract):
    train = read_part(extract, "train")
    half = read_part(extract, "train", 0.5)
    assert half < train and not half & read_part(extract, "validation")
    assert len(half) / len(train) == pytest.approx(0.5, abs=0.03)
