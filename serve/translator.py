"""`Translator`: a bundle directory -> translations, with onnxruntime, numpy and the tokenizers alone.

    >>> from serve import Translator
    >>> translator = Translator("bundle/")
    >>> translator.translate(["How are you?", ""], beam_size=4)
    ['आप कैसे हैं?', '']

Per call: validate the inputs, tokenize (source ids = tokens + [EOS], cut to `max_source_length`),
sort the non-blank sentences by source length, and decode them in batches of `batch_size`: the
encoder runs once per batch, then the cached decoder step until every sentence has ended or the
length cap is reached (`serve.decoding`). Results come back in input order.

A sentence's translation does not depend on the batch it lands in: padding is masked as a key,
each sentence's search runs on its own rows, and ties break by index. Thread-safe: the two
onnxruntime sessions and the tokenizers are shared read-only, everything else is local to a call.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from serve import bundle_format as fmt
from serve import decoding
from serve.bundle import read_bundle_config
from serve.onnx_model import OnnxStepModel
from serve.tokenizer import SubwordTokenizer


class TruncationWarning(UserWarning):
    """Some source texts were longer than the model's `max_source_length` and were cut to fit."""


class Translator:
    """Translates text with an exported bundle (see `serve/bundle_format.py`).

    Args:
        bundle_dir: the directory `keras-transformer export` wrote.
        threads: onnxruntime intra-op threads per session; None = 1 (see serve/onnx_model.py).

    Raises:
        BundleError: (a ValueError) if the directory is missing, not a bundle, of another format
            version, or a file is missing, truncated or changed (sha256 mismatch); the message names the file.
    """

    def __init__(self, bundle_dir, threads: int | None = None):
        if threads is not None and (not _is_int(threads) or threads < 1):
            raise ValueError(f"threads: expected a positive int or None, got {threads!r}")
        self.bundle = read_bundle_config(bundle_dir)
        self.model = OnnxStepModel(self.bundle, threads=threads)
        self.source_tokenizer = SubwordTokenizer.from_file(self.bundle.file(fmt.SOURCE_TOKENIZER_FILE))
        self.target_tokenizer = SubwordTokenizer.from_file(self.bundle.file(fmt.TARGET_TOKENIZER_FILE))
        self.threads = threads

    @property
    def path(self) -> Path:
        return self.bundle.path

    @property
    def max_source_length(self) -> int:
        """Most source tokens the encoder accepts, EOS included."""
        return self.bundle.max_source_length

    @property
    def max_target_length(self) -> int:
        """Most target tokens generated, EOS included: the default and the cap of `max_length`."""
        return self.bundle.max_target_length

    def info(self) -> dict:
        """What a health check reports: the bundle and its model's sizes (JSON-serializable)."""
        values = self.bundle.values
        model = self.bundle.model
        return {
            "bundle": str(self.path),
            "format_version": values.get("format_version"),
            "quantization": values.get("quantization"),
            "opset": values.get("opset"),
            "model": {key: model.get(key) for key in ("num_layers", "num_heads", "hidden_dim", "intermediate_dim",
                                                     "max_source_length", "max_target_length")},
            "source_vocab_size": self.source_tokenizer.vocab_size,
            "target_vocab_size": self.target_tokenizer.vocab_size,
        }

    def translate(
        self,
        texts: Sequence[str],
        beam_size: int = 1,
        max_length: int | None = None,
        batch_size: int = 32,
        length_penalty: float = 1.0,
        progress: Callable[[int], None] | None = None,
    ) -> list[str]:
        """Translates each text; blank texts give "" without running the model.

        A text whose tokens plus EOS exceed `max_source_length` is cut to fit; if any was, ONE
        `TruncationWarning` (via `warnings.warn`) is issued for the whole call, naming how many and
        the first index. Characters the tokenizer never saw become [UNK].

        Args:
            texts: a list or tuple of str.
            beam_size: 1 for greedy decoding, K > 1 for beam search with K beams.
            max_length: most target tokens per sentence, EOS included; None (or anything above the
                bundle's `max_target_length`, where positional encodings end) means that maximum.
            batch_size: sentences per encoder/decoder batch (sorted by source length first).
            length_penalty: alpha of the GNMT length penalty used to rank beams (0: raw log-prob sum).
            progress: called with the number of sentences finished after each batch (blank ones
                count at once), e.g. to draw a progress bar.

        Returns:
            One translation per text, in input order.

        Raises:
            TypeError: `texts` is not a list/tuple, an element is not a str ("texts[2]: expected
                str, got int"), or an option has the wrong type.
            ValueError: beam_size, max_length or batch_size below 1, or length_penalty not finite.
        """
        texts = _checked_texts(texts)
        beam_size = _checked_positive_int("beam_size", beam_size)
        batch_size = _checked_positive_int("batch_size", batch_size)
        max_length = self.max_target_length if max_length is None else _checked_positive_int("max_length", max_length)
        max_length = min(max_length, self.max_target_length)
        if isinstance(length_penalty, bool) or not isinstance(length_penalty, (int, float)):
            raise TypeError(f"length_penalty: expected a float, got {type(length_penalty).__name__}")
        if not math.isfinite(length_penalty):
            raise ValueError(f"length_penalty: expected a finite number, got {length_penalty}")

        results = [""] * len(texts)
        todo = [i for i, text in enumerate(texts) if text.strip()]  # blank texts stay ""
        if progress is not None and len(todo) < len(texts):
            progress(len(texts) - len(todo))
        sources = self._source_ids([texts[i] for i in todo], todo)
        order = sorted(range(len(todo)), key=lambda j: (len(sources[j]), j))  # shortest first, stable
        for start in range(0, len(order), batch_size):
            batch = order[start:start + batch_size]
            state = self.model.start(pad_batch([sources[j] for j in batch]))
            outputs = decoding.beam_search(self.model, state, len(batch), fmt.BOS_ID, fmt.EOS_ID, max_length,
                                           beam_size, float(length_penalty))
            for j, text in zip(batch, self.target_tokenizer.decode_batch(outputs), strict=True):
                results[todo[j]] = text
            if progress is not None:
                progress(len(batch))
        return results

    def _source_ids(self, texts: list[str], indices: list[int]) -> list[list[int]]:
        """Token ids + [EOS] per text, cut to `max_source_length` (one warning for the whole call)."""
        limit = self.max_source_length - 1  # room for EOS
        encoded = self.source_tokenizer.encode_batch(texts) if texts else []
        too_long = [k for k, ids in enumerate(encoded) if len(ids) > limit]
        if too_long:
            first = too_long[0]
            warnings.warn(
                f"{len(too_long)} of {len(texts)} texts exceed max_source_length {self.max_source_length} "
                f"(tokens + EOS) and were truncated to fit (first: texts[{indices[first]}], "
                f"{len(encoded[first]) + 1} tokens)", TruncationWarning, stacklevel=3)
        return [ids[:limit] + [fmt.EOS_ID] for ids in encoded]

    def __repr__(self) -> str:
        return f"Translator({str(self.path)!r}, threads={self.threads})"


def pad_batch(rows: list[list[int]]) -> np.ndarray:
    """Token id lists -> int32 (B, S) with S the longest row, right-padded with PAD_ID."""
    out = np.full((len(rows), max(len(row) for row in rows)), fmt.PAD_ID, dtype=np.int32)  # (B, S)
    for i, row in enumerate(rows):
        out[i, :len(row)] = row
    return out


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _checked_positive_int(name: str, value) -> int:
    if not _is_int(value):
        raise TypeError(f"{name}: expected an int, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name}: expected an int >= 1, got {value}")
    return int(value)


def _checked_texts(texts) -> list[str]:
    if not isinstance(texts, (list, tuple)):
        hint = " (wrap a single text in a list)" if isinstance(texts, (str, bytes)) else ""
        raise TypeError(f"texts: expected a list of str, got {type(texts).__name__}{hint}")
    checked = []
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"texts[{i}]: expected str, got {type(text).__name__}")
        checked.append(_valid_unicode(text))
    return checked


def _valid_unicode(text: str) -> str:
    """`text` with lone surrogates (possible from JSON "\\ud800" escapes) replaced by U+FFFD, which
    the tokenizer maps to [UNK] like any unseen character; the tokenizers library rejects them."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
