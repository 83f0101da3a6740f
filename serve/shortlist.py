"""A vocabulary shortlist: each source token's K likeliest target tokens, plus the N most frequent target tokens
(Marian's lexical shortlist in Firefox Translations; CTranslate2's vocabulary map).

A sentence may produce only the candidates of its own source tokens (with BOS, EOS and UNK, the tokens
CTranslate2's vocabulary map always allows). A batch's decoder step computes the logits of the union of
its sentences' candidates only (candidates.onnx gathers those rows of the output projection once per
batch, decoder.onnx multiplies by them at each step), and each row masks the candidates that are not its
own sentence's, so a translation never depends on the sentences it is batched with. generate.onnx
(onnxruntime's search, one sentence a call) computes that sentence's candidates' logits the same way.
Turned off (`use_shortlist=False`), the step is given no ids and computes every logit with the whole
projection, as a bundle without a shortlist does. Why a shortlist: on a small model the output
projection (D x V) and the softmax over V are a large part of a step, and a sentence's candidates are a
few hundred of V (figures: bench/RESULTS-edge.md).

shortlist.bin holds little-endian target ids (uint16, or uint32 for vocabularies over 65,536): the N
frequent ones, then K per source id, row by row (config.json's "shortlist": k, frequent, dtype, the
vocabulary sizes and how they were estimated: export/shortlist.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import bundle_format as fmt
from .bundle import BundleError

ALWAYS = (fmt.BOS_ID, fmt.EOS_ID, fmt.UNK_ID)  # as CTranslate2's vocabulary map: every sentence may end, ...


@dataclass(frozen=True)
class Shortlist:
    """Args: frequent (N,) target ids; table (source vocabulary, K) target ids per source id."""

    frequent: np.ndarray
    table: np.ndarray
    target_vocab_size: int

    @classmethod
    def from_file(cls, path, record: dict) -> Shortlist:
        """Reads shortlist.bin as its config.json record describes it."""
        k, frequent, sources = record["k"], record["frequent"], record["source_vocab_size"]
        ids = np.fromfile(path, dtype=np.dtype(record["dtype"]).newbyteorder("<"))
        if ids.size != frequent + sources * k:
            raise BundleError(f"{path}: expected {frequent} + {sources} x {k} ids, got {ids.size}")
        ids = ids.astype(np.int64)
        if ids.size and (ids.min() < 0 or ids.max() >= record["target_vocab_size"]):
            raise BundleError(f"{path}: expected target ids in 0..{record['target_vocab_size'] - 1}")
        return cls(ids[:frequent], ids[frequent:].reshape(sources, k), record["target_vocab_size"])

    def candidates(self, source: list[int]) -> np.ndarray:
        """A sentence's allowed target ids, sorted: its source tokens' K each, the frequent ones, BOS, EOS, UNK."""
        return np.flatnonzero(self.allowed_ids([source])[0]).astype(np.int32)

    def for_batch(self, sources: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
        """(vocab_ids int32 (C,): the union of the sentences' candidates, sorted; allowed bool (B, C):
        which of them each sentence may produce)."""
        allowed = self.allowed_ids(sources)  # (B, V)
        vocab_ids = np.flatnonzero(allowed.any(axis=0))
        return vocab_ids.astype(np.int32), allowed[:, vocab_ids]

    def allowed_ids(self, sources: list[list[int]]) -> np.ndarray:
        """bool (B, V): which target ids each sentence may produce. Marking a row of V per sentence, not set
        operations on id lists: a batch's candidates cost one pass over B x V booleans."""
        allowed = np.zeros((len(sources), self.target_vocab_size), dtype=bool)
        allowed[:, self.frequent] = True
        allowed[:, ALWAYS] = True
        lengths = [len(source) for source in sources]
        ids = self.table[np.fromiter((i for source in sources for i in source), np.int64, sum(lengths))]  # (T, K)
        allowed[np.repeat(np.arange(len(sources)), np.asarray(lengths) * self.table.shape[1]), ids.reshape(-1)] = True
        return allowed
