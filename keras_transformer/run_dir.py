"""The run directory that `train` writes and `export` reads.

    RUN/config.json             format version, model config, training settings, data, status
    RUN/model.keras             the latest finished epoch (written atomically)
    RUN/source.tokenizer.json   RUN/target.tokenizer.json
    RUN/history.csv             one row per finished epoch, column `epoch` first
    RUN/backup/                 BackupAndRestore state while training is unfinished
    RUN/epochs/                 epoch-K.npz weights kept for --average-checkpoints while training is unfinished
    RUN/data/                   the training corpora prepared for this run (`train --data SPEC`), a DATA_DIR
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from keras_transformer.atomic_files import atomic_write_json
from keras_transformer.serve.bundle_format import SOURCE_TOKENIZER_FILE, TARGET_TOKENIZER_FILE
from keras_transformer.serve.errors import KerasTransformerError

RUN_FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
MODEL_FILE = "model.keras"
HISTORY_FILE = "history.csv"
BACKUP_DIR = "backup"
EPOCHS_DIR = "epochs"
DATA_DIR = "data"
TEST_FILE = "test.tsv"


class RunDirError(KerasTransformerError, ValueError):
    """A run directory that cannot be used as asked; the message says what and where."""


class RunDir:
    def __init__(self, path):
        self.path = Path(path)

    config_path = property(lambda self: self.path / CONFIG_FILE)
    model_path = property(lambda self: self.path / MODEL_FILE)
    history_path = property(lambda self: self.path / HISTORY_FILE)
    backup_path = property(lambda self: self.path / BACKUP_DIR)
    epochs_path = property(lambda self: self.path / EPOCHS_DIR)
    data_path = property(lambda self: self.path / DATA_DIR)
    source_tokenizer_path = property(lambda self: self.path / SOURCE_TOKENIZER_FILE)
    target_tokenizer_path = property(lambda self: self.path / TARGET_TOKENIZER_FILE)
    test_path = property(lambda self: self.path / TEST_FILE)

    def exists(self) -> bool:
        return self.config_path.is_file()

    def is_empty_or_missing(self) -> bool:
        return not self.path.exists() or (self.path.is_dir() and not any(self.path.iterdir()))

    def read_config(self) -> dict:
        """config.json, checked: a clear RunDirError when this is not a run of this format."""
        if not self.path.is_dir():
            raise RunDirError(f"{self.path}: expected a run directory, "
                              f"got {'a file' if self.path.exists() else 'nothing'}")
        if not self.config_path.is_file():
            raise RunDirError(f"{self.path}: not a run directory (no {CONFIG_FILE}); expected the --out of "
                              "`keras-transformer train`")
        try:
            config = json.loads(self.config_path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise RunDirError(f"{self.config_path}: expected JSON, got a parse error ({error})") from None
        version = config.get("run_format_version") if isinstance(config, dict) else None
        if version != RUN_FORMAT_VERSION:
            raise RunDirError(f"{self.config_path}: expected run_format_version {RUN_FORMAT_VERSION}, got {version!r}")
        for key in ("model", "training"):
            if not isinstance(config.get(key), dict):
                raise RunDirError(f"{self.config_path}: expected a '{key}' object, got {config.get(key)!r}")
        return config

    def read_history(self) -> list[dict]:
        """history.csv's rows (str values), one per finished epoch; [] before the first epoch."""
        if not self.history_path.is_file():
            return []
        with open(self.history_path, newline="", encoding="utf-8") as f:
            return list(csv.DictReader(f))

    def write_config(self, config: dict):
        atomic_write_json(self.config_path, {"run_format_version": RUN_FORMAT_VERSION, **config})

    def transformer_config(self):
        from keras_transformer.config import TransformerConfig

        try:
            return TransformerConfig.from_dict(self.read_config()["model"])
        except (TypeError, ValueError) as error:
            if isinstance(error, RunDirError):
                raise
            raise RunDirError(f"{self.config_path}: invalid 'model' settings: {error}") from None

    def load_model(self):
        """The trained `keras.Model`, with a one-line error for a missing or corrupt file."""
        import keras

        import keras_transformer.keras_objects  # noqa: F401  (registers our Keras classes)

        self.read_config()
        if not self.model_path.is_file():
            raise RunDirError(f"{self.model_path}: missing; the run has no finished epoch yet")
        try:
            return keras.saving.load_model(self.model_path, compile=False)
        except Exception as error:  # zip, h5 and deserialization errors all mean "corrupt"
            raise RunDirError(f"{self.model_path}: cannot be loaded ({type(error).__name__}: "
                              f"{str(error).splitlines()[0] if str(error) else ''})") from None

    def load_tokenizers(self):
        from keras_transformer.serve.tokenizer import SubwordTokenizer

        return (SubwordTokenizer.from_file(self.source_tokenizer_path),
                SubwordTokenizer.from_file(self.target_tokenizer_path))
