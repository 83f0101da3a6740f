"""Write files so that a crash never leaves a half-written one: write a temporary sibling, then
`os.replace` it over the target (atomic on POSIX within one filesystem)."""

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path, suffix=""):
    """Yields a temporary path next to `path`; on success it replaces `path`, on error it is removed."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or path.suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def atomic_write_text(path, text):
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def atomic_write_json(path, value):
    atomic_write_text(path, json.dumps(value, indent=2, ensure_ascii=False) + "\n")


def atomic_save_model(model, path):
    """`model.save(path)` (a `.keras` zip) through a temporary file: the old file survives a crash."""
    with atomic_path(path, suffix=".keras") as tmp:
        model.save(tmp)
