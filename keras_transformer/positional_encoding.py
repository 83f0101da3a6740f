"""Token embeddings scaled by √d_model plus sinusoidal positional encodings (paper §3.4, §3.5).

PE(pos, 2i)   = sin(pos / 10000^(2i / d_model))
PE(pos, 2i+1) = cos(pos / 10000^(2i / d_model))
Every position gets a unique pattern of bounded values in [-1, 1]; each dimension is periodic, and
PE(pos + k) is a linear function of PE(pos), so relative offsets are easy to attend to.
"""

import keras
import numpy as np
from keras import ops


def sinusoidal_positional_encoding(length, hidden_dim):
    """float32 numpy (length, hidden_dim): sin on even dimensions, cos on odd ones."""
    positions = np.arange(length, dtype=np.float64)[:, None]  # (L, 1)
    even_dims = np.arange(0, hidden_dim, 2, dtype=np.float64)  # (ceil(D/2),) = 2i
    angles = positions / np.power(10000.0, even_dims / hidden_dim)  # (L, ceil(D/2))
    encoding = np.zeros((length, hidden_dim))
    encoding[:, 0::2] = np.sin(angles)
    encoding[:, 1::2] = np.cos(angles[:, : hidden_dim // 2])
    return encoding.astype("float32")


@keras.saving.register_keras_serializable(package="keras_transformer")
class PositionalEmbedding(keras.layers.Layer):
    """token ids (B, T) -> embedding · √d_model + PE[start : start + T], shape (B, T, D).

    The embedding matrix is also reachable as `embeddings` (V, D) so the decoder can reuse it as
    its pre-softmax linear layer. `start_position` (a scalar) places a decoding step at its position.
    """

    def __init__(self, vocab_size, hidden_dim, max_length, shared=False, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size = vocab_size
        self.hidden_dim = hidden_dim
        self.max_length = max_length
        # shared=True: the token embedding is another PositionalEmbedding's, given by `share_token_embedding`
        # before the first call (the decoder's, with TransformerConfig.share_embeddings).
        self.token_embedding = None if shared else keras.layers.Embedding(
            vocab_size, hidden_dim, embeddings_initializer=keras.initializers.RandomNormal(stddev=hidden_dim**-0.5),
            name="token_embedding")
        self.positional_encoding = sinusoidal_positional_encoding(max_length, hidden_dim)  # (L, D)

    def share_token_embedding(self, other: "PositionalEmbedding"):
        """Uses `other`'s token embedding (one variable, two positional encodings)."""
        if other.vocab_size != self.vocab_size or other.hidden_dim != self.hidden_dim:
            raise ValueError(f"{self.name}: expected an embedding of {self.vocab_size} x {self.hidden_dim} to share, "
                             f"got {other.vocab_size} x {other.hidden_dim}")
        if self.token_embedding is not None and self.token_embedding is not other.token_embedding:
            raise ValueError(f"{self.name}: already has its own token embedding; expected shared=True")
        self.token_embedding = other.token_embedding

    def build(self, token_ids_shape):
        if self.token_embedding is None:
            raise ValueError(f"{self.name}: shared=True but no embedding was shared with it before its first call "
                             "(call share_token_embedding first)")
        if not self.token_embedding.built:  # a shared embedding is built by its owner
            self.token_embedding.build(token_ids_shape)

    @property
    def embeddings(self):
        return self.token_embedding.embeddings

    def call(self, token_ids, start_position=0):
        length = ops.shape(token_ids)[1]
        positions = ops.arange(length) + ops.cast(start_position, "int32")  # (T,)
        encoding = ops.take(ops.convert_to_tensor(self.positional_encoding), positions, axis=0)  # (T, D)
        return self.token_embedding(token_ids) * ops.sqrt(float(self.hidden_dim)) + encoding[None]

    def get_config(self):
        return {**super().get_config(), "vocab_size": self.vocab_size, "hidden_dim": self.hidden_dim,
                "max_length": self.max_length}
