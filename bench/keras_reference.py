"""The reference for the training benchmark: the same Transformer built from Keras' own layers.

`keras.layers.MultiHeadAttention`, `keras.layers.LayerNormalization`, `Dense`, `Dropout` and
`Embedding`, wired like `keras_transformer.build_transformer`: post-norm Add & Norm, dropout on
the embeddings, the attention weights, the sublayer outputs and inside the FFN; token embeddings
· √d_model + sinusoidal encodings; the output layer tied to the target embedding (plus a bias).
Same inputs and outputs, so the same loss, optimizer and batches apply; the parameter count
matches exactly (checked by the benchmark).
"""

from __future__ import annotations

import keras
from keras import ops

from keras_transformer.config import TransformerConfig
from keras_transformer.positional_encoding import sinusoidal_positional_encoding
from keras_transformer.serve.bundle_format import PAD_ID


class TiedEmbedding(keras.layers.Layer):
    """`call(ids)`: `keras.layers.Embedding` · √d_model + PE[:T]; `call(x, reverse=True)`: x Eᵀ + b (logits)."""

    def __init__(self, vocab_size, hidden_dim, max_length, output_bias=False, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size, self.hidden_dim, self.output_bias = vocab_size, hidden_dim, output_bias
        self.embedding = keras.layers.Embedding(
            vocab_size, hidden_dim, embeddings_initializer=keras.initializers.RandomNormal(stddev=hidden_dim**-0.5))
        self.positional_encoding = sinusoidal_positional_encoding(max_length, hidden_dim)  # (L, D)

    def build(self, input_shape=None):
        self.embedding.build(input_shape)
        if self.output_bias:  # only the target side is used as the output layer
            self.bias = self.add_weight(shape=(self.vocab_size,), initializer="zeros", name="output_bias")

    def call(self, inputs, reverse=False):
        if reverse:
            return ops.matmul(inputs, ops.transpose(self.embedding.embeddings)) + self.bias  # (B, T, V)
        length = ops.shape(inputs)[1]
        encoding = ops.convert_to_tensor(self.positional_encoding)[:length]  # (T, D)
        return self.embedding(inputs) * ops.sqrt(float(self.hidden_dim)) + encoding[None]


class AttentionMasks(keras.layers.Layer):
    """(source ids (B, S), target ids (B, T)) -> Keras-style masks, True = may attend:
    encoder (B, S, S), decoder self-attention (B, T, T, causal), cross-attention (B, T, S)."""

    def call(self, source_ids, target_ids):
        source_ok = ops.not_equal(source_ids, PAD_ID)  # (B, S)
        target_ok = ops.not_equal(target_ids, PAD_ID)  # (B, T)
        t = ops.shape(target_ids)[1]
        causal = ops.arange(t)[None, :] <= ops.arange(t)[:, None]  # (T, T)
        ones_s = ops.ones_like(source_ok)[:, :, None]  # (B, S, 1)
        ones_t = ops.ones_like(target_ok)[:, :, None]  # (B, T, 1)
        encoder = ops.logical_and(ops.cast(ones_s, "bool"), source_ok[:, None, :])  # (B, S, S)
        decoder = ops.logical_and(causal[None], target_ok[:, None, :])  # (B, T, T)
        cross = ops.logical_and(ops.cast(ones_t, "bool"), source_ok[:, None, :])  # (B, T, S)
        return encoder, decoder, cross


def _add_norm(x, sublayer_output, c: TransformerConfig, name):
    """Post-norm: LayerNorm(x + Dropout(sublayer(x)))."""
    y = keras.layers.Dropout(c.dropout, name=f"{name}_dropout")(sublayer_output)
    return keras.layers.LayerNormalization(epsilon=c.layer_norm_epsilon, name=f"{name}_norm")(x + y)


def _feed_forward(x, c: TransformerConfig, name):
    h = keras.layers.Dense(c.intermediate_dim, activation=c.activation, name=f"{name}_expand")(x)
    h = keras.layers.Dropout(c.dropout, name=f"{name}_inner_dropout")(h)
    return keras.layers.Dense(c.hidden_dim, name=f"{name}_contract")(h)


def _attention(c: TransformerConfig, name):
    return keras.layers.MultiHeadAttention(c.num_heads, c.head_dim, dropout=c.dropout, name=name)


def build_keras_reference(config: TransformerConfig) -> keras.Model:
    """{"source_ids" (B, S), "target_ids" (B, T)} -> logits (B, T, V), from Keras' own layers."""
    c = config
    source_ids = keras.Input(shape=(None,), dtype="int32", name="source_ids")
    target_ids = keras.Input(shape=(None,), dtype="int32", name="target_ids")
    encoder_mask, self_mask, cross_mask = AttentionMasks(name="masks")(source_ids, target_ids)

    x = TiedEmbedding(c.source_vocab_size, c.hidden_dim, c.max_source_length, name="source_embedding")(source_ids)
    x = keras.layers.Dropout(c.dropout)(x)  # (B, S, D)
    for i in range(c.num_layers):
        x = _add_norm(x, _attention(c, f"encoder_{i}_attention")(x, x, attention_mask=encoder_mask), c,
                      f"encoder_{i}_attention")
        x = _add_norm(x, _feed_forward(x, c, f"encoder_{i}_ffn"), c, f"encoder_{i}_ffn")
    encoder_output = x

    target_embedding = TiedEmbedding(c.target_vocab_size, c.hidden_dim, c.max_target_length, output_bias=True,
                                     name="target_embedding")
    y = keras.layers.Dropout(c.dropout)(target_embedding(target_ids))  # (B, T, D)
    for i in range(c.num_layers):
        y = _add_norm(y, _attention(c, f"decoder_{i}_self")(y, y, attention_mask=self_mask), c, f"decoder_{i}_self")
        y = _add_norm(y, _attention(c, f"decoder_{i}_cross")(y, encoder_output, attention_mask=cross_mask), c,
                      f"decoder_{i}_cross")
        y = _add_norm(y, _feed_forward(y, c, f"decoder_{i}_ffn"), c, f"decoder_{i}_ffn")
    logits = target_embedding(y, reverse=True)  # (B, T, V)
    return keras.Model({"source_ids": source_ids, "target_ids": target_ids}, logits, name="keras_reference")
