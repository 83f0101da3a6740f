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

    Usage: `x = add_norm(x, sublayer=lambda h: attention(h, h, mask), training=training)`: the sublayer is a
    function so pre-norm can normalize its input and post-norm its output.
    """

    def __init__(self, norm_first=False, dropout=0.0, epsilon=1e-6, **kwargs):
        super().__init__(**kwargs)
        self.norm_first = norm_first
        self.dropout_rate = dropout
        self.epsilon = epsilon
        self.norm = LayerNormalization(epsilon, name="norm")
        self.dropout = keras.layers.Dropout(dropout)

    def build(self, input_shape):
        self.norm.build(input_shape)

    def call(self, x, sublayer, training=None):
        if self.norm_first:
            return x + self.dropout(sublayer(self.norm(x)), training=training)
        return self.norm(x + self.dropout(sublayer(x), training=training))

    def get_config(self):
        return {**super().get_config(), "norm_first": self.norm_first, "dropout": self.dropout_rate,
                "epsilon": self.epsilon}
