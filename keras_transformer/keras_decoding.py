"""Decoding with the Keras model itself, through the same loop `serve/` uses.

`KerasStepModel` implements `serve.decoding.StepModel` on the decoder's cached `step` (compiled
with `tf.function`), so Keras and onnxruntime decoding differ only in who computes a step: that is
what the export's token-for-token parity check compares.
"""

from __future__ import annotations

import warnings

import numpy as np

from keras_transformer.model import config_of, decoder_of, encoder_of
from serve import decoding
from serve.bundle_format import BOS_ID, EOS_ID, PAD_ID


# The first decoding step attends over one cached key: a size-1 softmax, which is correct here.
warnings.filterwarnings("ignore", message="You are using a softmax over axis -1 of a tensor of shape")


class KerasStepModel:
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
                "past": [(empty, empty) for _ in range(c.num_layers)],
                "source_mask": source_ids != PAD_ID}

    def step(self, token_ids, position, state):
        logits, present = self._step(np.asarray(token_ids, np.int32)[:, None], np.int32(position),
                                     state["past"], state["cross"], state["source_mask"])
        return logits.numpy(), {**state, "past": [(k.numpy(), v.numpy()) for k, v in present]}

    def select(self, state, rows):
        take = lambda a: np.take(a, rows, axis=0)  # noqa: E731
        return {"cross": [(take(k), take(v)) for k, v in state["cross"]],
                "past": [(take(k), take(v)) for k, v in state["past"]],
                "source_mask": take(state["source_mask"])}


def pad_batch(rows: list[list[int]]) -> np.ndarray:
    """Token id lists -> int32 (B, max length), right-padded with PAD_ID."""
    out = np.full((len(rows), max(len(r) for r in rows)), PAD_ID, dtype=np.int32)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return out


def greedy_token_ids(step_model, sources: list[list[int]], max_length: int, batch_size: int = 32) -> list[list[int]]:
    """Greedy output ids for source id lists (EOS included), in batches, with any model that has
    `start(source_ids)` plus the `serve.decoding.StepModel` methods (Keras or onnxruntime)."""
    outputs = []
    for start in range(0, len(sources), batch_size):
        batch = pad_batch(sources[start:start + batch_size])
        outputs += decoding.greedy_decode(step_model, step_model.start(batch), len(batch), BOS_ID, EOS_ID, max_length)
    return outputs


def keras_greedy_translate(model, source_tokenizer, target_tokenizer, texts, batch_size=64, max_length=None):
    """Greedy translations of `texts` with the Keras model: (texts, token id lists)."""
    step_model = KerasStepModel(model)
    max_length = max_length or step_model.config.max_target_length
    limit = step_model.config.max_source_length - 1
    sources = [ids[:limit] + [EOS_ID] for ids in source_tokenizer.encode_batch(list(texts))]
    outputs = greedy_token_ids(step_model, sources, max_length, batch_size)
    return [target_tokenizer.decode(ids) for ids in outputs], outputs
