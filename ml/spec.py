"""What every training engine shares: the spec of a training run, its result, its error.

The TensorFlow engine (`tf_engine`) and BigDL's (`bigdl_engine`) both take a `TrainSpec` and
return a `TrainResult`; neither imports the other.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ml.models import Architecture
from topolake.core.errors import TopolakeError
from topolake.core.vocabulary import MODEL_INPUTS

if TYPE_CHECKING:  # the CLI reads DEFAULT_PATIENCE at start-up: no NumPy for that
    import numpy as np

#: The inputs each model reads, in the order it takes them.
INPUTS = MODEL_INPUTS
#: Epochs without a lower validation loss before training stops (`--patience`).
DEFAULT_PATIENCE = 3


@dataclass(frozen=True)
class TrainSpec:
    """What to train. `epochs` is a maximum: training stops once the validation loss (on the
    validation fifth of the training split, `ml.data.PARTS`) has not fallen for `patience`
    epochs, and keeps the weights of the epoch where it was lowest."""

    model: str
    epochs: int = 5
    batch_size: int = 128
    max_particles: int = 801
    learning_rate: float = 1e-3
    seed: int = 0
    architecture: Architecture = field(default_factory=Architecture)
    patience: int = DEFAULT_PATIENCE
    #: The share of the fitted part (the training split less its validation fifth) to fit
    #: on, for learning curves: the same events on every run, a smaller share a subset of a
    #: larger one (`ml.data.part_rows`); the validation fifth is whole whatever it is.
    fraction: float = 1.0

    @classmethod
    def from_dict(cls, values: dict) -> TrainSpec:
        """The inverse of dataclasses.asdict (as saved with a model). JSON gives the
        architecture's width tuples back as lists: they become tuples again, or the spec would
        differ from the one saved and no longer hash (the dataclasses are frozen)."""
        arch = {
            key: tuple(value) if isinstance(value, list) else value
            for key, value in values.get("architecture", {}).items()
        }
        return cls(**{**values, "architecture": Architecture(**arch)})


@dataclass
class TrainResult:
    weights: list[np.ndarray]
    history: dict[str, list[float]]  # metric -> one value per epoch
    replicas: int
    identical_weights: bool
    seconds: float
    samples_per_second: float

    @property
    def epochs_run(self) -> int:
        return len(self.history.get("loss", []))

    @property
    def best_epoch(self) -> int:
        """The epoch (from 1) whose weights the run kept: see `best_epoch`."""
        return best_epoch(self.history)


def best_epoch(history: dict[str, list[float]]) -> int:
    """The first epoch (from 1) with the lowest validation loss: the one whose weights an
    early-stopped run restores (Keras's EarlyStopping counts only a strictly lower loss as
    an improvement, so a tie keeps the earlier epoch). 0 if no epoch has a finite one."""
    losses = history.get("val_loss", [])
    finite = [(loss, epoch) for epoch, loss in enumerate(losses, 1) if math.isfinite(loss)]
    return min(finite)[1] if finite else 0


class Patience:
    """Early stopping for an engine without Keras's callback (BigDL): the same rule as
    `EarlyStopping(monitor="val_loss", patience=p, restore_best_weights=True)`."""

    def __init__(self, patience: int):
        self.patience, self.best, self.waited = patience, math.inf, 0

    def improved(self, val_loss: float) -> bool:
        """Record an epoch's validation loss; whether it is the lowest so far."""
        if val_loss < self.best:
            self.best, self.waited = val_loss, 0
            return True
        self.waited += 1
        return False

    @property
    def exhausted(self) -> bool:
        """`patience` epochs in a row without a lower validation loss: stop."""
        return self.waited > 0 and self.waited >= self.patience


class EngineError(TopolakeError):
    """Training could not run as asked; the message says why."""


class TooManyWorkers(EngineError):
    """More workers were asked for than the Spark master has task slots: a setting to change."""

    exit_code = 2
