"""The project's own errors: every problem a caller can act on (a bad option, file, corpus or bundle)
is a `KerasTransformerError`, so the command line can print those as one line and let any other
exception (a bug) keep its traceback.

Each also derives from the built-in type a Python caller would expect (`ValueError`, `TypeError`,
`RuntimeError`), so `except ValueError` keeps working. It lives in `serve/` because the runtime
imports nothing else of ours; the model package and `export` import it from here.
"""


class KerasTransformerError(Exception):
    """Base of the errors this project raises for a caller to act on."""


class OptionError(KerasTransformerError, ValueError):
    """An option, argument or setting out of range, or options that do not go together."""


class OptionTypeError(KerasTransformerError, TypeError):
    """An option or argument of the wrong type."""
