"""The `keras-transformer` command: every subcommand's parser and handler (`commands.py`).

This is the composition root: it may import the model package, `export` and `serve`; the model
package never imports `export` or `cli`, and `serve` imports neither (tests/test_layering.py).
`python -m keras_transformer.cli ...` is the same as `keras-transformer ...`.
"""

from .commands import main

__all__ = ["main"]
