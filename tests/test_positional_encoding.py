import math

import numpy as np

from keras_transformer.positional_encoding import PositionalEmbedding, sinusoidal_positional_encoding


def test_matches_the_formula_at_known_positions():
    d = 8
    pe = sinusoidal_positional_encoding(50, d)
    for pos in (0, 1, 7, 49):
        for i in range(d // 2):
            angle = pos / 10000 ** (2 * i / d)
            assert math.isclose(pe[pos, 2 * i], math.sin(angle), abs_tol=1e-6)
            assert math.isclose(pe[pos, 2 * i + 1], math.cos(angle), abs_tol=1e-6)
    np.testing.assert_allclose(pe[0], [0, 1] * (d // 2))  # sin(0) = 0, cos(0) = 1


def test_values_bounded_and_positions_distinct():
    pe = sinusoidal_positional_encoding(128, 16)
    assert np.abs(pe).max() <= 1.0
    assert len({row.tobytes() for row in pe}) == 128


def test_odd_dimension():
    pe = sinusoidal_positional_encoding(4, 5)
    assert pe.shape == (4, 5)
    np.testing.assert_allclose(pe[2, 4], math.sin(2 / 10000 ** (4 / 5)), atol=1e-6)


def test_embedding_is_scaled_token_vector_plus_encoding():
    layer = PositionalEmbedding(vocab_size=10, hidden_dim=4, max_length=16)
    ids = np.array([[3, 7, 2]], np.int32)
    out = np.asarray(layer(ids))
    table = layer.embeddings.numpy()
    pe = sinusoidal_positional_encoding(16, 4)
    np.testing.assert_allclose(out[0], table[[3, 7, 2]] * 2.0 + pe[:3], atol=1e-6)  # sqrt(4) = 2
    # A decoding step at position 5 gets PE[5].
    step = np.asarray(layer(ids[:, :1], start_position=5))
    np.testing.assert_allclose(step[0, 0], table[3] * 2.0 + pe[5], atol=1e-6)
