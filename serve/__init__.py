"""Inference without TensorFlow: bundle reading, onnxruntime sessions, decoding, CLI and HTTP server.

`from serve import Translator` is the public entry point. It is imported lazily, so that
`import serve.bundle_format` (used by training and export) does not load onnxruntime. Nothing in
this package imports tensorflow, keras, tf2onnx, keras_transformer or export.
"""

__all__ = ["Translator"]


def __getattr__(name):
    if name == "Translator":
        from serve.translator import Translator

        return Translator
    raise AttributeError(f"module 'serve' has no attribute {name!r}")
