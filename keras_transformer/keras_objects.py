"""Registers every Keras object of the package, so `keras.saving.load_model` finds them by name.

    import keras_transformer.keras_objects  # noqa: F401
    model = keras.saving.load_model("runs/demo/model.keras")   # compile=True: optimizer state,
    model.fit(...)                                              # schedule, loss and metric restored

A saved model names its classes "keras_transformer>DecoderLayer", "keras_transformer>WarmupInverseSquareRoot",
...; Keras looks them up in its registry, which a class joins when its module is imported. This
module imports each of those modules (it imports TensorFlow/Keras; `import keras_transformer`
alone does not).
"""

from keras_transformer import attention, decoder, encoder, feed_forward, layer_norm, losses  # noqa: F401
from keras_transformer import positional_encoding, residual, schedule  # noqa: F401

REGISTERED_PACKAGE = "keras_transformer"  # the `package=` of every register_keras_serializable here
