"""Reading Delphes-layout ROOT files into Arrow: the layout, the checks, the conversion.

Two leaf spellings exist: real Delphes writes ``EFlowTrack/EFlowTrack.PT``, uproot's ``mktree``
(what topolake's simulation writes) writes ``EFlowTrack.PT``. Both are matched by the leaf's
last path component. The events may also be an RNTuple (ROOT's successor of TTree; uproot
5.7's ``file["Delphes"] = {...}`` writes one), whose fields ``EFlowTrack.PT`` are read the
same way. Everything here runs inside Spark executors.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field

import awkward as ak
import fsspec
import numpy as np
import pyarrow as pa
import uproot

from topolake.core.layout import COLLECTIONS, FALLBACKS, TREE_NAME, is_required

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


#: ROOT classes that hold Delphes events.
TREE_CLASSES = ("TTree", "ROOT::RNTuple")


def _highest_cycle(file: uproot.ReadOnlyDirectory) -> str:
    cycles = [
        int(key.split(";")[1])
        for key, classname in file.classnames().items()
        if key.split(";")[0] == TREE_NAME and classname in TREE_CLASSES
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


def _is_ttree(tree) -> bool:
    return isinstance(tree, uproot.TTree)


def _check_complete(file: uproot.ReadOnlyDirectory, tree, branches: list[str]):
    """Catch truncation from metadata alone: every basket must lie inside the file."""
    size = file.file.source.num_bytes
    if file.file.fEND > size:
        raise DelphesFileError(
            f"is truncated ({size} bytes of the {file.file.fEND} its header declares)"
        )
    if not _is_ttree(tree):
        return  # an RNTuple's pages are checked by the job that reads them
    for name in branches:
        branch = tree[name]
        n = branch.num_baskets
        ends = branch.member("fBasketSeek")[:n] + branch.member("fBasketBytes")[:n]
        if n and int(ends.max()) > size:
            raise DelphesFileError(f"is truncated (branch {name} extends past the end)")


def _check_first_entry(tree, branches: dict[str, str], entries: int) -> None:
    """Convert the first entry to the bronze layout, which refuses non-numeric fields.

    The rest of the file is decoded once, by the job that lands it: a basket that cannot be
    decompressed there names its file (see `read_events`), which is refused, and the job runs
    again without it. Decoding every basket here as well cost about a fifth of the ingest's
    throughput (measured on the ingest benchmark).
    """
    try:
        _batch(tree, branches, 0, min(1, entries))
    except DelphesFileError:
        raise
    except Exception as err:
        raise DelphesFileError(read_failure(err, 0, min(1, entries))) from err


def read_failure(err: Exception, start: int, stop: int) -> str:
    """One sentence for events [start, stop) that could not be read: damaged compressed data
    (a flipped byte in a basket or page) or anything else."""
    detail = f"{type(err).__name__}: {_first_line(err)[:200]}"
    if _is_decompression_error(err):
        return f"is damaged: entries {start}-{stop} cannot be decompressed ({detail})"
    return f"could not be read (entries {start}-{stop}: {detail})"


def _is_decompression_error(err: BaseException | None) -> bool:
    while err is not None:
        if isinstance(err, zlib.error) or "decompress" in str(err).lower():
            return True
        err = err.__cause__ or err.__context__
    return False


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
            _check_first_entry(tree, survey.branches, survey.entries)
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
        else pa.array(_numbers(jagged[name], name).astype(dtype.to_pandas_dtype()))
        for name, dtype in fields.items()
    ]
    struct = pa.StructArray.from_arrays(children, names=list(fields))
    return pa.ListArray.from_arrays(pa.array(offsets), struct)


def _numbers(jagged: ak.Array, name: str) -> np.ndarray:
    """The flattened values of a field; integers and floats of any width are converted to the
    bronze type (PT as double becomes float32, Charge as float int32), anything else refused."""
    values = ak.to_numpy(ak.flatten(jagged, axis=1))
    if values.dtype.kind not in "iufb":
        raise DelphesFileError(f"has a field {name} of type {values.dtype}, not a number")
    return values


def _batch(tree, branches: dict[str, str], start: int, stop: int) -> pa.RecordBatch:
    """Entries [start, stop) of a TTree or RNTuple as one Arrow batch of the bronze layout."""
    if _is_ttree(tree):
        arrays = tree.arrays(list(branches.values()), entry_start=start, entry_stop=stop, how=dict)
        column = arrays.__getitem__
    else:  # fields come back nested: {"EFlowTrack": [{"PT": ...}]}
        records = tree.arrays(list(branches.values()), entry_start=start, entry_stop=stop)

        def column(key: str) -> ak.Array:
            collection, name = key.rsplit(".", 1)
            return records[collection][name]

    columns = {"entry": pa.array(np.arange(start, stop, dtype=np.int64))}
    for collection, fields in COLLECTIONS.items():
        jagged = {
            f: column(branches[key]) if (key := f"{collection}.{f}") in branches else None
            for f in fields
        }
        columns[collection] = _list_column(jagged, fields)
    return pa.RecordBatch.from_pydict(columns)


def read_events(
    path: str, tree_name: str, branches: dict[str, str], entry_start: int, entry_stop: int
) -> Iterator[pa.RecordBatch]:
    """Yield the events [entry_start, entry_stop) as Arrow batches of the bronze layout."""
    with uproot.open(path) as file:
        tree = file[tree_name]
        for start in range(entry_start, entry_stop, BATCH_ENTRIES):
            stop = min(start + BATCH_ENTRIES, entry_stop)
            try:
                batch = _batch(tree, branches, start, stop)
            except Exception as err:
                raise DelphesFileError(read_failure(err, start, stop)) from err
            yield batch
