"""The decoder (paper §3.1): N identical layers of masked self-attention, cross-attention over the
encoder output and feed-forward, each in Add & Norm; then the linear map to target-vocabulary logits.

Two entry points share every weight and one code path (`DecoderLayer.forward`):
- `call`: the whole target at once (training, teacher forcing), with a causal mask;
- `step`: one new token with a key/value cache (decoding); its logits equal `call`'s at that position.

Shapes: B batch, T target length, S source length, P cached length, D d_model, H heads, Dh = D / H,
V target vocabulary.
"""

import keras
from keras import ops

from keras_transformer import masks
from keras_transformer.attention import MultiHeadAttention
from keras_transformer.config import TransformerConfig
from keras_transformer.feed_forward import PositionwiseFeedForward
from keras_transformer.layer_norm import LayerNormalization
from keras_transformer.positional_encoding import PositionalEmbedding
from keras_transformer.residual import AddAndNorm


@keras.saving.register_keras_serializable(package="keras_transformer")
class DecoderLayer(keras.layers.Layer):
    """Masked self-attention, then cross-attention (queries from the decoder, keys and values from
    the encoder), then feed-forward. x (B, T, D) -> (B, T, D)."""

    def __init__(self, hidden_dim, num_heads, intermediate_dim, dropout=0.0, activation="relu",
                 norm_first=False, epsilon=1e-6, **kwargs):
        super().__init__(**kwargs)
        self._args = dict(hidden_dim=hidden_dim, num_heads=num_heads, intermediate_dim=intermediate_dim,
                          dropout=dropout, activation=activation, norm_first=norm_first, epsilon=epsilon)
        self.self_attention = MultiHeadAttention(hidden_dim, num_heads, dropout, name="self_attention")
        self.self_attention_norm = AddAndNorm(norm_first, dropout, epsilon, name="self_attention_norm")
        self.cross_attention = MultiHeadAttention(hidden_dim, num_heads, dropout, name="cross_attention")
        self.cross_attention_norm = AddAndNorm(norm_first, dropout, epsilon, name="cross_attention_norm")
        self.feed_forward = PositionwiseFeedForward(hidden_dim, intermediate_dim, activation, dropout,
                                                    name="feed_forward")
        self.feed_forward_norm = AddAndNorm(norm_first, dropout, epsilon, name="feed_forward_norm")

    def build(self, x_shape, encoder_output_shape=None, *args, **kwargs):
        encoder_output_shape = x_shape if encoder_output_shape is None else encoder_output_shape
        self.self_attention.build(x_shape, x_shape)
        self.cross_attention.build(x_shape, encoder_output_shape)
        self.feed_forward.build(x_shape)
        for norm in (self.self_attention_norm, self.cross_attention_norm, self.feed_forward_norm):
            norm.build(x_shape)

    def call(self, x, encoder_output, self_attention_mask, cross_attention_mask, training=None,
             return_attention_weights=False):
        """x (B, T, D), encoder_output (B, S, D), self mask (B, 1, T, T), cross mask (B, 1, 1, S).

        Returns (B, T, D), and with `return_attention_weights` also the self-attention (B, H, T, T)
        and cross-attention (B, H, T, S) weights.
        """
        cross_key, cross_value = self.cross_attention.project_key_value(encoder_output)  # (B, H, S, Dh) each
        x, _, _, self_weights, cross_weights = self.forward(
            x, None, None, cross_key, cross_value, self_attention_mask, cross_attention_mask, training)
        return (x, self_weights, cross_weights) if return_attention_weights else x

    def step(self, x, past_key, past_value, cross_key, cross_value, cross_attention_mask):
        """One decoding step with a cache (inference only, no dropout).

        x (B, 1, D); past_key/past_value (B, H, P, Dh); cross_key/cross_value (B, H, S, Dh) from
        `cross_attention.project_key_value(encoder_output)`; cross mask (B, 1, 1, S).
        Returns y (B, 1, D) and the present key/value (B, H, P + 1, Dh). No causal mask is needed:
        the cache holds only earlier positions.
        """
        x, key, value, _, _ = self.forward(x, past_key, past_value, cross_key, cross_value, None,
                                           cross_attention_mask, training=False)
        return x, key, value

    def forward(self, x, past_key, past_value, cross_key, cross_value, self_attention_mask,
                cross_attention_mask, training=None):
        """The layer on new target positions x (B, T, D): the one path of `call` and `step`.

        past_key/past_value (B, H, P, Dh) are the cached self-attention keys/values of the P
        positions before x, or None (no cache: x is the whole target, `call`). cross_key/cross_value
        (B, H, S, Dh) are the encoder output's projections.

        Returns y (B, T, D); the self-attention key and value over all P + T positions
        (B, H, P + T, Dh) each; the self-attention (B, H, T, P + T) and cross-attention (B, H, T, S) weights.
        """
        h = self.self_attention_norm.sublayer_input(x)
        key, value = self.self_attention.project_key_value(h)  # (B, H, T, Dh) each
        if past_key is not None:
            key = ops.concatenate([past_key, key], axis=2)  # (B, H, P + T, Dh)
            value = ops.concatenate([past_value, value], axis=2)
        attended, self_weights = self.self_attention.attend(h, key, value, self_attention_mask, training)
        x = self.self_attention_norm(x, attended, training=training)

        h = self.cross_attention_norm.sublayer_input(x)
        attended, cross_weights = self.cross_attention.attend(h, cross_key, cross_value, cross_attention_mask,
                                                              training)
        x = self.cross_attention_norm(x, attended, training=training)

        h = self.feed_forward_norm.sublayer_input(x)
        x = self.feed_forward_norm(x, self.feed_forward(h, training=training), training=training)
        return x, key, value, self_weights, cross_weights

    def get_config(self):
        return {**super().get_config(), **self._args}


@keras.saving.register_keras_serializable(package="keras_transformer")
class Decoder(keras.layers.Layer):
    """target ids (B, T), encoder output (B, S, D), source ids (B, S) -> logits (B, T, V).

    Built from a `TransformerConfig` dict. With `tie_output_embedding` the pre-softmax linear map
    is the transposed target embedding matrix plus a bias (paper §3.4). With `share_embeddings` the
    target embedding is the encoder's source embedding (`share_embedding_with`, done on the first
    call on an encoder's output).
    """

    def __init__(self, config, **kwargs):
        super().__init__(**kwargs)
        self.config = TransformerConfig.from_dict(config) if isinstance(config, dict) else config
        c = self.config
        self.embedding = PositionalEmbedding(c.target_vocab_size, c.hidden_dim, c.max_target_length,
                                             shared=c.share_embeddings, name="target_embedding")
        self.embedding_dropout = keras.layers.Dropout(c.dropout)
        self.decoder_layers = [
            DecoderLayer(c.hidden_dim, c.num_heads, c.intermediate_dim, c.dropout, c.activation, c.norm_first,
                         c.layer_norm_epsilon, name=f"decoder_layer_{i}")
            for i in range(c.decoder_layers)
        ]
        self.final_norm = LayerNormalization(c.layer_norm_epsilon, name="final_norm") if c.norm_first else None
        self.output_projection = (None if c.tie_output_embedding
                                  else keras.layers.Dense(c.target_vocab_size, name="output_projection"))

    def __call__(self, target_ids, encoder_output=None, *args, **kwargs):
        # share_embeddings: a decoder called on an encoder's symbolic output (build_transformer, and
        # load_model, which calls the layers again) takes that encoder's token embedding before it
        # builds, so the tie survives saving and loading.
        if self.config.share_embeddings and self.embedding.token_embedding is None:
            history = getattr(encoder_output, "_keras_history", None)
            if history is not None:
                self.share_embedding_with(history.operation)
            deferred = self.__dict__.pop("_deferred_build_config", None)
            if deferred is not None:
                super().build_from_config(deferred)
        return super().__call__(target_ids, encoder_output, *args, **kwargs)

    def build_from_config(self, config):
        if self.config.share_embeddings and self.embedding.token_embedding is None:
            self._deferred_build_config = config  # load_model: built by the call that ties the embedding
            return
        super().build_from_config(config)

    def share_embedding_with(self, encoder):
        """Ties the target token embedding (and, with tie_output_embedding, the pre-softmax matrix) to
        `encoder`'s source token embedding (TransformerConfig.share_embeddings; one shared vocabulary)."""
        if not self.config.share_embeddings:
            raise ValueError("Decoder.share_embedding_with: expected a config with share_embeddings=True")
        if not hasattr(encoder, "embedding") or not isinstance(encoder.embedding, PositionalEmbedding):
            raise ValueError(f"Decoder.share_embedding_with: expected an Encoder, got {type(encoder).__name__}")
        self.embedding.share_token_embedding(encoder.embedding)

    def build(self, target_ids_shape, encoder_output_shape=None, source_ids_shape=None):
        c = self.config
        self.embedding.build(target_ids_shape)
        hidden_shape = tuple(target_ids_shape) + (c.hidden_dim,)
        encoder_output_shape = hidden_shape if encoder_output_shape is None else encoder_output_shape
        for layer in self.decoder_layers:
            layer.build(hidden_shape, encoder_output_shape)
        if self.final_norm is not None:
            self.final_norm.build(hidden_shape)
        if self.output_projection is None:
            self.output_bias = self.add_weight(shape=(c.target_vocab_size,), initializer="zeros", name="output_bias")
        else:
            self.output_projection.build(hidden_shape)

    def logits(self, x):
        """(B, T, D) -> (B, T, V)."""
        if self.final_norm is not None:
            x = self.final_norm(x)
        if self.output_projection is not None:
            return self.output_projection(x)
        return ops.matmul(x, ops.transpose(self.embedding.embeddings)) + self.output_bias

    def call(self, target_ids, encoder_output, source_ids, training=None, return_attention_weights=False):
        self_mask = masks.decoder_self_attention_mask(target_ids)  # (B, 1, T, T)
        cross_mask = masks.padding_mask(source_ids)  # (B, 1, 1, S): the source's padding
        x = self.embedding_dropout(self.embedding(target_ids), training=training)  # (B, T, D)
        self_weights, cross_weights = [], []
        for layer in self.decoder_layers:
            x, self_w, cross_w = layer(x, encoder_output, self_mask, cross_mask, training=training,
                                       return_attention_weights=True)
            self_weights.append(self_w)
            cross_weights.append(cross_w)
        logits = self.logits(x)
        return (logits, self_weights, cross_weights) if return_attention_weights else logits

    def cross_key_values(self, encoder_output):
        """(B, S, D) -> per layer (key, value), each (B, H, S, Dh): computed once per sentence."""
        return [layer.cross_attention.project_key_value(encoder_output) for layer in self.decoder_layers]

    def step(self, token_ids, position, past, cross, source_mask):
        """One cached step.

        token_ids int (B, 1), position int scalar (= P), past: per layer (key, value) (B, H, P, Dh),
        cross: per layer (key, value) (B, H, S, Dh), source_mask bool (B, S).
        Returns logits (B, V) and the present per-layer (key, value), each (B, H, P + 1, Dh).
        """
        cross_mask = source_mask[:, None, None, :]  # (B, 1, 1, S)
        x = self.embedding(token_ids, start_position=position)  # (B, 1, D)
        present = []
        for layer, (past_key, past_value), (cross_key, cross_value) in zip(self.decoder_layers, past, cross):
            x, key, value = layer.step(x, past_key, past_value, cross_key, cross_value, cross_mask)
            present.append((key, value))
        return self.logits(x)[:, 0, :], present

    def get_config(self):
        return {**super().get_config(), "config": self.config.to_dict()}
