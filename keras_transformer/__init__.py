"""keras-transformer: the Transformer of "Attention Is All You Need" written from scratch in Keras 3.

    from keras_transformer import TransformerConfig, build_transformer

Importing the package registers every layer with Keras, so a saved `model.keras` loads with
`keras.saving.load_model`.
"""

from keras_transformer.config import TransformerConfig
from keras_transformer.model import build_transformer

__all__ = ["TransformerConfig", "build_transformer"]
