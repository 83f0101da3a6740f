"""The encoder (paper §3.1): N identical layers of self-attention and feed-forward, each wrapped in
Add & Norm, over scaled token embeddings plus positional encodings.

Shapes: B batch, S source length, D hidden dim (d_model), H heads.
"""

import keras

from keras_transformer import masks
from keras_transformer.attention import MultiHeadAttention
from keras_transformer.config import TransformerConfig
from keras_transformer.feed_forward import PositionwiseFeedForward
from keras_transformer.layer_norm import LayerNormalization
from keras_transformer.positional_encoding import PositionalEmbedding
from keras_transformer.residual import AddAndNorm


@keras.saving.register_keras_serializable(package="keras_transformer")
class EncoderLayer(keras.layers.Layer):
    """x (B, S, D), padding mask bool (B, 1, 1, S) -> (B, S, D).

    Every source token attends to every real source token, so its vector becomes context-aware.
    """

    def __init__(self, hidden_dim, num_heads, intermediate_dim, dropout=0.0, activation="relu",
                 norm_first=False, epsilon=1e-6, **kwargs):
        super().__init__(**kwargs)
        self._args = dict(hidden_dim=hidden_dim, num_heads=num_heads, intermediate_dim=intermediate_dim,
                          dropout=dropout, activation=activation, norm_first=norm_first, epsilon=epsilon)
        self.self_attention = MultiHeadAttention(hidden_dim, num_heads, dropout, name="self_attention")
        self.self_attention_norm = AddAndNorm(norm_first, dropout, epsilon, name="self_attention_norm")
        self.feed_forward = PositionwiseFeedForward(hidden_dim, intermediate_dim, activation, dropout,
                                                    name="feed_forward")
        self.feed_forward_norm = AddAndNorm(norm_first, dropout, epsilon, name="feed_forward_norm")

    def build(self, x_shape, padding_mask_shape=None):
        self.self_attention.build(x_shape, x_shape)
        self.self_attention_norm.build(x_shape)
        self.feed_forward.build(x_shape)
        self.feed_forward_norm.build(x_shape)

    def call(self, x, padding_mask, training=None, return_attention_weights=False):
        h = self.self_attention_norm.sublayer_input(x)
        attended, weights = self.self_attention(h, h, padding_mask, return_attention_weights=True,
                                                training=training)  # (B, S, D), (B, H, S, S)
        x = self.self_attention_norm(x, attended, training=training)
        h = self.feed_forward_norm.sublayer_input(x)
        x = self.feed_forward_norm(x, self.feed_forward(h, training=training), training=training)
        return (x, weights) if return_attention_weights else x

    def get_config(self):
        return {**super().get_config(), **self._args}


@keras.saving.register_keras_serializable(package="keras_transformer")
class Encoder(keras.layers.Layer):
    """source ids int32 (B, S) -> encoder output (B, S, D). Built from a `TransformerConfig` dict."""

    def __init__(self, config, **kwargs):
        super().__init__(**kwargs)
        self.config = TransformerConfig.from_dict(config) if isinstance(config, dict) else config
        c = self.config
        self.embedding = PositionalEmbedding(c.source_vocab_size, c.hidden_dim, c.max_source_length,
                                             name="source_embedding")
        self.embedding_dropout = keras.layers.Dropout(c.dropout)
        self.encoder_layers = [
            EncoderLayer(c.hidden_dim, c.num_heads, c.intermediate_dim, c.dropout, c.activation, c.norm_first,
                         c.layer_norm_epsilon, name=f"encoder_layer_{i}")
            for i in range(c.encoder_layers)
        ]
        # Pre-norm leaves the residual stream unnormalized: normalize once at the top.
        self.final_norm = LayerNormalization(c.layer_norm_epsilon, name="final_norm") if c.norm_first else None

    def build(self, source_ids_shape):
        self.embedding.build(source_ids_shape)
        hidden_shape = tuple(source_ids_shape) + (self.config.hidden_dim,)
        for layer in self.encoder_layers:
            layer.build(hidden_shape)
        if self.final_norm is not None:
            self.final_norm.build(hidden_shape)

    def call(self, source_ids, training=None, return_attention_weights=False):
        padding_mask = masks.padding_mask(source_ids)  # (B, 1, 1, S)
        x = self.embedding_dropout(self.embedding(source_ids), training=training)  # (B, S, D)
        all_weights = []
        for layer in self.encoder_layers:
            x, weights = layer(x, padding_mask, training=training, return_attention_weights=True)
            all_weights.append(weights)  # (B, H, S, S)
        if self.final_norm is not None:
            x = self.final_norm(x)
        return (x, all_weights) if return_attention_weights else x

    def get_config(self):
        return {**super().get_config(), "config": self.config.to_dict()}
