"""`KerasStepModel`: the Keras model's own cached decoder step, as a `serve.decoding.StepModel`.

`start` runs the encoder and the per-layer cross-attention keys/values once per batch; `step` runs
`Decoder.step` (compiled with `tf.function`) for one token with the key/value cache; `select`
gathers rows. The `Translator` front end runs over it exactly as over the ONNX bundle, so Keras and
onnxruntime decoding differ only in who computes a step: that is what the export's token-for-token
parity check compares, and what `keras-transformer translate RUN_DIR` uses.

    >>> translator = Translator.for_model(KerasStepModel(model), source_tok, target_tok, 64, 64)
"""

from __future__ import annotations

import warnings

import numpy as np

from keras_transformer.model import config_of, decoder_of, encoder_of
from keras_transformer.serve.bundle_format import PAD_ID


# The first decoding step attends over one cached key: a size-1 softmax, which is correct here.
warnings.filterwarnings("ignore", message="You are using a softmax over axis -1 of a tensor of shape")


class KerasStepModel:
    """Encoder + cached decoder step of a `build_transformer` model; the state is a dict of numpy arrays."""

    def __init__(self, model):
        import tensorflow as tf

        self.config = config_of(model)
        self.encoder = encoder_of(model)
        self.decoder = decoder_of(model)
        self._encode = tf.function(self._encode_graph, reduce_retracing=True)
        self._step = tf.function(self._step_graph, reduce_retracing=True)

    def _encode_graph(self, source_ids):
        encoder_output = self.encoder(source_ids, training=False)
        return encoder_output, self.decoder.cross_key_values(encoder_output)

    def _step_graph(self, token_ids, position, past, cross, source_mask):
        return self.decoder.step(token_ids, position, past, cross, source_mask)

    def start(self, source_ids: np.ndarray) -> dict:
        """source_ids int32 (B, S) -> the decoding state: cross K/V, source mask, empty caches."""
        source_ids = np.asarray(source_ids, dtype=np.int32)
        _, cross = self._encode(source_ids)
        c = self.config
        batch = source_ids.shape[0]
        empty = np.zeros((batch, c.num_heads, 0, c.head_dim), np.float32)  # (B, H, 0, Dh)
        return {"cross": [(k.numpy(), v.numpy()) for k, v in cross],
                "past": [(empty, empty) for _ in range(c.decoder_layers)],
                "source_mask": source_ids != PAD_ID}

    def step(self, token_ids, position, state):
        logits, present = self._step(np.asarray(token_ids, np.int32)[:, None], np.int32(position),
                                     state["past"], state["cross"], state["source_mask"])
        return logits.numpy(), {**state, "past": [(k.numpy(), v.numpy()) for k, v in present]}

    def reorder_beams(self, state, rows):
        """`select` for rows within their sentence: only the self-attention cache moves."""
        take = lambda a: np.take(a, rows, axis=0)  # noqa: E731
        return {**state, "past": [(take(k), take(v)) for k, v in state["past"]]}

    def select(self, state, rows):
        take = lambda a: np.take(a, rows, axis=0)  # noqa: E731
        return {"cross": [(take(k), take(v)) for k, v in state["cross"]],
                "past": [(take(k), take(v)) for k, v in state["past"]],
                "source_mask": take(state["source_mask"])}
