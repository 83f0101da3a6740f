"""`DecodingOptions`: how to decode, declared once for the Python API, the decoding loop, the CLI and HTTP.

    >>> DecodingOptions(beam_size=4, length_penalty=0.6)
    DecodingOptions(beam_size=4, max_length=None, length_penalty=0.6, batch_size=32, ...)
    >>> DecodingOptions(beam_size=0)
    OptionError: beam_size: expected an int >= 1, got 0

Each field carries its default, its range and its help text (`dataclasses.fields(...)[i].metadata`):
the CLI builds its flags from them, the HTTP server its list of accepted fields, and the decoding
loop reads the options themselves, so a default or a meaning is written here and nowhere else.
`from_json` reports types in JSON's words ("expected an integer, got string") and applies a
server's tighter bounds (`JsonLimits`). Every message starts with the option's name.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from .errors import OptionError, OptionTypeError


def _option(default, kind: str, help: str, low=None, high=None, optional=False, infinite=False, metavar=None,
            choices=None):
    """A field of `DecodingOptions`: its default, its kind ("int", "float", "bool", "str"), its range (None =
    unbounded; `infinite` admits +inf; `choices` for a str), whether None is allowed, and its help text."""
    bounds = dict(kind=kind, low=low, high=high, optional=optional, infinite=infinite, choices=choices)
    return dataclasses.field(default=default, metadata={"bounds": bounds, "help": help, "metavar": metavar})


@dataclass(frozen=True)
class DecodingOptions:
    """How to decode. Names follow CTranslate2's `translate_batch` where it has the same option.

    A hypothesis' score is its log-probability sum (EOS included) divided by `len ** length_penalty`,
    with `len` = its tokens + 1 (serve/decoding.py). The fields:

    Raises:
        OptionTypeError: an option of the wrong type ("beam_size: expected an int, got str").
        OptionError: a value out of range ("beam_size: expected an int >= 1, got 0") or options
            that do not go together (sampling with beam search, more hypotheses than beams).
    """

    beam_size: int = _option(1, "int", low=1, metavar="N",
                             help="1 = greedy search (or sampling); N > 1 = beam search with N beams")
    max_length: int | None = _option(None, "int", low=1, optional=True, metavar="N",
                                     help="most target tokens per sentence, EOS included; none (or more than the "
                                          "model's max_target_length) = that maximum")
    length_penalty: float = _option(1.0, "float", metavar="ALPHA",
                                    help="hypotheses rank by log-prob sum / (tokens + 1) ** ALPHA, as CTranslate2, "
                                         "fairseq and Hugging Face; 1 = mean log-prob per token, 0 = the raw sum")
    batch_size: int = _option(32, "int", low=1, metavar="N",
                              help="most sentences per encoder/decoder batch (sorted by source length first), or "
                                   "with batch_type tokens most padded source tokens (sentences x longest)")
    batch_type: str = _option("examples", "str", choices=("examples", "tokens"), metavar="TYPE",
                              help="what batch_size counts: sentences (examples) or padded source tokens (tokens), "
                                   "as CTranslate2")
    num_hypotheses: int = _option(1, "int", low=1, metavar="N",
                                  help="hypotheses returned per text (n-best list), at most beam_size")
    patience: float = _option(1.0, "float", low=1.0, infinite=True, metavar="P",
                              help="beam search stops a sentence after round(beam_size x P) finished hypotheses "
                                   "(CTranslate2's and fairseq's rule), or earlier when no live beam can win; "
                                   "inf = only then (exact for the beam, slower)")
    return_scores: bool = _option(False, "bool",
                                  help="compute each hypothesis' score in greedy search too (beam search always has)")
    sampling_topk: int = _option(1, "int", low=0, metavar="K",
                                 help="1 = take the most likely token; K > 1 = sample among the K most likely; "
                                      "0 = sample from the whole vocabulary (sampling needs beam_size 1)")
    sampling_topp: float = _option(1.0, "float", low=1e-9, high=1.0, metavar="P",
                                   help="sample only from the smallest set of tokens whose probability reaches P "
                                        "(nucleus sampling)")
    sampling_temperature: float = _option(1.0, "float", low=1e-6, metavar="T",
                                          help="logits are divided by T before sampling (< 1 sharper, > 1 flatter)")
    seed: int | None = _option(None, "int", low=0, high=2**32 - 1, optional=True, metavar="S",
                               help="makes sampling reproducible: each text's draws come from a generator seeded "
                                    "with (S, its source ids), so they do not depend on its batch either")
    no_repeat_ngram_size: int = _option(0, "int", low=0, metavar="N",
                                        help="N > 0 bans any token that would repeat an n-gram of size N of the "
                                             "output; 0 = off")
    repetition_penalty: float = _option(1.0, "float", low=1e-6, metavar="P",
                                        help="P > 1 lowers the logits of tokens already generated (CTRL); 1 = off")
    use_shortlist: bool = _option(True, "bool",
                                  help="with a bundle exported with --shortlist, each sentence produces only its "
                                       "source tokens' likely target tokens and a step computes only those logits "
                                       "(CTranslate2's use_vmap); False: the whole vocabulary, as fast as a "
                                       "bundle exported without --shortlist")

    def __post_init__(self):
        for field in dataclasses.fields(self):
            checked = _check(field.name, getattr(self, field.name), _PYTHON_WORDS, **field.metadata["bounds"])
            object.__setattr__(self, field.name, checked)
        if self.num_hypotheses > self.beam_size:
            raise OptionError(f"num_hypotheses: expected at most beam_size ({self.beam_size}), got "
                              f"{self.num_hypotheses}")
        if self.sampling_topk != 1 and self.beam_size != 1:
            raise OptionError(f"sampling_topk: sampling (top-k != 1) needs beam_size 1, got beam_size "
                              f"{self.beam_size}")

    @property
    def samples(self) -> bool:
        """True when tokens are drawn at random (sampling_topk != 1) rather than taken by argmax."""
        return self.sampling_topk != 1

    @property
    def changes_logits(self) -> bool:
        """True when a penalty or a ban rewrites the logits before a token is chosen."""
        return self.repetition_penalty != 1.0 or self.no_repeat_ngram_size > 0

    def capped_max_length(self, model_max_length: int) -> int:
        """`max_length`, or the model's maximum when None or larger."""
        return model_max_length if self.max_length is None else min(self.max_length, model_max_length)

    def changed(self) -> dict:
        """The fields whose value differs from the default, by name."""
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(self)
                if getattr(self, field.name) != field.default}

    @classmethod
    def from_json(cls, values: dict, limits: JsonLimits | None = None) -> DecodingOptions:
        """Options from a parsed JSON object (only the option fields), phrased in JSON's type names.

        Raises:
            OptionError: "beam_size: expected an integer 1..16, got 17", an unknown field, ...
            OptionTypeError: "length_penalty: expected a number, got string".
        """
        limits = limits or JsonLimits()
        fields = {field.name: field for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(fields))
        if unknown:
            raise OptionError(f"expected fields {', '.join(fields)}, got unknown field {unknown[0]!r}")
        checked = {}
        for name, value in values.items():
            bounds = {**fields[name].metadata["bounds"], **limits.bounds.get(name, {})}
            if value is None and not bounds["optional"]:
                value = fields[name].default  # JSON null = the default
            checked[name] = _check(name, value, _JSON_WORDS, **bounds)
        return cls(**checked)


DecodingOptions.__doc__ += "".join(  # the Args section, from the fields' own help
    f"\n    {field.name} (default {field.default!r}): {field.metadata['help']}."
    for field in dataclasses.fields(DecodingOptions))


@dataclass(frozen=True)
class JsonLimits:
    """Tighter bounds a server puts on client-chosen options (resource caps), by field name."""

    bounds: dict = dataclasses.field(default_factory=dict)


# How messages name kinds and types: Python's words for the API, JSON's for HTTP bodies.
_PYTHON_WORDS = {"int": "an int", "float": "a float", "bool": "a bool", "str": "a str",
                 "type": lambda value: type(value).__name__}
_JSON_WORDS = {"int": "an integer", "float": "a number", "bool": "a boolean", "str": "a string",
               "type": lambda value: json_type_name(value)}


def _check(name, value, words, kind, low, high, optional, infinite=False, choices=None):
    if value is None and optional:
        return None
    if kind == "str":
        if not isinstance(value, str):
            raise OptionTypeError(f"{name}: expected {words['str']}, got {words['type'](value)}")
        if value not in choices:
            raise OptionError(f"{name}: expected one of {', '.join(choices)}, got {value!r}")
        return value
    if kind == "bool":
        if not isinstance(value, (bool, np.bool_)):
            raise OptionTypeError(f"{name}: expected {words['bool']}, got {words['type'](value)}")
        return bool(value)
    is_int = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
    is_number = is_int or (isinstance(value, (float, np.floating)) and not isinstance(value, bool))
    if not (is_int if kind == "int" else is_number):
        raise OptionTypeError(f"{name}: expected {words[kind]}, got {words['type'](value)}")
    value = int(value) if kind == "int" else float(value)
    if kind == "float" and not math.isfinite(value) and low is None and high is None:
        raise OptionError(f"{name}: expected a finite number, got {value}")
    in_range = ((math.isfinite(value) or (infinite and value == math.inf))
                and (low is None or value >= low) and (high is None or value <= high))
    if not in_range:
        if kind == "float" and low is not None and 0 < low < 1e-3:  # "> 0", said plainly
            bounds = f"in (0, {high:g}]" if high is not None else "> 0"
            raise OptionError(f"{name}: expected a number {bounds}, got {value}")
        show = (lambda bound: str(int(bound))) if kind == "int" else (lambda bound: f"{bound:g}")
        bounds = f"{show(low)}..{show(high)}" if high is not None else f">= {show(low)}"
        wanted = (f"{words['int']} {bounds}" if kind == "int"
                  else f"a number {'in ' if high is not None else ''}{bounds}")
        raise OptionError(f"{name}: expected {wanted}, got {value}")
    return value


def json_type_name(value) -> str:
    """The JSON name of a parsed value's type: string, number, boolean, null, array, object."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return {str: "string", list: "array", dict: "object"}.get(type(value), type(value).__name__)
