"""Residual connection with layer normalization: the paper's "Add & Norm" (§3.1, §5.4).

Post-norm (the paper): x = LayerNorm(x + Dropout(Sublayer(x))).
Pre-norm (option):     x = x + Dropout(Sublayer(LayerNorm(x))); the stack then ends with a LayerNorm.
The residual path lets gradients flow straight through deep stacks; the norm keeps activations in
a stable range.
"""

import keras

from keras_transformer.layer_norm import LayerNormalization


@keras.saving.register_keras_serializable(package="keras_transformer")
class AddAndNorm(keras.layers.Layer):
    """Wraps one sublayer's output into the residual stream. Shapes (B, T, D) in and out.

    Usage, for any sublayer f:

        h = add_norm.sublayer_input(x)                   # pre-norm: LayerNorm(x); post-norm: x
        x = add_norm(x, f(h), training=training)         # pre-norm: x + Dropout(f(h));
                                                         # post-norm: LayerNorm(x + Dropout(f(h)))
    """

    def __init__(self, norm_first=False, dropout=0.0, epsilon=1e-6, **kwargs):
        super().__init__(**kwargs)
        self.norm_first = norm_first
        self.dropout_rate = dropout
        self.epsilon = epsilon
        self.norm = LayerNormalization(epsilon, name="norm")
        self.dropout = keras.layers.Dropout(dropout)

    def build(self, input_shape, sublayer_output_shape=None):
        self.norm.build(input_shape)

    def sublayer_input(self, x):
        """What the sublayer reads: the normalized stream (pre-norm) or the stream itself (post-norm)."""
        return self.norm(x) if self.norm_first else x

    def call(self, x, sublayer_output, training=None):
        """x: the residual stream (B, T, D); sublayer_output: f(sublayer_input(x)) (B, T, D)."""
        x = x + self.dropout(sublayer_output, training=training)
        return x if self.norm_first else self.norm(x)

    def get_config(self):
        return {**super().get_config(), "norm_first": self.norm_first, "dropout": self.dropout_rate,
                "epsilon": self.epsilon}
