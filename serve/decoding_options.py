"""`DecodingOptions`: how to decode, validated in one place for the Python API, the CLI and HTTP.

    >>> DecodingOptions(beam_size=4, length_penalty=0.6)
    DecodingOptions(beam_size=4, max_length=None, length_penalty=0.6, batch_size=32)
    >>> DecodingOptions(beam_size=0)
    ValueError: beam_size: expected an int >= 1, got 0

`Translator.translate(texts, **options)` builds one from its keyword arguments; the CLI passes its
flags through the same keywords; the HTTP server parses a JSON body with `from_json`, which reports
types in JSON's words ("expected an integer, got string") and can apply the server's tighter bounds
(`JsonLimits`). Every message starts with the option's name.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class DecodingOptions:
    """How to decode. Names follow CTranslate2's `translate_batch` where it has the same option.

    Args:
        beam_size: 1 for greedy decoding (or sampling), K > 1 for beam search with K beams.
        max_length: most target tokens per sentence, EOS included; None (or anything above the
            model's `max_target_length`, where positional encodings end) means that maximum.
        length_penalty: beams rank by log-prob sum / (tokens + 1) ** length_penalty, as CTranslate2
            (same default, 1.0: the mean log-prob per token), fairseq and Hugging Face; 0: the raw sum.
        batch_size: sentences per encoder/decoder batch (sorted by source length first).
        num_hypotheses: how many hypotheses to return per text (n-best), at most beam_size.
        patience: beam search stops a sentence once it has round(beam_size * patience) finished
            hypotheses, as CTranslate2 and fairseq do (1.0, their default), or earlier when no live
            beam can still win; float("inf") waits for the latter alone (exact for the beam, slower).
        return_scores: compute each hypothesis' score in greedy search too (beam search always has them).
        sampling_topk: 1 = take the most likely token; K > 1 = sample among the K most likely;
            0 = sample from the whole vocabulary. Sampling needs beam_size 1.
        sampling_topp: sample only from the smallest set of tokens whose probability reaches p (nucleus).
        sampling_temperature: divides the logits before sampling (< 1 sharper, > 1 flatter).
        seed: makes sampling reproducible: each text's draws come from a generator seeded with
            (seed, its source ids), so a text's sample also does not depend on its batch.
        no_repeat_ngram_size: n > 0 bans any token that would repeat an n-gram of the output.
        repetition_penalty: p > 1 lowers the logits of tokens already generated (CTRL); 1 = off.

    Raises:
        TypeError: an option of the wrong type ("beam_size: expected an int, got str").
        ValueError: a value out of range ("beam_size: expected an int >= 1, got 0").
    """

    beam_size: int = 1
    max_length: int | None = None
    length_penalty: float = 1.0
    batch_size: int = 32
    num_hypotheses: int = 1
    patience: float = 1.0
    return_scores: bool = False
    sampling_topk: int = 1
    sampling_topp: float = 1.0
    sampling_temperature: float = 1.0
    seed: int | None = None
    no_repeat_ngram_size: int = 0
    repetition_penalty: float = 1.0

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            checked = _check(field.name, value, _PYTHON_WORDS, **_BOUNDS[field.name])
            object.__setattr__(self, field.name, checked)
        if self.num_hypotheses > self.beam_size:
            raise ValueError(f"num_hypotheses: expected at most beam_size ({self.beam_size}), got "
                             f"{self.num_hypotheses}")
        if self.sampling_topk != 1 and self.beam_size != 1:
            raise ValueError(f"sampling_topk: sampling (top-k != 1) needs beam_size 1, got beam_size {self.beam_size}")

    @property
    def samples(self) -> bool:
        """True when tokens are drawn at random (sampling_topk != 1) rather than taken by argmax."""
        return self.sampling_topk != 1

    def capped_max_length(self, model_max_length: int) -> int:
        """`max_length`, or the model's maximum when None or larger."""
        return model_max_length if self.max_length is None else min(self.max_length, model_max_length)

    @classmethod
    def from_json(cls, values: dict, limits: "JsonLimits | None" = None) -> "DecodingOptions":
        """Options from a parsed JSON object (only the option fields), phrased in JSON's type names.

        Raises:
            ValueError: "beam_size: expected an integer 1..16, got 17", "length_penalty: expected
                a number, got string", an unknown field, ...
        """
        limits = limits or JsonLimits()
        names = [field.name for field in dataclasses.fields(cls)]
        unknown = sorted(set(values) - set(names))
        if unknown:
            raise ValueError(f"expected fields {', '.join(names)}, got unknown field {unknown[0]!r}")
        checked = {}
        for name, value in values.items():
            bounds = {**_BOUNDS[name], **limits.bounds.get(name, {})}
            if value is None and not bounds["optional"]:
                value = getattr(cls, name)  # JSON null = the default
            checked[name] = _check(name, value, _JSON_WORDS, **bounds)
        return cls(**checked)


@dataclass(frozen=True)
class JsonLimits:
    """Tighter bounds a server puts on client-chosen options (resource caps), by field name."""

    bounds: dict = dataclasses.field(default_factory=dict)


# Per field: the kind of value and its range (high None = unbounded); optional = None is allowed.
_BOUNDS = {
    "beam_size": dict(kind="int", low=1, high=None, optional=False),
    "max_length": dict(kind="int", low=1, high=None, optional=True),
    "length_penalty": dict(kind="float", low=None, high=None, optional=False),
    "batch_size": dict(kind="int", low=1, high=None, optional=False),
    "num_hypotheses": dict(kind="int", low=1, high=None, optional=False),
    "patience": dict(kind="float", low=1.0, high=None, optional=False, infinite=True),
    "return_scores": dict(kind="bool", low=None, high=None, optional=False),
    "sampling_topk": dict(kind="int", low=0, high=None, optional=False),
    "sampling_topp": dict(kind="float", low=1e-9, high=1.0, optional=False),
    "sampling_temperature": dict(kind="float", low=1e-6, high=None, optional=False),
    "seed": dict(kind="int", low=0, high=2**32 - 1, optional=True),
    "no_repeat_ngram_size": dict(kind="int", low=0, high=None, optional=False),
    "repetition_penalty": dict(kind="float", low=1e-6, high=None, optional=False),
}

# How messages name kinds and types: Python's words for the API, JSON's for HTTP bodies.
_PYTHON_WORDS = {"int": "an int", "float": "a float", "bool": "a bool", "type": lambda value: type(value).__name__}
_JSON_WORDS = {"int": "an integer", "float": "a number", "bool": "a boolean", "type": lambda value: json_type_name(value)}


def _check(name, value, words, kind, low, high, optional, infinite=False):
    if value is None and optional:
        return None
    if kind == "bool":
        if not isinstance(value, (bool, np.bool_)):
            raise TypeError(f"{name}: expected {words['bool']}, got {words['type'](value)}")
        return bool(value)
    is_int = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
    is_number = is_int or (isinstance(value, (float, np.floating)) and not isinstance(value, bool))
    if not (is_int if kind == "int" else is_number):
        raise TypeError(f"{name}: expected {words[kind]}, got {words['type'](value)}")
    value = int(value) if kind == "int" else float(value)
    if kind == "float" and not math.isfinite(value) and low is None and high is None:
        raise ValueError(f"{name}: expected a finite number, got {value}")
    in_range = (math.isfinite(value) or (infinite and value == math.inf)) and (low is None or value >= low) and (high is None or value <= high)
    if not in_range:
        if kind == "float" and low is not None and 0 < low < 1e-3:  # "> 0", said plainly
            bounds = f"in (0, {high:g}]" if high is not None else "> 0"
            raise ValueError(f"{name}: expected a number {bounds}, got {value}")
        show = (lambda bound: str(int(bound))) if kind == "int" else (lambda bound: f"{bound:g}")
        bounds = f"{show(low)}..{show(high)}" if high is not None else f">= {show(low)}"
        wanted = f"{words['int']} {bounds}" if kind == "int" else f"a number {'in ' if high is not None else ''}{bounds}"
        raise ValueError(f"{name}: expected {wanted}, got {value}")
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


def search_settings(options: DecodingOptions):
    """The decoding loop's view of `options` (`serve.decoding.SearchSettings`)."""
    from .decoding import SearchSettings
    from .logits_processing import LogitsSettings

    return SearchSettings(
        beam_size=options.beam_size, num_hypotheses=options.num_hypotheses, length_penalty=options.length_penalty,
        patience=options.patience,
        return_scores=options.return_scores,
        logits=LogitsSettings(repetition_penalty=options.repetition_penalty,
                              no_repeat_ngram_size=options.no_repeat_ngram_size,
                              sampling_topk=options.sampling_topk, sampling_topp=options.sampling_topp,
                              sampling_temperature=options.sampling_temperature))
