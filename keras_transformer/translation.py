"""`load_translator(path)`: one `Translator` for a bundle (onnxruntime) or a run directory (Keras).

    >>> from keras_transformer import load_translator
    >>> load_translator("runs/demo/bundle").translate(["the girls read."])   # ONNX, no TensorFlow
    >>> load_translator("runs/demo").translate(["the girls read."], beam_size=4)   # the Keras model

Both run the same front end (`keras_transformer.serve.translator`) over a different `StepModel`,
so with the same options an fp32 bundle and the run it was exported from give the same output.
A run directory needs the training extras (TensorFlow, Keras); a bundle needs none.
"""

from __future__ import annotations

import json
from pathlib import Path

from keras_transformer.serve import bundle_format as fmt


def is_run_dir(path) -> bool:
    """True when `path/config.json` is a run's (written by `train`), not a bundle's."""
    config = Path(path) / fmt.CONFIG_FILE
    try:
        values = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(values, dict) and "run_format_version" in values


def load_translator(path, threads: int | None = None, replicas: int = 1):
    """A `Translator` over the bundle at `path`, or over the Keras model of the run at `path`.

    Args:
        path: a bundle directory (`export`'s --out) or a run directory (`train`'s --out).
        threads: onnxruntime intra-op threads (bundles only; a run uses TensorFlow's defaults).
        replicas: sets of onnxruntime sessions decoding at once (bundles only; a run has one model).

    Raises:
        BundleError / RunDirError (ValueErrors) naming the file that is missing or wrong.
    """
    from keras_transformer.serve.translator import Translator

    if not is_run_dir(path):
        return Translator(path, threads=threads, replicas=replicas)
    from keras_transformer.run_dir import RunDir

    run = RunDir(path)
    source_tokenizer, target_tokenizer = run.load_tokenizers()
    return keras_translator(run.load_model(), source_tokenizer, target_tokenizer, path=run.path)


def keras_translator(model, source_tokenizer, target_tokenizer, path=None):
    """A `Translator` over a `build_transformer` model's cached step (greedy and beam search)."""
    from keras_transformer.keras_step_model import KerasStepModel
    from keras_transformer.model import config_of
    from keras_transformer.serve.translator import Translator

    config = config_of(model)
    return Translator.for_model(KerasStepModel(model), source_tokenizer, target_tokenizer,
                                config.max_source_length, config.max_target_length, path=path)
