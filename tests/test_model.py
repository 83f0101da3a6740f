"""Whole-model properties, with source and target lengths deliberately different."""

import keras
import numpy as np
import pytest

from helpers import random_ids, tiny_config
from keras_transformer import TransformerConfig, build_transformer
from keras_transformer.model import decoder_of, encoder_of


@pytest.fixture(scope="module", params=[False, True], ids=["post-norm", "pre-norm"])
def model(request):
    keras.utils.set_random_seed(0)
    return build_transformer(tiny_config(norm_first=request.param))


def _logits(model, source, target):
    return np.asarray(model({"source_ids": source, "target_ids": target}, training=False))


def test_output_shape_and_inputs(model):
    rng = np.random.default_rng(0)
    logits = _logits(model, random_ids(rng, 3, 9, 37), random_ids(rng, 3, 4, 29))
    assert logits.shape == (3, 4, 29)
    assert set(model.input) == {"source_ids", "target_ids"}


def test_extra_source_padding_changes_no_logit(model):
    rng = np.random.default_rng(1)
    source = random_ids(rng, 2, 6, 37, lengths=[6, 3])
    target = random_ids(rng, 2, 5, 29, lengths=[5, 2])
    padded = np.concatenate([source, np.zeros((2, 11), np.int32)], axis=1)
    np.testing.assert_allclose(_logits(model, padded, target), _logits(model, source, target), atol=1e-5)


def test_target_padding_changes_no_real_position(model):
    rng = np.random.default_rng(2)
    source = random_ids(rng, 2, 6, 37)
    target = random_ids(rng, 2, 4, 29)
    padded = np.concatenate([target, np.zeros((2, 3), np.int32)], axis=1)
    np.testing.assert_allclose(_logits(model, source, padded)[:, :4], _logits(model, source, target), atol=1e-5)


def test_no_position_sees_the_future(model):
    rng = np.random.default_rng(3)
    source = random_ids(rng, 2, 7, 37)
    target = random_ids(rng, 2, 6, 29)
    changed = target.copy()
    changed[:, 4:] = (changed[:, 4:] + 5) % 25 + 4
    before, after = _logits(model, source, target), _logits(model, source, changed)
    np.testing.assert_allclose(after[:, :4], before[:, :4], atol=1e-6)
    assert np.abs(after[:, 4:] - before[:, 4:]).max() > 1e-3  # later positions do change


def test_rows_of_a_batch_are_independent(model):
    rng = np.random.default_rng(4)
    source = random_ids(rng, 3, 8, 37, lengths=[8, 5, 2])
    target = random_ids(rng, 3, 6, 29, lengths=[6, 6, 3])
    together = _logits(model, source, target)
    for row in range(3):
        alone = _logits(model, source[row:row + 1], target[row:row + 1])
        np.testing.assert_allclose(together[row:row + 1], alone, atol=1e-5)
    other = source.copy()
    other[1:] = random_ids(rng, 2, 8, 37)
    np.testing.assert_allclose(_logits(model, other, target)[0], together[0], atol=1e-5)


def test_keras_save_and_load_give_identical_logits(model, tmp_path):
    rng = np.random.default_rng(5)
    source, target = random_ids(rng, 2, 9, 37, lengths=[9, 4]), random_ids(rng, 2, 3, 29)
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    np.testing.assert_array_equal(_logits(loaded, source, target), _logits(model, source, target))


def test_get_config_round_trip_gives_identical_logits(model):
    rng = np.random.default_rng(6)
    source, target = random_ids(rng, 2, 5, 37), random_ids(rng, 2, 7, 29)
    clone = keras.Model.from_config(model.get_config())
    clone.set_weights(model.get_weights())
    np.testing.assert_array_equal(_logits(clone, source, target), _logits(model, source, target))


@pytest.mark.parametrize("tie", [True, False])
def test_cached_steps_equal_the_full_sequence(tie):
    keras.utils.set_random_seed(7)
    config = tiny_config(tie_output_embedding=tie)
    model = build_transformer(config)
    rng = np.random.default_rng(7)
    source = random_ids(rng, 3, 11, 37, lengths=[11, 6, 2])
    target = random_ids(rng, 3, 8, 29)
    full = _logits(model, source, target)  # (B, T, V)

    encoder, decoder = encoder_of(model), decoder_of(model)
    cross = decoder.cross_key_values(encoder(source))
    empty = np.zeros((3, config.num_heads, 0, config.head_dim), np.float32)
    past = [(empty, empty)] * config.num_layers
    for position in range(target.shape[1]):
        logits, past = decoder.step(target[:, position:position + 1], position, past, cross, source != 0)
        np.testing.assert_allclose(np.asarray(logits), full[:, position], atol=1e-5)
    assert past[0][0].shape == (3, config.num_heads, 8, config.head_dim)


def test_dropout_is_active_only_in_training():
    keras.utils.set_random_seed(8)
    model = build_transformer(tiny_config(dropout=0.5))
    rng = np.random.default_rng(8)
    inputs = {"source_ids": random_ids(rng, 2, 5, 37), "target_ids": random_ids(rng, 2, 4, 29)}
    np.testing.assert_array_equal(model(inputs, training=False), model(inputs, training=False))
    assert np.abs(np.asarray(model(inputs, training=True)) - np.asarray(model(inputs, training=False))).max() > 1e-3


@pytest.mark.parametrize("field, value, message", [
    ("hidden_dim", 30, "hidden_dim divisible by num_heads, got hidden_dim=30 and num_heads=4"),
    ("num_layers", 0, r"TransformerConfig.num_layers: expected a positive integer, got 0"),
    ("dropout", 1.5, r"expected 0 <= dropout < 1, got 1.5"),
    ("activation", "tanh", r"activation: expected one of \('relu', 'gelu'\), got 'tanh'"),
    ("source_vocab_size", 3, "at least 5 ids"),
])
def test_config_validation(field, value, message):
    values = dict(source_vocab_size=100, target_vocab_size=100, hidden_dim=32, num_heads=4)
    values[field] = value
    with pytest.raises(ValueError, match=message):
        TransformerConfig(**values)


def test_config_dict_round_trip_and_unknown_field():
    config = tiny_config(norm_first=True)
    assert TransformerConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match=r"unknown fields \['colour'\]"):
        TransformerConfig.from_dict({**config.to_dict(), "colour": 1})
