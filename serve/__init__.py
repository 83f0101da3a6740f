"""Inference without TensorFlow: bundle reading, onnxruntime sessions, decoding, HTTP server.

Installed as `keras_transformer.serve` (the repository folder is `serve/`)::

    >>> from keras_transformer.serve import Translator
    >>> Translator("runs/demo/bundle").translate(["How are you?"], beam_size=4)

`Translator` is imported lazily, so that `keras_transformer.serve.bundle_format` (used by training
and export) does not load onnxruntime. Nothing in this package imports tensorflow, keras, tf2onnx,
the model package, `export` or `cli`: its modules import each other relatively and nothing else of
the project (tests/test_layering.py).
"""

__all__ = ["Translator", "DecodingOptions"]


def __getattr__(name):
    if name == "Translator":
        from .translator import Translator

        return Translator
    if name == "DecodingOptions":
        from .decoding_options import DecodingOptions

        return DecodingOptions
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
