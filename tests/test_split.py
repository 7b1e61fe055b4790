"""The train/test split: a hash of the event identity, never of the file's path (fast).

dbt computes it (`split_of` in macros/): `pmod(xxhash64(content_hash, entry), 100) <
train_percent`. `spark_xxhash64` below is Spark's xxhash64 in Python (seed 42, each column
hashed with the previous hash as its seed; a string as its UTF-8 bytes, a bigint as 8
little-endian bytes), checked against values Spark 3.5 itself returned, so the split's
properties can be checked on many keys without a Spark session.
"""

from __future__ import annotations

import hashlib
import re
import struct
from functools import cache
from pathlib import Path

import pytest
import xxhash
import yaml

ROOT = Path(__file__).resolve().parents[1]
SPARK_SEED = 42

# (content_hash, entry) -> xxhash64(content_hash, entry) as `SELECT xxhash64(...)` on Spark
# 3.5.9 returned it, for sha256("a"), sha256("ttbar_seed21_000_of_001_120ev.root") and
# sha256("cms_card_10_events.root"), with a large entry too
A = "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb"
TTBAR = "16274201f2472bb3a341240dae87ed499ea23aa08fed56c9f45d27b0cc0e7c0f"
CMS = "654c312a18fb0427b9917155c5e5f8ce0e4de737e84f4cdab30e7e01d32256c2"
SPARK_VALUES = {
    (A, 0): -5012366364035100137,
    (A, 7): 8962056244733317047,
    (TTBAR, 0): -3109450568292985699,
    (TTBAR, 1): 4355273319633195092,
    (TTBAR, 123456789012): 8205411130081500352,
    (CMS, 1): -8528068488762182376,
    (CMS, 123456789012): -3128631382405081075,
}
#: pmod(xxhash64(content_hash, entry), 100) of the same keys, as Spark returned it
SPARK_PMOD = [63, 47, 1, 92, 52, 24, 25]


def spark_xxhash64(content_hash: str, entry: int) -> int:
    seed = xxhash.xxh64_intdigest(content_hash.encode(), seed=SPARK_SEED)
    unsigned = xxhash.xxh64_intdigest(struct.pack("<q", entry), seed=seed)
    return unsigned - (1 << 64) if unsigned >= 1 << 63 else unsigned  # Spark's signed long


@cache
def train_percent() -> int:
    return yaml.safe_load((ROOT / "dbt_project.yml").read_text())["vars"]["train_percent"]


def split_of(content_hash: str, entry: int) -> str:
    # pmod: Python's % of a negative number is already the non-negative remainder
    return "train" if spark_xxhash64(content_hash, entry) % 100 < train_percent() else "test"


def macro(name: str) -> tuple[str, str]:
    """(arguments, body with blanks collapsed) of dbt macro `name`, wherever in macros/."""
    pattern = re.compile(
        r"{%-?\s*macro\s+" + name + r"\((.*?)\)\s*-?%}(.*?){%-?\s*endmacro", re.DOTALL
    )
    found = [
        m for f in sorted((ROOT / "macros").glob("*.sql")) for m in pattern.finditer(f.read_text())
    ]
    assert len(found) == 1, f"macro {name} is defined {len(found)} times in macros/"
    return found[0].group(1), " ".join(found[0].group(2).split())


def test_the_python_mirror_returns_what_spark_returned():
    assert {key: spark_xxhash64(*key) for key in SPARK_VALUES} == SPARK_VALUES
    assert [spark_xxhash64(*key) % 100 for key in SPARK_VALUES] == SPARK_PMOD
    assert [split_of(*key) for key in SPARK_VALUES] == [
        "train",
        "train",
        "train",
        "test",
        "train",
        "train",
        "train",
    ]


def test_the_split_hashes_the_event_identity_only_never_the_files_path():
    arguments, body = macro("split_of")
    assert [a.strip() for a in arguments.split(",")] == ["content_hash", "entry"]
    assert "pmod(xxhash64({{ content_hash }}, {{ entry }}), 100) < {{ var('train_percent') }}" in (
        body
    )
    assert train_percent() == 80
    models = "\n".join(p.read_text() for p in (ROOT / "models").rglob("*.sql"))
    assert re.findall(r"split_of\(([^)]*)\)", models) == ["'content_hash', 'entry'"]


def test_the_split_is_deterministic_and_near_the_configured_share():
    keys = [
        (hashlib.sha256(f"file {f}".encode()).hexdigest(), entry)
        for f in range(40)
        for entry in range(500)
    ]
    first = [split_of(*key) for key in keys]
    assert [split_of(*key) for key in keys] == first
    share = first.count("train") / len(first)
    assert share == pytest.approx(train_percent() / 100, abs=0.015)  # 20,000 keys: sd 0.3 %
    per_file = [first[i : i + 500].count("train") / 500 for i in range(0, len(first), 500)]
    assert min(per_file) > 0.7 and max(per_file) < 0.9  # every file is split, not whole files
