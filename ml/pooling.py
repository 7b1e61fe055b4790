"""The particle flow network's pooling: a sum over the real particles of an event.

tf-keras has masked mean pooling (GlobalAveragePooling1D) but no masked sum, and a mean
forgets how many particles were summed, which the PFN's sum keeps (Komiske, Metodiev, Thaler
2019). Its own module, as it loads TensorFlow: `ml.models.build_model` imports it to build a
pfn, and `ml.tracking.load_model` to reload one, as Keras finds a custom layer of a saved
model only among the registered ones (it does not import the module the model names).
"""

from __future__ import annotations

import tensorflow as tf
import tf_keras as keras


@keras.saving.register_keras_serializable(package="topolake")
class ParticleSum(keras.layers.Layer):
    """(events, particles, features) -> (events, features): the sum over the particles the
    mask marks as real (the Masking layer's, carried through the per-particle Dense layers).
    Padding rows contribute nothing, whatever the per-particle network makes of them, so the
    output depends neither on the order of the particles nor on how far an event is padded."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, inputs: tf.Tensor, mask: tf.Tensor | None = None) -> tf.Tensor:
        if mask is None:  # the padding rows would be summed with the particles
            raise ValueError("ParticleSum needs a mask: put a Masking layer before it.")
        return tf.reduce_sum(inputs * tf.cast(mask, inputs.dtype)[..., tf.newaxis], axis=1)

    def compute_mask(self, inputs: tf.Tensor, mask: tf.Tensor | None = None) -> None:
        return None  # one vector per event: nothing left to mask
