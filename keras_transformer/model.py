"""`build_transformer(config)`: the encoder-decoder as a `keras.Model` for training with `model.fit`.

Inputs {"source_ids": int32 (B, S), "target_ids": int32 (B, T)} -> logits float32 (B, T, V).
The encoder and decoder layers inside are the same instances that export's encoder graph and cached
decoder step call, so there is one set of weights.
"""

import keras

import keras_transformer.keras_objects  # noqa: F401  (a built model must load back: register everything)

from keras_transformer.config import TransformerConfig
from keras_transformer.decoder import Decoder
from keras_transformer.encoder import Encoder

ENCODER_NAME = "encoder"
DECODER_NAME = "decoder"


def build_transformer(config: TransformerConfig) -> keras.Model:
    source_ids = keras.Input(shape=(None,), dtype="int32", name="source_ids")
    target_ids = keras.Input(shape=(None,), dtype="int32", name="target_ids")
    encoder = Encoder(config.to_dict(), name=ENCODER_NAME)
    decoder = Decoder(config.to_dict(), name=DECODER_NAME)
    logits = decoder(target_ids, encoder(source_ids), source_ids)
    return keras.Model({"source_ids": source_ids, "target_ids": target_ids}, logits, name="transformer")


def encoder_of(model: keras.Model) -> Encoder:
    return model.get_layer(ENCODER_NAME)


def decoder_of(model: keras.Model) -> Decoder:
    return model.get_layer(DECODER_NAME)


def config_of(model: keras.Model) -> TransformerConfig:
    return encoder_of(model).config
