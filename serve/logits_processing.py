"""What the decoding loop does to a step's logits before choosing: penalties, bans and sampling.

All of it is numpy on (R, V) float32 logits, one row per decoded sequence, with each row's own
history of generated tokens (no BOS). With a shortlist the logits' columns are the target ids `vocab`
(C,) rather than 0..V-1; the history stays in ids.

- `repetition_penalty` p (Keskar et al., 2019, CTRL): a token the row already generated has its
  logit divided by p when positive, multiplied by p when negative (p > 1 discourages repeats);
- `no_repeat_ngram_size` n: a token that would complete an n-gram the row already contains is
  banned (logit -inf), as in fairseq, Marian and CTranslate2;
- sampling: logits / temperature, restricted to the `top_k` most likely tokens (0: all) and to the
  smallest set whose probability reaches `top_p`, then one draw per row from that row's own
  generator, so a sentence's sample never depends on the other sentences in its batch.
"""

from __future__ import annotations

import numpy as np

from .decoding_options import DecodingOptions


def apply_penalties(logits: np.ndarray, history: np.ndarray, options: DecodingOptions,
                    vocab: np.ndarray | None = None) -> np.ndarray:
    """logits (R, V), history int (R, t) generated tokens per row -> penalized logits (R, V), a copy.
    With `vocab` (C,), logits (R, C) hold those ids' logits (a shortlist)."""
    if not options.changes_logits or history.shape[1] == 0:
        return logits
    logits = np.array(logits, dtype=np.float32)  # (R, V)
    rows = np.arange(len(logits))[:, None]  # (R, 1)
    column_of = None
    if vocab is not None:  # id -> its column, -1 for ids outside the shortlist
        column_of = np.full(int(max(vocab.max(), history.max())) + 1, -1, np.int64)
        column_of[vocab] = np.arange(len(vocab))
        history_ids, history = history, column_of[history]  # generated ids are always columns'
    else:
        history_ids = history
    if options.repetition_penalty != 1.0:
        seen = np.zeros(logits.shape, dtype=bool)  # (R, V)
        seen[rows, history] = True
        penalized = np.where(logits > 0, logits / options.repetition_penalty, logits * options.repetition_penalty)
        logits = np.where(seen, penalized, logits)
    n = options.no_repeat_ngram_size
    if n > 0 and history.shape[1] >= n - 1:
        for row, banned in enumerate(_completing_tokens(history_ids, n)):
            if column_of is not None:
                banned = [c for c in column_of[banned].tolist() if c >= 0] if banned else []
            logits[row, banned] = -np.inf
    return logits


def _completing_tokens(history: np.ndarray, n: int) -> list[list[int]]:
    """Per row of history (R, t): the tokens that would repeat an n-gram already in the row."""
    if n == 1:
        return [sorted(set(row.tolist())) for row in history]
    banned = []
    for row in history.tolist():
        tail = row[len(row) - (n - 1):]  # the last n - 1 tokens
        banned.append([row[j + n - 1] for j in range(len(row) - n + 1) if row[j:j + n - 1] == tail])
    return banned


def sample(logits: np.ndarray, options: DecodingOptions, generators: list) -> np.ndarray:
    """One token per row of logits (R, V), drawn with generators[r]: int32 (R,)."""
    scaled = np.asarray(logits, dtype=np.float64) / options.sampling_temperature  # (R, V)
    vocab = scaled.shape[1]
    k = vocab if options.sampling_topk == 0 else min(options.sampling_topk, vocab)
    order = np.argsort(-scaled, axis=1, kind="stable")[:, :k]  # (R, k) most likely first, ties: lower id
    top = np.take_along_axis(scaled, order, axis=1)  # (R, k)
    probs = np.exp(top - top[:, :1])
    probs /= probs.sum(axis=1, keepdims=True)  # (R, k)
    if options.sampling_topp < 1.0:
        before = np.cumsum(probs, axis=1) - probs  # probability mass of the more likely tokens
        probs = np.where(before < options.sampling_topp, probs, 0.0)  # the first token always stays
        probs /= probs.sum(axis=1, keepdims=True)
    cumulative = np.cumsum(probs, axis=1)  # (R, k)
    draws = np.array([generator.random() for generator in generators])  # (R,) one per row, its own stream
    picked = np.minimum((cumulative < draws[:, None] * cumulative[:, -1:]).sum(axis=1), k - 1)  # (R,)
    return order[np.arange(len(order)), picked].astype(np.int32)
