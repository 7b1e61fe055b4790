"""The reference architectures (PHYSICS.md) and a particle flow network, sizes configurable,
with the Keras 2 API."""

from __future__ import annotations

from dataclasses import dataclass

from topolake.core.vocabulary import CLASSES, HLF_FEATURES, MODEL_INPUTS, PARTICLE_FEATURES

N_HLF = len(HLF_FEATURES)
N_PARTICLE_FEATURES = len(PARTICLE_FEATURES)
N_CLASSES = len(CLASSES)


@dataclass(frozen=True)
class Architecture:
    hidden: tuple[int, ...] = (50, 20, 10)  # the HLF classifier's Dense layers
    gru_units: int = 50
    dropout: float = 0.2
    inclusive_dense: int = 25
    # the particle flow network ("pfn"): the per-particle network Φ's Dense widths, then,
    # after the sum over the particles and the HLF beside it, the head F's. Φ runs on every
    # (padded) particle and dominates an epoch: 32 wide, an epoch costs half what 64 does, at
    # the same accuracy on 3 x 2,000 simulated events (README)
    pfn_phi: tuple[int, ...] = (32, 32, 32)
    pfn_f: tuple[int, ...] = (64, 64)
    # False for engines whose recurrent layers cannot skip padding (BigDL): the sequences
    # are then padded in front, and the model has no Masking layer.
    masked: bool = True

    @property
    def padding(self) -> str:
        return "post" if self.masked else "pre"


def build_model(name: str, max_particles: int, arch: Architecture = Architecture(), seed: int = 0):
    """An uncompiled Keras model: 'hlf', 'particles', 'inclusive' or 'pfn'."""
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
    # masked models take any number of particles: each batch is padded to its own longest
    # sequence (ml.data); unmasked ones (BigDL) a fixed, front-padded `max_particles`
    timesteps = None if arch.masked else max_particles
    particles = keras.Input((timesteps, N_PARTICLE_FEATURES), name="particles")
    sequence = (
        layers.Masking(mask_value=0.0, name="padding")(particles) if arch.masked else particles
    )
    if name == "pfn":
        return _particle_flow_network(particles, sequence, arch, outputs_layer)
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
    raise ValueError(f"unknown model {name!r}: choose one of {', '.join(MODEL_INPUTS)}.")


def _particle_flow_network(particles, sequence, arch: Architecture, outputs_layer):
    """The PFN (Komiske, Metodiev, Thaler 2019, "Energy Flow Networks: Deep Sets for Particle
    Jets"): F(sum over the particles of Φ(particle), HLF). A sum does not depend on the order
    of the particles, unlike the GRUs, which read them ΔR-ordered one after another; and Φ
    sees each particle once, in parallel, so an epoch costs a fraction of a GRU's."""
    import tf_keras as keras

    from ml.pooling import ParticleSum

    if not arch.masked:  # unmasked, the padding rows would be summed with the particles
        raise ValueError("the pfn model needs masked sequences (Architecture(masked=True)).")
    layers = keras.layers
    x = sequence  # Dense layers carry the Masking layer's mask on to the sum
    for i, width in enumerate(arch.pfn_phi):
        x = layers.Dense(width, activation="relu", name=f"phi_{i}")(x)
    x = ParticleSum(name="particle_sum")(x)
    hlf = keras.Input((N_HLF,), name="hlf")
    x = layers.Concatenate(name="sum_and_hlf")([x, hlf])
    for i, width in enumerate(arch.pfn_f):
        x = layers.Dense(width, activation="relu", name=f"f_{i}")(x)
    return keras.Model([particles, hlf], outputs_layer(x), name="particle_flow_network")


def compile_model(model, learning_rate: float = 1e-3):
    import tf_keras as keras

    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model
