"""What every training engine shares: the spec of a training run, its result, its error.

The TensorFlow engine (`tf_engine`) and BigDL's (`bigdl_engine`) both take a `TrainSpec` and
return a `TrainResult`; neither imports the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ml.models import Architecture
from topolake.core.errors import TopolakeError
from topolake.core.vocabulary import MODEL_INPUTS

#: The inputs each model reads, in the order it takes them.
INPUTS = MODEL_INPUTS


@dataclass(frozen=True)
class TrainSpec:
    model: str
    epochs: int = 5
    batch_size: int = 128
    max_particles: int = 801
    learning_rate: float = 1e-3
    seed: int = 0
    architecture: Architecture = field(default_factory=Architecture)

    @classmethod
    def from_dict(cls, values: dict) -> TrainSpec:
        """The inverse of dataclasses.asdict (as saved with a model)."""
        arch = dict(values.get("architecture", {}))
        if "hidden" in arch:
            arch["hidden"] = tuple(arch["hidden"])
        return cls(**{**values, "architecture": Architecture(**arch)})


@dataclass
class TrainResult:
    weights: list[np.ndarray]
    history: dict[str, list[float]]  # metric -> one value per epoch
    replicas: int
    identical_weights: bool
    seconds: float
    samples_per_second: float


class EngineError(TopolakeError):
    """Training could not run as asked; the message says why."""


class TooManyWorkers(EngineError):
    """More workers were asked for than the Spark master has task slots: a setting to change."""

    exit_code = 2
