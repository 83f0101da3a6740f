"""A thin, TensorFlow-free wrapper around a tokenizers-library subword tokenizer.

Training (`keras_transformer`) and inference (`serve`) both see text only through this class, so the
two always tokenize alike. Ids 0..3 are the special tokens of `serve.bundle_format`:

    0 [PAD]   pads a batch; masked as a key everywhere
    1 [BOS]   first decoder input
    2 [EOS]   ends the source and the target
    3 [UNK]   any character the tokenizer never saw in training (there is no byte fallback)

`encode` adds none of them; the data pipeline and the decoding loop add [BOS]/[EOS] themselves.

Example:
    >>> tok = SubwordTokenizer.from_file("run/source.tokenizer.json")
    >>> ids = tok.encode("How are you?")          # [412, 97, 55, 18]  (no [BOS]/[EOS])
    >>> tok.decode(ids + [EOS_ID, PAD_ID])
    'How are you?'
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from tokenizers import Tokenizer

from .atomic_files import atomic_write_text
from .bundle_format import BOS_ID, EOS_ID, PAD_ID, SPECIAL_TOKENS
from .errors import KerasTransformerError, OptionError

# Ids that `decode` drops. [UNK] is kept: it decodes to the literal "[UNK]", so that a lost
# character stays visible in a translation instead of vanishing silently.
_DROPPED_IDS = frozenset({PAD_ID, BOS_ID, EOS_ID})
PARALLEL_FROM = 32  # texts from which encode_batch/decode_batch use the library's thread pool


class TokenizerError(KerasTransformerError, ValueError):
    """A tokenizer file or text that cannot be used; the message names where it came from."""


class SubwordTokenizer:
    """Wraps a `tokenizers.Tokenizer` whose ids 0..3 are [PAD] [BOS] [EOS] [UNK].

    Args:
        tokenizer: a loaded `tokenizers.Tokenizer`; its special tokens must sit at ids 0..3.
        source: where it came from (a path), used in error messages.

    Raises:
        TokenizerError: (a ValueError) if the special tokens are not `SPECIAL_TOKENS` at ids 0..3.
    """

    def __init__(self, tokenizer: Tokenizer, source: str = "<tokenizer>"):
        found = [tokenizer.id_to_token(i) for i in range(len(SPECIAL_TOKENS))]
        if found != SPECIAL_TOKENS:
            raise TokenizerError(
                f"{source}: expected special tokens {SPECIAL_TOKENS} at ids 0..{len(SPECIAL_TOKENS) - 1}, "
                f"got {found}"
            )
        # Text such as "[EOS]" typed by a user is ordinary text, never the special id: without this,
        # the tokenizers library would match added special tokens inside the input.
        tokenizer.encode_special_tokens = True
        self._tokenizer = tokenizer
        self._source = source

    # ------------------------------------------------------------------ loading and saving

    @classmethod
    def from_str(cls, json_text: str, source: str = "<string>") -> "SubwordTokenizer":
        """Loads a tokenizer from its JSON text (what `tokenizers.Tokenizer.to_str` writes).

        Raises:
            TokenizerError: (a ValueError) if the text is not JSON, not a tokenizer, or has the wrong special ids.
        """
        try:
            json.loads(json_text)
        except json.JSONDecodeError as error:
            raise TokenizerError(
                f"{source}: expected a tokenizers-library JSON file, got invalid JSON "
                f"(line {error.lineno}, column {error.colno}: {error.msg})"
            ) from None
        try:
            tokenizer = Tokenizer.from_str(json_text)
        except Exception as error:  # the library raises a bare Exception for a bad layout
            raise TokenizerError(
                f"{source}: expected a tokenizers-library tokenizer, got JSON it cannot load ({error})"
            ) from None
        return cls(tokenizer, source=source)

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> "SubwordTokenizer":
        """Loads a `*.tokenizer.json` file.

        Raises:
            FileNotFoundError: if `path` does not exist.
            TokenizerError: (a ValueError) if it is a directory, not UTF-8, not JSON, not a tokenizer, or has the
                wrong special ids; the message names the path.
        """
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"tokenizer file not found: {path}")
        if path.is_dir():
            raise TokenizerError(f"{path}: expected a tokenizer JSON file, got a directory")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as error:
            raise TokenizerError(
                f"{path}: expected a UTF-8 tokenizer JSON file, got undecodable byte at offset {error.start}"
            ) from None
        return cls.from_str(text, source=str(path))

    def to_str(self) -> str:
        """The tokenizer's JSON text."""
        return self._tokenizer.to_str()

    def save(self, path: str | os.PathLike) -> None:
        """Writes the JSON file atomically: a temporary file in the same directory, then `os.replace`."""
        path = Path(path)
        if not path.parent.is_dir():
            raise FileNotFoundError(f"cannot save tokenizer to {path}: directory {path.parent} does not exist")
        text = self.to_str()
        atomic_write_text(path, text)

    # ------------------------------------------------------------------ text -> ids

    @property
    def vocab_size(self) -> int:
        """Number of ids, special tokens included; logits have this many classes."""
        return self._tokenizer.get_vocab_size(with_added_tokens=True)

    @property
    def tokenizer(self) -> Tokenizer:
        """The wrapped `tokenizers.Tokenizer`."""
        return self._tokenizer

    def encode(self, text: str) -> list[int]:
        """Subword ids of `text`, without [BOS]/[EOS]."""
        return self._tokenizer.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """`encode` for many texts at once (the library runs a large batch on several threads).

        Fewer than `PARALLEL_FROM` texts are encoded one by one in this thread: waking the library's
        thread pool costs more than it saves, and a busy server's event loop would wait for it.
        """
        if len(texts) < PARALLEL_FROM:
            return [self.encode(text) for text in texts]
        encodings = self._tokenizer.encode_batch(list(texts), add_special_tokens=False)
        return [encoding.ids for encoding in encodings]

    def tokens(self, text: str) -> list[str]:
        """The subword strings of `text` (e.g. `['▁How', '▁are', '▁you', '?']`), for plot labels."""
        return self._tokenizer.encode(text, add_special_tokens=False).tokens

    # ------------------------------------------------------------------ ids -> text

    def _clean(self, ids: Iterable[int]) -> list[int]:
        """Cuts `ids` at the first [EOS], drops [PAD]/[BOS], checks the range."""
        if not isinstance(ids, np.ndarray):
            ids = list(ids)
        cleaned, vocab_size = [], self.vocab_size
        for token_id in np.asarray(ids, dtype=np.int64).reshape(-1).tolist():
            if token_id == EOS_ID:
                break
            if token_id in _DROPPED_IDS:
                continue
            if not 0 <= token_id < vocab_size:
                raise OptionError(f"expected token ids in 0..{vocab_size - 1}, got {token_id}")
            cleaned.append(token_id)
        return cleaned

    def decode(self, ids: Iterable[int]) -> str:
        """Detokenized text of `ids`.

        Stops at the first [EOS], skips [PAD] and [BOS]; [UNK] decodes to the literal "[UNK]".
        Accepts a list or a 1-D numpy array.
        """
        return self._tokenizer.decode(self._clean(ids), skip_special_tokens=False)

    def decode_batch(self, ids_list: Iterable[Iterable[int]]) -> list[str]:
        """`decode` for each row (a list of lists or a 2-D numpy array, rows padded with [PAD])."""
        cleaned = [self._clean(ids) for ids in ids_list]
        if len(cleaned) < PARALLEL_FROM:  # as in encode_batch
            return [self._tokenizer.decode(ids, skip_special_tokens=False) for ids in cleaned]
        return self._tokenizer.decode_batch(cleaned, skip_special_tokens=False)

    def __repr__(self) -> str:
        return f"SubwordTokenizer(vocab_size={self.vocab_size}, source={self._source!r})"
