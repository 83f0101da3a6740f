"""Layer normalization with learnable γ (scale) and β (offset) over the last axis (Ba et al., 2016)."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_transformer")
class LayerNormalization(keras.layers.Layer):
    """y = γ · (x - mean(x)) / sqrt(var(x) + ε) + β, statistics over the last axis of (..., D).

    Each position is normalized on its own, so padding never leaks into real positions.
    """

    def __init__(self, epsilon=1e-6, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = epsilon

    def build(self, input_shape):
        dim = input_shape[-1]
        self.gamma = self.add_weight(shape=(dim,), initializer="ones", name="gamma")
        self.beta = self.add_weight(shape=(dim,), initializer="zeros", name="beta")

    def call(self, x):
        mean = ops.mean(x, axis=-1, keepdims=True)  # (..., 1)
        variance = ops.mean(ops.square(x - mean), axis=-1, keepdims=True)  # (..., 1)
        return (x - mean) * ops.rsqrt(variance + self.epsilon) * self.gamma + self.beta

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}
