"""The reference architectures (PHYSICS.md), sizes configurable, with the Keras 2 API."""

from __future__ import annotations

from dataclasses import dataclass

from topolake.core.vocabulary import CLASSES, HLF_FEATURES, MODELS, PARTICLE_FEATURES

N_HLF = len(HLF_FEATURES)
N_PARTICLE_FEATURES = len(PARTICLE_FEATURES)
N_CLASSES = len(CLASSES)


@dataclass(frozen=True)
class Architecture:
    hidden: tuple[int, ...] = (50, 20, 10)  # the HLF classifier's Dense layers
    gru_units: int = 50
    dropout: float = 0.2
    inclusive_dense: int = 25
    # False for engines whose recurrent layers cannot skip padding (BigDL): the sequences
    # are then padded in front, and the model has no Masking layer.
    masked: bool = True

    @property
    def padding(self) -> str:
        return "post" if self.masked else "pre"


def build_model(name: str, max_particles: int, arch: Architecture = Architecture(), seed: int = 0):
    """An uncompiled Keras model: 'hlf', 'particles' or 'inclusive'."""
    import tf_keras as keras

    keras.utils.set_random_seed(seed)
    layers = keras.layers
    outputs_layer = layers.Dense(N_CLASSES, activation="softmax", name="classes")
    if name == "hlf":
        hlf = keras.Input((N_HLF,), name="hlf")
        x = hlf
        for i, width in enumerate(arch.hidden):
            x = layers.Dense(width, activation="relu", name=f"dense_{i}")(x)
        return keras.Model(hlf, outputs_layer(x), name="hlf_classifier")
    particles = keras.Input((max_particles, N_PARTICLE_FEATURES), name="particles")
    sequence = (
        layers.Masking(mask_value=0.0, name="padding")(particles) if arch.masked else particles
    )
    # the reference's GRU cell (Keras 2.2): hard-sigmoid gates, reset gate before the matmul
    gru = layers.GRU(
        arch.gru_units, recurrent_activation="hard_sigmoid", reset_after=False, name="gru"
    )(sequence)
    if name == "particles":
        x = layers.Dropout(arch.dropout, name="dropout")(gru)
        return keras.Model(particles, outputs_layer(x), name="particle_sequence_classifier")
    if name == "inclusive":
        hlf = keras.Input((N_HLF,), name="hlf")
        branch = layers.Dropout(arch.dropout, name="dropout")(gru)
        x = layers.Concatenate(name="gru_and_hlf")([branch, hlf])
        x = layers.Dense(arch.inclusive_dense, activation="relu", name="dense")(x)
        return keras.Model([particles, hlf], outputs_layer(x), name="inclusive_classifier")
    raise ValueError(f"unknown model {name!r}: choose one of {', '.join(MODELS)}.")


def compile_model(model, learning_rate: float = 1e-3):
    import tf_keras as keras

    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model
