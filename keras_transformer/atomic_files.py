"""Atomic writes for the training side: JSON and `.keras` models (text files: serve/atomic_files.py)."""

import json

from keras_transformer.serve.atomic_files import atomic_path, atomic_write_text

__all__ = ["atomic_path", "atomic_write_text", "atomic_write_json", "atomic_save_model"]


def atomic_write_json(path, value):
    atomic_write_text(path, json.dumps(value, indent=2, ensure_ascii=False) + "\n")


def atomic_save_model(model, path):
    """`model.save(path)` (a `.keras` zip) through a temporary file: the old file survives a crash."""
    with atomic_path(path, suffix=".keras") as tmp:
        model.save(tmp)
