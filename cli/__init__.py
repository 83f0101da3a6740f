"""The `keras-transformer` command: one module per command or group of commands, `main` in main.py.

This is the composition root: it may import the model package, `export` and `serve`; the model
package never imports `export` or `cli`, and `serve` imports neither (tests/test_layering.py).
`python -m keras_transformer.cli ...` is the same as `keras-transformer ...`.
"""

from .main import main

__all__ = ["main"]
