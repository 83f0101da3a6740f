"""keras-transformer: the Transformer of "Attention Is All You Need" written from scratch in Keras 3.

    from keras_transformer import TransformerConfig, build_transformer
    import keras, keras_transformer
    model = keras.saving.load_model("runs/demo/model.keras")   # our layers are registered with Keras

Importing this package costs nothing: names are loaded on first use (PEP 562), so the data side
(`keras_transformer.corpus`, the tokenizer wrapper) and the TensorFlow-free runtime
(`keras_transformer.serve`) never load TensorFlow or Keras. Our Keras classes are registered with
Keras as soon as both are imported, in either order (`_register_with_keras`), as keras-hub's are,
so `keras.saving.load_model` of a run's `model.keras` needs nothing more.

Subpackages: `keras_transformer.serve` (onnxruntime runtime, `Translator`), `keras_transformer.export`
(run -> ONNX bundle), `keras_transformer.cli` (the `keras-transformer` command).
"""

import sys

# name -> module that defines it, imported on first access
_LAZY = {
    "TransformerConfig": "keras_transformer.config",
    "ModelOptions": "keras_transformer.config",
    "build_transformer": "keras_transformer.model",
    "Translator": "keras_transformer.serve.translator",
    "DecodingOptions": "keras_transformer.serve.decoding_options",
    "KerasTransformerError": "keras_transformer.serve.errors",
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


class _RegisterAfterKerasImport:
    """A `sys.meta_path` entry that, once `keras` itself has been imported, registers our Keras classes
    (`keras_transformer.keras_objects`) and removes itself: `import keras_transformer` before
    `import keras` then costs nothing until Keras is loaded anyway."""

    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name != "keras":
            return None
        for finder in sys.meta_path:  # the real spec, from the finders after us
            if finder is cls or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None and spec.loader is not None and hasattr(spec.loader, "exec_module"):
                spec.loader = _RegisteringLoader(spec.loader)
                return spec
        return None


class _RegisteringLoader:
    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        self.loader.exec_module(module)
        _uninstall_hook()
        import keras_transformer.keras_objects  # noqa: F401  (its import registers the classes)

    def __getattr__(self, name):  # everything else the import system asks of a loader
        return getattr(self.loader, name)


def _uninstall_hook():
    if _RegisterAfterKerasImport in sys.meta_path:
        sys.meta_path.remove(_RegisterAfterKerasImport)


def _register_with_keras():
    if sys.modules.get("keras") is not None:
        import keras_transformer.keras_objects  # noqa: F401
    elif _RegisterAfterKerasImport not in sys.meta_path:
        sys.meta_path.insert(0, _RegisterAfterKerasImport)


_register_with_keras()
