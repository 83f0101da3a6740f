"""Small builders shared by the tests: tiny configs and random id batches with padding."""

import numpy as np


def tiny_config(**overrides):
    from keras_transformer import TransformerConfig

    values = dict(source_vocab_size=37, target_vocab_size=29, num_layers=2, hidden_dim=16, num_heads=2,
                  intermediate_dim=32, dropout=0.0, max_source_length=48, max_target_length=40)
    values.update(overrides)
    return TransformerConfig(**values)


def random_ids(rng, batch, length, vocab_size, lengths=None):
    """int32 (batch, length) ids in [4, vocab), right-padded with 0 after each row's length."""
    ids = rng.integers(4, vocab_size, size=(batch, length)).astype(np.int32)
    if lengths is not None:
        for row, n in enumerate(lengths):
            ids[row, n:] = 0
    return ids
