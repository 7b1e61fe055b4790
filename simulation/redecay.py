"""Re-decays: each hard event is generated once and its b and c hadrons decayed K times.

Whether a QCD event passes the lepton filter is decided by the decays of its b and c hadrons
(forced semileptonic): about 1 decay in 35 gives an isolated lepton. The hard process, showers,
MPI, hadronisation and the other decays are the expensive part and do not depend on those
decays; so they are shared by K copies of the event, and only the weakly decaying b and c
hadrons (and what they decay to) are decayed afresh in each copy.

How, with pythia8mc 8.317, which exports awkward arrays only through `nextBatch` (from the
record each `next()` leaves) and gives per-particle access only through Python objects:

1. The generator is the sample's Pythia with the hadrons of `HEAVY_FLAVOUR_HADRONS` set
   `mayDecay = off`: `next()` runs everything, all other decays included, and leaves those
   hadrons undecayed. A batch of such hard events is appended (`Event::operator+=`, in C++)
   to the record of a passive Pythia (hadron level off), which `nextBatch(1)` exports as one
   awkward event; awkward cuts it back into hard events and finds the undecayed hadrons.
2. A second Pythia runs the hadron level only (`ProcessLevel:all = off`,
   `PartonLevel:all = off`, the sample's decay settings). For each copy its record is reset
   and given a copy of those few hadrons (`Event::append`), and `next()` decays them: the same
   hadron-level code as in a full event, so decay products that are partons are hadronised
   too. The decayed hadrons and their products are appended to the passive record, exported
   once for the batch.
3. Each copy is its hard event without the undecayed hadrons, followed by its own decays
   (awkward gathering and concatenation). Only copies with a lepton candidate are built.

Python loops over hard events, their few b/c hadrons and their copies (a handful of C++ calls
per copy), never over the particles of an event. Each copy is a correct event on its own:
decays are independent of each other and of what happened before them (no Bose-Einstein or
rescattering effects are on). Copies of one hard event are correlated (same jets, underlying
event, b-hadron momenta and decay vertices); `first_per_hard_event` keeps at most one.
"""

from __future__ import annotations

import time

import awkward as ak
import numpy as np
import pythia8mc

from simulation.generator import (
    HEAVY_FLAVOUR_HADRONS,
    PROCESSES,
    Batch,
    LeptonFilter,
    configured_pythia,
    has_lepton_candidate,
    make_pythia,
)

#: Copies of each hard event per sample by default; 1 is the plain method.
DEFAULT_REDECAYS: dict[str, int] = {"qcd": 10}

#: A Pythia that works on an event record filled from outside: hadron level only. The vertex
#: spread was applied by the generator, to the hadrons' production vertices too.
HADRON_LEVEL_ONLY = [
    "ProcessLevel:all = off",
    "PartonLevel:all = off",
    "Beams:allowVertexSpread = off",
    "Print:quiet = on",
    "Random:setSeed = on",
]


def decayer_seed(seed: int) -> int:
    """The decaying Pythia's seed, derived from the generator's, in Pythia's range [1, 9e8]."""
    state = np.random.SeedSequence(seed, spawn_key=(1,)).generate_state(1)
    return int(state[0] % 900_000_000) + 1


class RedecayedEvents:
    """Events from hard events generated once and decayed `copies` times each."""

    def __init__(self, sample: str, seed: int, cut: LeptonFilter, copies: int):
        if copies < 1:
            raise ValueError(f"copies must be at least 1, not {copies}")
        self.copies = copies
        self.cut = cut
        undecayed = [f"{h}:mayDecay = off" for h in HEAVY_FLAVOUR_HADRONS]
        self.pythia = make_pythia(sample, seed, undecayed)  # the hard events
        self.decayer = configured_pythia(
            [*HADRON_LEVEL_ONLY, f"Random:seed = {decayer_seed(seed)}", *PROCESSES[sample]],
            f"{sample} decays",
        )
        # does nothing but hold the record nextBatch exports; its copies' hadrons have no
        # mothers there, which Check:event would take for a broken history
        self.exporter = configured_pythia(
            [*HADRON_LEVEL_ONLY, "HadronLevel:all = off", "Check:event = off"],
            "the export of re-decayed events",
        )
        self._heavy = np.asarray(HEAVY_FLAVOUR_HADRONS)
        self.timings = dict.fromkeys(("generate", "redecay", "assemble"), 0.0)
        #: copies dropped because their decays failed (Pythia's next() returned False)
        self.failed_copies = 0

    def decay_copies(self, hadrons: list[pythia8mc.Particle], record: pythia8mc.Event) -> list[int]:
        """Decay `hadrons` (one hard event's undecayed b/c hadrons) `copies` times; append each
        copy (the hadrons, decayed, and everything they decayed to) to `record`; their sizes."""
        if not hadrons:  # nothing to re-decay: the hard event is its only copy
            return [0]
        scratch = self.decayer.event
        sizes = []
        for _ in range(self.copies):
            scratch.reset()
            for hadron in hadrons:
                scratch.append(hadron)
            if not self.decayer.next():
                self.failed_copies += 1
                continue
            record += scratch
            sizes.append(scratch.size() - 1)
        return sizes

    def next_batch(self, size: int) -> Batch:
        """About `size` events: `size // copies` hard events (at least one), `copies` each."""
        hard_events = max(1, size // self.copies)
        started = time.perf_counter()
        saved = []
        record = self.exporter.event
        record.reset()
        failures = 0
        while len(saved) < hard_events:
            if not self.pythia.next():  # skipped, as nextBatch skips failed events
                failures += 1
                if failures > 10 * hard_events:
                    raise RuntimeError("Pythia failed to generate most of the hard events")
                continue
            saved.append(pythia8mc.Event(self.pythia.event))
            record += self.pythia.event
        self.timings["generate"] += time.perf_counter() - started

        started = time.perf_counter()
        shared = self._export([event.size() - 1 for event in saved])
        undecayed = self._undecayed(shared)
        # record positions (entry 0 is the system line, dropped from `shared`) of those hadrons
        positions = ak.to_list(ak.local_index(shared, axis=1)[undecayed] + 1)
        record.reset()
        sizes: list[int] = []
        copy_hard: list[int] = []
        for hard, (event, where) in enumerate(zip(saved, positions, strict=True)):
            hadrons = [event[i] for i in where]
            for hadron in hadrons:
                hadron.mothers(0, 0)  # alone in the decayer's record
            made = self.decay_copies(hadrons, record)
            sizes += made
            copy_hard += [hard] * len(made)
        tails = self._export(sizes)
        self.timings["redecay"] += time.perf_counter() - started

        started = time.perf_counter()
        batch = assemble(shared[~undecayed], tails, np.asarray(copy_hard, np.int64), self.cut)
        self.timings["assemble"] += time.perf_counter() - started
        return batch

    def _export(self, sizes: list[int]) -> ak.Array:
        """The exporter's record as one awkward list per segment of `sizes` entries."""
        exported = self.exporter.nextBatch(1, "fail").prt[0]
        return ak.unflatten(exported[1:], sizes)  # entry 0 is the system line

    def _undecayed(self, records: ak.Array) -> ak.Array:
        flat_id = np.abs(ak.to_numpy(ak.flatten(records.id)))
        heavy = ak.unflatten(np.isin(flat_id, self._heavy), ak.num(records))
        return heavy & (records.status > 0)


def assemble(shared: ak.Array, tails: ak.Array, copy_hard: np.ndarray, cut: LeptonFilter) -> Batch:
    """The copies that have a lepton candidate, each its hard event's record then its decays.

    `shared[h]`: hard event h's record without its undecayed b/c hadrons; `tails[c]`: copy c's
    decayed hadrons and their products; `copy_hard[c]`: the hard event copy c was made from.
    """
    candidate = has_lepton_candidate(shared, cut)[copy_hard] | has_lepton_candidate(tails, cut)
    keep = np.flatnonzero(candidate)
    prt = ak.concatenate([shared[copy_hard[keep]], tails[keep]], axis=1)
    return Batch(ak.zip({"prt": prt}, depth_limit=1), copy_hard[keep], len(shared), len(tails))
