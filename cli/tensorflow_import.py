"""Importing TensorFlow without its start-up chatter, for the commands that train or read a Keras model."""

from __future__ import annotations

import os
import sys
import tempfile

# What TensorFlow 2.21 writes to stderr at import whatever TF_CPP_MIN_LOG_LEVEL says (absl, before its
# logging is initialised).
TENSORFLOW_IMPORT_CHATTER = ("All log messages before absl::InitializeLog() is called",
                             "oneDNN custom operations are on")


def import_tensorflow_quietly() -> None:
    """Imports TensorFlow with `TENSORFLOW_IMPORT_CHATTER` held back.

    The process-level stderr (file descriptor 2, which TensorFlow's C++ code writes to) goes to a
    temporary file during the import; afterwards every other line is written back, and on failure
    all of it, so nothing that explains an error is lost.
    """
    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    failed = True
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow  # noqa: F401
            failed = False
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            lines = captured.read().decode("utf-8", "replace").splitlines(keepends=True)
            kept = lines if failed else [line for line in lines
                                         if not any(chatter in line for chatter in TENSORFLOW_IMPORT_CHATTER)]
            sys.stderr.write("".join(kept))
