"""Inference without TensorFlow: bundle reading, onnxruntime sessions, decoding, HTTP server.

Installed as `keras_transformer.serve` (the repository folder is `serve/`)::

    >>> from keras_transformer.serve import Translator
    >>> Translator("runs/demo/bundle").translate(["How are you?"], beam_size=4)

The names are imported lazily, so that `keras_transformer.serve.bundle_format` (used by training
and export) does not load onnxruntime. Nothing in this package imports tensorflow, keras, tf2onnx,
the model package, `export` or `cli`: its modules import each other relatively and nothing else of
the project (tests/test_layering.py).
"""

_LAZY = {"Translator": "translator", "BatchingTranslator": "batching_translator", "DecodingOptions": "decoding_options",
         "KerasTransformerError": "errors"}
__all__ = list(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
