"""Training a subword (BPE) tokenizer for one language of the corpus.

The paper (section 5.1) uses byte-pair encoding; we train one BPE per language with the tokenizers
library and wrap it in `serve.tokenizer.SubwordTokenizer`. The pipeline, text → ids:

    normalizer     NFC, every whitespace run → one space, strip
    pre-tokenizer  Metaspace: " " → "▁", split before each "▁" ("▁How", "▁are", "▁you?")
                   Punctuation: each punctuation mark its own piece ("▁you", "?"; Hindi "है", "।")
    model          BPE learned on those pieces; a character never seen in training → [UNK] (id 3),
                   no byte fallback

and ids → text with the Metaspace decoder ("▁" → " ", the first one dropped). Every space survives
as a "▁" inside some piece, so `decode(encode(s)) == s` for any whitespace-normalized NFC text whose
characters were all seen in training, whatever the script.

Example:
    >>> tok = train_tokenizer(["How are you?", "I am fine."] * 10, vocab_size=100)
    >>> tok.decode(tok.encode("How are you?"))
    'How are you?'
"""

from __future__ import annotations

import itertools
from typing import Iterable, Iterator, Sequence

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

from keras_transformer.serve.bundle_format import SPECIAL_TOKENS
from keras_transformer.serve.tokenizer import SubwordTokenizer
from keras_transformer.serve.errors import OptionError

UNK_TOKEN = SPECIAL_TOKENS[3]


def _untrained_tokenizer() -> Tokenizer:
    tokenizer = Tokenizer(models.BPE(unk_token=UNK_TOKEN, byte_fallback=False))
    tokenizer.normalizer = normalizers.Sequence(
        [normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "), normalizers.Strip()]
    )
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True), pre_tokenizers.Punctuation()]
    )
    tokenizer.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    return tokenizer


def train_tokenizer(texts: Iterable[str], vocab_size: int, min_frequency: int = 2) -> SubwordTokenizer:
    """Learns a BPE tokenizer from `texts` (one language).

    Args:
        texts: sentences; any iterable, read once (a generator is fine).
        vocab_size: the target number of ids, special tokens included. Every character seen in
            training is kept, so a tiny corpus with many characters may give a few more.
        min_frequency: a pair must occur this often to be merged.

    Returns:
        A `SubwordTokenizer` with [PAD] [BOS] [EOS] [UNK] at ids 0..3. Training is deterministic:
        the same texts give byte-identical JSON.

    Raises:
        ValueError: for a `vocab_size` below 5, a `min_frequency` below 1, or no non-empty text.
    """
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size <= len(SPECIAL_TOKENS):
        raise OptionError(f"expected vocab_size to be an integer > {len(SPECIAL_TOKENS)}, got {vocab_size!r}")
    if isinstance(min_frequency, bool) or not isinstance(min_frequency, int) or min_frequency < 1:
        raise OptionError(f"expected min_frequency to be an integer >= 1, got {min_frequency!r}")
    if isinstance(texts, str):
        raise OptionError("expected an iterable of sentences, got a single str")

    non_empty = 0

    def counted(items: Iterable[str]) -> Iterator[str]:
        nonlocal non_empty
        for item in items:
            if not isinstance(item, str):
                raise OptionError(f"expected str sentences, got {type(item).__name__}: {item!r}")
            if item.strip():
                non_empty += 1
            yield item

    tokenizer = _untrained_tokenizer()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(SPECIAL_TOKENS),  # added first, so they get ids 0..3
        show_progress=False,
    )
    tokenizer.train_from_iterator(counted(texts), trainer=trainer)
    if non_empty == 0:
        raise OptionError("expected at least one non-empty sentence to train a tokenizer on, got none")
    return SubwordTokenizer(tokenizer, source="<trained>")


def train_tokenizers(pairs: Sequence[tuple[str, str]], source_vocab_size: int, target_vocab_size: int,
                     shared_vocab: bool = False) -> tuple[SubwordTokenizer, SubwordTokenizer]:
    """(source, target) tokenizers learned from (source, target) pairs: one per side, or with
    `shared_vocab` one BPE learned on the sources then the targets, returned as both.

    `train` and `prepare` both call this, so a corpus gives the same tokenizers either way.

    Raises:
        ValueError: `shared_vocab` with two vocabulary sizes, or what `train_tokenizer` raises.
    """
    if shared_vocab:
        if source_vocab_size != target_vocab_size:
            raise OptionError(f"shared_vocab: expected one vocabulary size, got source_vocab_size="
                             f"{source_vocab_size} and target_vocab_size={target_vocab_size}")
        shared = train_tokenizer(itertools.chain((s for s, _ in pairs), (t for _, t in pairs)), source_vocab_size)
        return shared, shared
    return (train_tokenizer((s for s, _ in pairs), source_vocab_size),
            train_tokenizer((t for _, t in pairs), target_vocab_size))


def with_bpe_dropout(tokenizer: SubwordTokenizer, dropout: float) -> SubwordTokenizer:
    """A copy of `tokenizer` that applies BPE-dropout (Provilkov et al., 2020): each merge is skipped
    with probability `dropout`, so one word gets different segmentations from call to call.

    For training data only: the tokenizer saved in a run (export, inference) stays deterministic.
    The tokenizers library draws its own random numbers (no seed), so such segmentations are not
    reproducible run to run.
    """
    import json

    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0.0 < dropout < 1.0:
        raise OptionError(f"expected a BPE dropout with 0 < dropout < 1, got {dropout!r}")
    values = json.loads(tokenizer.to_str())
    if values.get("model", {}).get("type") != "BPE":
        raise OptionError("expected a BPE tokenizer for BPE dropout, "
                          f"got model type {values.get('model', {}).get('type')!r}")
    values["model"]["dropout"] = float(dropout)
    return SubwordTokenizer.from_str(json.dumps(values), source=f"{tokenizer!r} with BPE dropout {dropout:g}")
