"""Simulation tasks: one file each, with its own derived seed, run in parallel.

Locally the tasks run in a process pool (one per core); `spark=True` runs them as Spark tasks
so a cluster can share the work. The same (sample, seed, files, events) gives the same events.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import awkward as ak
import numpy as np

from simulation.generator import SAMPLES, EventSource, LeptonFilter, PlainEvents
from simulation.redecay import DEFAULT_REDECAYS, RedecayedEvents
from topolake.core.errors import UsageError

#: Events generated per Pythia batch.
BATCH = 200
#: Events (copies) per batch with re-decays, from REDECAYED_BATCH // redecays hard events: the
#: copies' assembly and the filter cost mostly per batch, and few copies have a lepton.
REDECAYED_BATCH = 1000
#: Accepted events the detector model runs on at once: its cost is mostly per call, not per
#: event, at the few accepted events a QCD batch has.
DETECTOR_BATCH = 400
SAMPLE_KEYS = {name: i for i, name in enumerate(SAMPLES)}


class SimulationArgumentError(UsageError):
    """Bad simulate arguments; nothing was generated."""


@dataclass(frozen=True)
class Task:
    sample: str
    index: int
    events: int
    seed: int
    path: str
    isolation_filter: bool = True
    #: decays of each hard event (simulation.redecay); 1 is the plain method
    redecays: int = 1


@dataclass
class TaskResult:
    path: str
    events: int
    #: hard events generated (each decayed `redecays` times)
    generated: int
    #: hard events with an event that passed the filter, before trimming to the requested number
    passed: int
    pythia_s: float
    filter_s: float
    detector_s: float
    write_s: float
    skipped: bool = False
    redecays: int = 1
    #: events made from the hard events: `redecays` copies each (fewer if a decay failed)
    decayed: int = 0
    #: events (copies) that passed the filter; more than `passed` when copies of one hard event
    #: passed and the policy kept only the first
    decays_passed: int = 0
    #: the part of pythia_s spent re-decaying copies and exporting them
    redecay_s: float = 0.0


def task_seed(seed: int, sample: str, index: int) -> int:
    """Independent, reproducible seed per (seed, sample, file) in Pythia's range [1, 9e8]."""
    state = np.random.SeedSequence(seed, spawn_key=(SAMPLE_KEYS[sample], index)).generate_state(1)
    return int(state[0] % 900_000_000) + 1


def plan(
    sample: str,
    events: int,
    out: Path,
    seed: int,
    files: int,
    isolation_filter: bool = True,
    redecays: int | None = None,
) -> list[Task]:
    """The tasks of a run; `redecays` defaults to the sample's (`DEFAULT_REDECAYS`, else 1)."""
    if sample not in SAMPLES:
        raise SimulationArgumentError(
            f"Unknown sample {sample!r}: choose one of {', '.join(SAMPLES)}."
        )
    if redecays is None:
        redecays = DEFAULT_REDECAYS.get(sample, 1)
    if redecays <= 0:
        raise SimulationArgumentError(f"redecays must be a positive number, not {redecays}.")
    if events <= 0:
        raise SimulationArgumentError(f"--events must be a positive number, not {events}.")
    if files <= 0:
        raise SimulationArgumentError(f"--files must be a positive number, not {files}.")
    files = min(files, events)
    directory = out / sample
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise SimulationArgumentError(
            f"The output directory {directory} is not writable ({err.strerror})."
        ) from err
    for stale in directory.glob("*.root.part"):  # left by an interrupted run
        stale.unlink()
    shares = np.diff(np.linspace(0, events, files + 1).round().astype(int))
    # the method in the name: a plain file of the same seed is never taken for a re-decayed one
    method = f"_redecays{redecays}" if redecays > 1 else ""
    return [
        Task(
            sample,
            i,
            int(n),
            task_seed(seed, sample, i),
            str(directory / f"{sample}_seed{seed}{method}_{i:03d}_of_{files:03d}_{n}ev.root"),
            isolation_filter,
            redecays,
        )
        for i, n in enumerate(shares)
    ]


def generate(task: Task, on_events: Callable[[int], None] | None = None) -> TaskResult:
    """Generate, filter, reconstruct and write one file; skip it if it already exists."""
    from simulation.detector import reconstruct
    from simulation.generator import ChargeTable, first_per_hard_event, particles_of, passes_filter
    from simulation.writer import write_delphes

    if Path(task.path).exists():
        return TaskResult(task.path, task.events, 0, 0, 0, 0, 0, 0, skipped=True)
    cut = LeptonFilter(isolation_max=0.45 if task.isolation_filter else None)
    rng = np.random.default_rng(task.seed)
    source: EventSource = (
        RedecayedEvents(task.sample, task.seed, cut, task.redecays)
        if task.redecays > 1
        else PlainEvents(task.sample, task.seed, cut)
    )
    charges = ChargeTable(source.pythia)
    timings = dict.fromkeys(("filter", "detector", "write"), 0.0)
    pieces: list[dict[str, ak.Array]] = []
    pending: list[tuple[ak.Array, ak.Array]] = []  # accepted, waiting for the detector model
    accepted = generated = decayed = passed = decays_passed = waiting = 0
    batch_size = BATCH if task.redecays == 1 else REDECAYED_BATCH
    while accepted < task.events:
        batch = source.next_batch(batch_size)

        started = time.perf_counter()
        particles, hadrons = particles_of(batch.events, charges)
        passing = passes_filter(particles, cut)
        decays_passed += int(passing.sum())
        keep = first_per_hard_event(passing, batch.hard)
        passed += int(keep.sum())
        keep &= np.cumsum(keep) <= task.events - accepted
        timings["filter"] += time.perf_counter() - started

        if keep.any():
            pending.append((particles[keep], hadrons[keep]))
        generated += batch.hard_events
        decayed += batch.decayed
        accepted += int(keep.sum())
        waiting += int(keep.sum())
        if waiting >= DETECTOR_BATCH or accepted >= task.events:
            started = time.perf_counter()
            pieces.append(
                reconstruct(
                    ak.concatenate([p for p, _ in pending]),
                    ak.concatenate([h for _, h in pending]),
                    rng,
                )
            )
            pending, waiting = [], 0
            timings["detector"] += time.perf_counter() - started
        if on_events:
            on_events(int(keep.sum()))

    started = time.perf_counter()
    collections = {name: ak.concatenate([p[name] for p in pieces]) for name in pieces[0]}
    write_delphes(task.path, collections)
    timings["write"] += time.perf_counter() - started
    return TaskResult(
        task.path,
        accepted,
        generated,
        passed,
        source.timings["generate"] + source.timings["redecay"],
        timings["filter"] + source.timings["assemble"],
        timings["detector"],
        timings["write"],
        redecays=task.redecays,
        decayed=decayed,
        decays_passed=decays_passed,
        redecay_s=source.timings["redecay"],
    )


def _generate_in_pool(task: Task, queue) -> TaskResult:
    return generate(task, on_events=queue.put if queue is not None else None)


def generate_locally(
    tasks: list[Task], workers: int, on_events: Callable[[int], None]
) -> list[TaskResult]:
    """Run tasks in a process pool; `on_events` hears of accepted events as they come."""
    import multiprocessing

    manager = multiprocessing.Manager()
    queue = manager.Queue()
    results: list[TaskResult] = []
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(_generate_in_pool, task, queue) for task in tasks]
        pending = set(futures)
        while pending:
            while not queue.empty():
                on_events(queue.get())
            done = {f for f in pending if f.done()}
            results.extend(f.result() for f in done)
            pending -= done
            time.sleep(0.2)
        while not queue.empty():
            on_events(queue.get())
    manager.shutdown()
    return sorted(results, key=lambda r: r.path)


def generate_on_spark(spark, tasks: list[Task]) -> list[TaskResult]:
    """One Spark task per file; the output directory must be shared by the executors."""
    found = (
        spark.sparkContext.parallelize(tasks, len(tasks))
        .map(lambda task: asdict(generate(task)))
        .collect()
    )
    return sorted((TaskResult(**r) for r in found), key=lambda r: r.path)


def default_workers() -> int:
    return len(os.sched_getaffinity(0))
