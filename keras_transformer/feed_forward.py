"""Position-wise feed-forward network (paper §3.3): FFN(x) = max(0, x W1 + b1) W2 + b2."""

import keras


@keras.saving.register_keras_serializable(package="keras_transformer")
class PositionwiseFeedForward(keras.layers.Layer):
    """(B, T, D) -> linear to d_ff, ReLU (or GELU), dropout, linear back to d_model -> (B, T, D).

    The same two linear maps apply to every position independently.
    """

    def __init__(self, hidden_dim, intermediate_dim, activation="relu", dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        self.hidden_dim = hidden_dim
        self.intermediate_dim = intermediate_dim
        self.activation = activation
        self.dropout_rate = dropout
        self.expand = keras.layers.Dense(intermediate_dim, activation=activation, name="expand")
        self.dropout = keras.layers.Dropout(dropout)
        self.contract = keras.layers.Dense(hidden_dim, name="contract")

    def build(self, input_shape):
        self.expand.build(input_shape)
        self.contract.build(tuple(input_shape[:-1]) + (self.intermediate_dim,))

    def call(self, x, training=None):
        return self.contract(self.dropout(self.expand(x), training=training))

    def get_config(self):
        return {**super().get_config(), "hidden_dim": self.hidden_dim, "intermediate_dim": self.intermediate_dim,
                "activation": self.activation, "dropout": self.dropout_rate}
