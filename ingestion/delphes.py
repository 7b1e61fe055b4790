"""Reading Delphes-layout ROOT files into Arrow: the layout, the checks, the conversion.

Two leaf spellings exist: real Delphes writes ``EFlowTrack/EFlowTrack.PT``, uproot's ``mktree``
(what topolake's simulation writes) writes ``EFlowTrack.PT``. Both are matched by the leaf's
last path component. Everything here runs inside Spark executors.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field

import awkward as ak
import fsspec
import numpy as np
import pyarrow as pa
import uproot

from topolake.layout import COLLECTIONS, FALLBACKS, TREE_NAME, is_required

ROOT_MAGIC = b"root"

#: Entries converted per Arrow batch: bounds executor memory on large files.
BATCH_ENTRIES = 5_000


class DelphesFileError(Exception):
    """The file cannot be ingested; the message is one sentence naming the problem."""


@dataclass
class FileSurvey:
    """What the executors learn about one file before any event is read."""

    path: str
    ok: bool
    reason: str = ""
    content_hash: str = ""
    size: int = 0
    entries: int = 0
    tree: str = ""
    #: "EFlowTrack.PT" -> branch path in this file, for every bronze field the file has
    branches: dict[str, str] = field(default_factory=dict)
    #: optional bronze fields ("MissingET.Eta") the file lacks: they land as null
    absent_fields: list[str] = field(default_factory=list)
    notes: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def content_hash(path: str) -> tuple[str, int, bytes]:
    """SHA-256, size and first bytes of a local or remote (root://) file, in one streamed pass."""
    digest = hashlib.sha256()
    with fsspec.open(path, "rb") as stream:
        head = stream.read(len(ROOT_MAGIC))
        digest.update(head)
        while block := stream.read(1 << 22):
            digest.update(block)
        size = stream.tell()
    return digest.hexdigest(), size, head


def _highest_cycle(file: uproot.ReadOnlyDirectory) -> str:
    cycles = [
        int(key.split(";")[1])
        for key, classname in file.classnames().items()
        if key.split(";")[0] == TREE_NAME and classname == "TTree"
    ]
    if not cycles:
        raise DelphesFileError("has no Delphes tree")
    return f"{TREE_NAME};{max(cycles)}"


def map_branches(tree: uproot.TTree) -> tuple[dict[str, str], list[str], str]:
    """Map every bronze ``Collection.Field`` this file has to its branch.

    Returns the mapping, the optional fields the file lacks, and notes (fallbacks used).
    A missing *required* field (layout.is_required) refuses the file, naming what is missing.
    """
    by_leaf = {key.rsplit("/", 1)[-1]: key for key in tree.keys(recursive=True)}
    mapping: dict[str, str] = {}
    missing: list[str] = []
    absent: list[str] = []
    notes = []
    for collection, fields in COLLECTIONS.items():
        source = collection
        if f"{collection}.{next(iter(fields))}" not in by_leaf and collection in FALLBACKS:
            fallback = FALLBACKS[collection]
            if f"{fallback}.{next(iter(fields))}" in by_leaf:
                source = fallback
                notes.append(f"{collection} read from {fallback}")
        lacking = [f for f in fields if f"{source}.{f}" not in by_leaf]
        lacking_required = [f for f in lacking if is_required(collection, f)]
        if lacking_required and len(lacking) == len(fields):
            missing.append(collection)
        else:
            missing.extend(f"{collection}.{f}" for f in lacking_required)
            absent.extend(f"{collection}.{f}" for f in lacking if not is_required(collection, f))
            mapping.update(
                {f"{collection}.{f}": by_leaf[f"{source}.{f}"] for f in fields if f not in lacking}
            )
    if missing:
        present = sorted(
            {k.split(".")[0] for k in tree.keys(recursive=False) if not k.endswith("_size")}
        )
        raise DelphesFileError(
            f"lacks the required collections {', '.join(missing)} "
            f"(its tree holds {', '.join(present) or 'nothing'})"
        )
    return mapping, absent, "; ".join(notes)


def _check_complete(file: uproot.ReadOnlyDirectory, tree: uproot.TTree, branches: list[str]):
    """Catch truncation from metadata alone: every basket must lie inside the file."""
    size = file.file.source.num_bytes
    if file.file.fEND > size:
        raise DelphesFileError(
            f"is truncated ({size} bytes of the {file.file.fEND} its header declares)"
        )
    for name in branches:
        branch = tree[name]
        n = branch.num_baskets
        ends = branch.member("fBasketSeek")[:n] + branch.member("fBasketBytes")[:n]
        if n and int(ends.max()) > size:
            raise DelphesFileError(f"is truncated (branch {name} extends past the end)")


def survey_file(path: str) -> FileSurvey:
    """Check one file for ingestion and describe it; never raises for bad input."""
    survey = FileSurvey(path=path, ok=False)
    try:
        survey.content_hash, survey.size, head = content_hash(path)
        if head != ROOT_MAGIC:
            raise DelphesFileError("is not a ROOT file")
        with uproot.open(path) as file:
            survey.tree = _highest_cycle(file)
            tree = file[survey.tree]
            survey.branches, survey.absent_fields, survey.notes = map_branches(tree)
            _check_complete(file, tree, list(survey.branches.values()))
            survey.entries = int(tree.num_entries)
        if survey.entries == 0:
            raise DelphesFileError("holds no events")
        survey.ok = True
    except DelphesFileError as err:
        survey.reason = str(err)
    except FileNotFoundError:
        survey.reason = "does not exist"
    except OSError as err:
        if "expected Chunk" in str(err):
            survey.reason = "is truncated (its directory points past the end of the file)"
        else:
            survey.reason = f"cannot be read ({type(err).__name__}: {_first_line(err)})"
    except Exception as err:  # uproot/xrootd raise many types for damaged files
        survey.reason = f"cannot be read as ROOT ({type(err).__name__}: {_first_line(err)})"
    return survey


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else ""


def _list_column(jagged: dict[str, ak.Array | None], fields: dict[str, pa.DataType]) -> pa.Array:
    """Jagged per-field arrays of one collection -> Arrow list<struct>, without Python loops.

    A field whose array is None (an optional field the file lacks) becomes a null child.
    """
    first = next(a for a in jagged.values() if a is not None)
    counts = ak.to_numpy(ak.num(first, axis=1))
    offsets = np.zeros(len(counts) + 1, dtype=np.int32)
    np.cumsum(counts, out=offsets[1:])
    children = [
        pa.nulls(int(offsets[-1]), dtype)
        if jagged[name] is None
        else pa.array(ak.to_numpy(ak.flatten(jagged[name], axis=1)).astype(dtype.to_pandas_dtype()))
        for name, dtype in fields.items()
    ]
    struct = pa.StructArray.from_arrays(children, names=list(fields))
    return pa.ListArray.from_arrays(pa.array(offsets), struct)


def read_events(
    path: str, tree_name: str, branches: dict[str, str], entry_start: int, entry_stop: int
) -> Iterator[pa.RecordBatch]:
    """Yield the events [entry_start, entry_stop) as Arrow batches of the bronze layout."""
    with uproot.open(path) as file:
        tree = file[tree_name]
        for start in range(entry_start, entry_stop, BATCH_ENTRIES):
            stop = min(start + BATCH_ENTRIES, entry_stop)
            arrays = tree.arrays(
                list(branches.values()), entry_start=start, entry_stop=stop, how=dict
            )
            columns = {"entry": pa.array(np.arange(start, stop, dtype=np.int64))}
            for collection, fields in COLLECTIONS.items():
                jagged = {
                    f: arrays[branches[key]] if (key := f"{collection}.{f}") in branches else None
                    for f in fields
                }
                columns[collection] = _list_column(jagged, fields)
            yield pa.RecordBatch.from_pydict(columns)
