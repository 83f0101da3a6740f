"""Our multi-head attention against keras.layers.MultiHeadAttention, and the masks' properties."""

import keras
import numpy as np
import pytest

from keras_transformer import masks
from keras_transformer.attention import MultiHeadAttention, scaled_dot_product_attention

B, T, S, D, H = 3, 5, 7, 16, 2


def _copy_weights_from_keras(ours, theirs):
    """keras MHA keeps (D, H, Dh) kernels; ours keep (D, H*Dh) with column h*Dh + d."""
    for our_dense, their_dense in ((ours.query_dense, theirs._query_dense), (ours.key_dense, theirs._key_dense),
                                   (ours.value_dense, theirs._value_dense)):
        kernel, bias = their_dense.get_weights()
        our_dense.set_weights([kernel.reshape(D, D), bias.reshape(D)])
    kernel, bias = theirs._output_dense.get_weights()
    ours.output_dense.set_weights([kernel.reshape(D, D), bias])


@pytest.fixture
def pair():
    rng = np.random.default_rng(0)
    query = rng.normal(size=(B, T, D)).astype("float32")
    value = rng.normal(size=(B, S, D)).astype("float32")
    theirs = keras.layers.MultiHeadAttention(num_heads=H, key_dim=D // H)
    theirs(query, value)
    # Random non-zero biases so a mistake in bias handling would show.
    theirs.set_weights([(0.3 * rng.normal(size=w.shape)).astype("float32") for w in theirs.get_weights()])
    ours = MultiHeadAttention(D, H)
    ours(query, value)
    _copy_weights_from_keras(ours, theirs)
    return ours, theirs, query, value


def test_equals_keras_multi_head_attention_without_mask(pair):
    ours, theirs, query, value = pair
    expected, expected_weights = theirs(query, value, return_attention_scores=True)
    got, got_weights = ours(query, value, return_attention_weights=True)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    np.testing.assert_allclose(got_weights, expected_weights, atol=1e-6)


def test_equals_keras_multi_head_attention_with_padding_mask(pair):
    ours, theirs, query, value = pair
    source_ids = np.array([[5, 6, 7, 8, 9, 10, 11], [5, 6, 7, 0, 0, 0, 0], [5, 0, 0, 0, 0, 0, 0]], np.int32)
    our_mask = masks.padding_mask(source_ids)  # (B, 1, 1, S)
    their_mask = np.broadcast_to((source_ids != 0)[:, None, :], (B, T, S))
    expected = theirs(query, value, attention_mask=their_mask)
    np.testing.assert_allclose(ours(query, value, our_mask), expected, atol=1e-5)


def test_equals_keras_multi_head_attention_with_causal_mask(pair):
    ours, theirs, query, _ = pair
    expected = theirs(query, query, use_causal_mask=True)
    np.testing.assert_allclose(ours(query, query, masks.causal_mask(T)), expected, atol=1e-5)


def test_scaled_dot_product_matches_formula():
    rng = np.random.default_rng(1)
    q, k, v = (rng.normal(size=(2, 2, n, 4)).astype("float32") for n in (3, 5, 5))
    mask = np.ones((2, 1, 3, 5), bool)
    mask[:, :, :, 3:] = False
    output, weights = scaled_dot_product_attention(q, k, v, mask)
    scores = q @ k.transpose(0, 1, 3, 2) / 2.0  # sqrt(d_k) = sqrt(4)
    scores = np.where(mask, scores, -np.inf)
    expected = np.exp(scores - scores.max(-1, keepdims=True))
    expected /= expected.sum(-1, keepdims=True)
    np.testing.assert_allclose(weights, expected, atol=1e-6)
    np.testing.assert_allclose(output, expected @ v, atol=1e-5)
    np.testing.assert_array_equal(np.asarray(weights)[..., 3:], 0.0)


def test_causal_mask_picture():
    # 1 = may attend. Row i (query) sees columns 0..i (keys): nobody sees the future.
    np.testing.assert_array_equal(np.asarray(masks.causal_mask(4))[0, 0].astype(int), [
        [1, 0, 0, 0],
        [1, 1, 0, 0],
        [1, 1, 1, 0],
        [1, 1, 1, 1],
    ])


def test_decoder_self_attention_mask_hides_padding_and_future():
    target_ids = np.array([[1, 5, 6, 0]], np.int32)
    np.testing.assert_array_equal(np.asarray(masks.decoder_self_attention_mask(target_ids))[0, 0].astype(int), [
        [1, 0, 0, 0],
        [1, 1, 0, 0],
        [1, 1, 1, 0],
        [1, 1, 1, 0],
    ])


def test_rejects_hidden_dim_not_divisible_by_heads():
    with pytest.raises(ValueError, match="divisible by num_heads, got 10 and 3"):
        MultiHeadAttention(10, 3)


def test_serialization_round_trip(pair):
    ours, _, query, value = pair
    clone = MultiHeadAttention.from_config(ours.get_config())
    clone(query, value)
    clone.set_weights(ours.get_weights())
    np.testing.assert_allclose(clone(query, value), ours(query, value), atol=0)
