"""Scaled dot-product attention and multi-head attention (paper §3.2), with a key/value cache path.

Shapes: B batch, H heads (h), T query length, S key length, D hidden dim (d_model), Dh = D / H (d_k).
"""

import math

import keras
from keras import ops

NEG_INF = -1e9  # added to masked scores; exp() of it is 0 in float32


def scaled_dot_product_attention(query, key, value, mask=None, dropout=None, training=None):
    """softmax(Q Kᵀ / √d_k + mask) V.

    Args:
        query: (B, H, T, Dh). key, value: (B, H, S, Dh).
        mask: bool, broadcastable to (B, H, T, S); True = may attend. None = attend everywhere.
        dropout: optional `keras.layers.Dropout` applied to the attention weights.
    Returns:
        output (B, H, T, Dh) and weights (B, H, T, S), each row of weights summing to 1.
    """
    scale = 1.0 / math.sqrt(query.shape[-1])
    scores = ops.matmul(query, ops.transpose(key, (0, 1, 3, 2))) * scale  # (B, H, T, S)
    if mask is not None:
        scores = ops.where(mask, scores, NEG_INF)
    weights = ops.softmax(scores, axis=-1)  # (B, H, T, S)
    attended = weights if dropout is None else dropout(weights, training=training)
    return ops.matmul(attended, value), weights  # (B, H, T, Dh)


@keras.saving.register_keras_serializable(package="keras_transformer")
class MultiHeadAttention(keras.layers.Layer):
    """MultiHead(Q, K, V) = Concat(head_1..head_h) W^O, head_i = Attention(Q W_i^Q, K W_i^K, V W_i^V).

    `call(query, key_value, mask)` is the full path. For decoding, `project_key_value` computes the
    (B, H, S, Dh) keys and values once (cross-attention: once per sentence; self-attention: once per
    new token, appended to the cache by the caller) and `attend` runs the rest.

    Args:
        hidden_dim: d_model. num_heads: h. dropout: rate on the attention weights.

    Example:
        >>> mha = MultiHeadAttention(hidden_dim=16, num_heads=2)
        >>> y = mha(x, x, mask=masks.padding_mask(ids))  # x: (B, T, 16) -> y: (B, T, 16)
    """

    def __init__(self, hidden_dim, num_heads, dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        if hidden_dim % num_heads:
            raise ValueError(f"expected hidden_dim divisible by num_heads, got {hidden_dim} and {num_heads}")
        self.hidden_dim = hidden_dim
        self.num_heads = num_heads
        self.head_dim = hidden_dim // num_heads
        self.dropout_rate = dropout
        self.query_dense = keras.layers.Dense(hidden_dim, name="query")
        self.key_dense = keras.layers.Dense(hidden_dim, name="key")
        self.value_dense = keras.layers.Dense(hidden_dim, name="value")
        self.output_dense = keras.layers.Dense(hidden_dim, name="output")
        self.dropout = keras.layers.Dropout(dropout)

    def build(self, query_shape, key_value_shape=None):
        key_value_shape = query_shape if key_value_shape is None else key_value_shape
        self.query_dense.build(query_shape)
        self.key_dense.build(key_value_shape)
        self.value_dense.build(key_value_shape)
        self.output_dense.build(tuple(query_shape[:-1]) + (self.hidden_dim,))

    def split_heads(self, x, length):
        """(B, T, D) -> (B, H, T, Dh).

        `length` (T) is read from the layer's input, not from `x`: tf2onnx folds the shape of a
        Dense output to that of its flattened (B*T, D) matmul, which breaks a reshape by `shape(x)`.
        """
        x = ops.reshape(x, (-1, length, self.num_heads, self.head_dim))  # (B, T, H, Dh)
        return ops.transpose(x, (0, 2, 1, 3))

    def merge_heads(self, x):
        """(B, H, T, Dh) -> (B, T, D): the concatenation of the heads."""
        x = ops.transpose(x, (0, 2, 1, 3))  # (B, T, H, Dh)
        return ops.reshape(x, (ops.shape(x)[0], ops.shape(x)[1], self.hidden_dim))

    def project_key_value(self, key_value):
        """(B, S, D) -> keys (B, H, S, Dh), values (B, H, S, Dh)."""
        length = ops.shape(key_value)[1]
        return (self.split_heads(self.key_dense(key_value), length),
                self.split_heads(self.value_dense(key_value), length))

    def attend(self, query, key, value, mask=None, training=None):
        """query (B, T, D), key/value (B, H, S, Dh) already projected -> output (B, T, D), weights (B, H, T, S)."""
        heads, weights = scaled_dot_product_attention(
            self.split_heads(self.query_dense(query), ops.shape(query)[1]), key, value, mask, self.dropout, training)
        return self.output_dense(self.merge_heads(heads)), weights

    def call(self, query, key_value, mask=None, return_attention_weights=False, training=None):
        """query (B, T, D), key_value (B, S, D), mask bool broadcastable to (B, H, T, S) -> (B, T, D)."""
        output, weights = self.attend(query, *self.project_key_value(key_value), mask, training)
        return (output, weights) if return_attention_weights else output

    def get_config(self):
        return {**super().get_config(), "hidden_dim": self.hidden_dim, "num_heads": self.num_heads,
                "dropout": self.dropout_rate}
