import keras
import numpy as np

from keras_transformer.layer_norm import LayerNormalization


def test_equals_keras_layer_normalization_with_learned_gamma_beta():
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(3, 5, 16)) * 4 + 2).astype("float32")
    ours, theirs = LayerNormalization(epsilon=1e-6), keras.layers.LayerNormalization(epsilon=1e-6)
    ours(x), theirs(x)
    gamma, beta = rng.normal(size=16).astype("float32"), rng.normal(size=16).astype("float32")
    ours.set_weights([gamma, beta])
    theirs.set_weights([gamma, beta])
    np.testing.assert_allclose(ours(x), theirs(x), atol=1e-5)


def test_normalizes_each_position_to_zero_mean_unit_variance():
    x = np.random.default_rng(1).normal(size=(2, 3, 32)).astype("float32") * 10 + 5
    y = np.asarray(LayerNormalization()(x))
    np.testing.assert_allclose(y.mean(-1), 0, atol=1e-5)
    np.testing.assert_allclose(y.std(-1), 1, atol=1e-3)


def test_get_config_round_trip():
    layer = LayerNormalization(epsilon=1e-3)
    assert LayerNormalization.from_config(layer.get_config()).epsilon == 1e-3
