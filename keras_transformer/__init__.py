"""keras-transformer: the Transformer of "Attention Is All You Need" written from scratch in Keras 3.

    from keras_transformer import TransformerConfig, build_transformer
    import keras_transformer.keras_objects   # registers our layers, loss, metric and schedule with Keras

Importing this package costs nothing: names are loaded on first use (PEP 562), so the data side
(`keras_transformer.corpus`, the tokenizer wrapper) and the TensorFlow-free runtime
(`keras_transformer.serve`) never load TensorFlow or Keras. `keras.saving.load_model` of a run's
`model.keras` needs our Keras classes registered: `import keras_transformer.keras_objects` does that
(so does touching any Keras-side name here, e.g. `keras_transformer.build_transformer`).

Subpackages: `keras_transformer.serve` (onnxruntime runtime, `Translator`), `keras_transformer.export`
(run -> ONNX bundle), `keras_transformer.cli` (the `keras-transformer` command).
"""

# name -> module that defines it, imported on first access
_LAZY = {
    "TransformerConfig": "keras_transformer.config",
    "ModelOptions": "keras_transformer.config",
    "build_transformer": "keras_transformer.model",
    "Translator": "keras_transformer.serve.translator",
    "load_translator": "keras_transformer.translation",
    "KerasStepModel": "keras_transformer.keras_step_model",
}

__all__ = list(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'keras_transformer' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
