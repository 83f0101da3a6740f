"""The decoding loop: greedy search and batched beam search over a cached decoder step, in numpy.

Model-agnostic: the loop sees the decoder only through a `StepModel`, which `serve` implements
with an onnxruntime session and the tests with fake step functions. It imports nothing but numpy.

Every sentence starts from BOS at position 0. Each step feeds one new token per row and gets the
logits of the next one; the model's state (encoder keys/values, source mask, self-attention cache)
holds one row per decoded sequence, and `select` gathers rows of it:
- greedy drops the rows of sentences that emitted EOS, so later steps run on live rows only;
- beam search keeps `beam_size` rows per sentence (row `b * K + k` is beam k of sentence b),
  reorders them after every step, and drops whole sentences once they are decided.

Lengths: `max_length` caps the generated tokens per sentence, EOS included. A hypothesis' length
(`len` below) counts the tokens it generated, its EOS included; a beam still unfinished at
`max_length` has `len = max_length`. Returned token lists hold neither BOS nor EOS.

Beam scores use the GNMT length penalty (Wu et al., 2016, eq. 14):

    score = sum of log-probabilities / ((5 + len) / 6) ** alpha,     alpha = length_penalty

alpha = 0 gives the raw sum (favours short outputs); larger alpha favours longer ones.

Example:
    >>> state = encoder_state_for(source_batch)        # B rows
    >>> greedy_decode(model, state, batch_size=B, bos_id=1, eos_id=2, max_length=64)
    [[412, 97, 18], [55, 18]]
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

State = Any  # whatever the model keeps per row; only the model looks inside it


class StepModel(Protocol):
    """A cached decoder: state holds everything per row (encoder K/V, source mask, self-attention cache)."""

    def step(self, token_ids: np.ndarray, position: int, state: State) -> tuple[np.ndarray, State]:
        """token_ids int32 (B,) newest token per row; position = number of tokens already fed before this one (0 for BOS).
        Returns logits float32 (B, V) for the next token and the new state (cache grown by one)."""
        ...

    def select(self, state: State, rows: np.ndarray) -> State:
        """Gather rows (int array, may repeat) of every per-row tensor: used to drop finished rows and to reorder/expand beams."""
        ...


def greedy_decode(
    model: StepModel, state: State, batch_size: int, bos_id: int, eos_id: int, max_length: int
) -> list[list[int]]:
    """Decodes each sentence by always taking the most likely next token.

    Ties go to the lowest token id (`np.argmax`). A sentence ends at EOS or after `max_length`
    generated tokens; its rows leave the batch as soon as it ends.

    Args:
        model: the cached decoder step.
        state: the model's state for `batch_size` rows, one per sentence, nothing fed yet.
        batch_size: number of sentences B.
        bos_id: first token fed to every row.
        eos_id: the token that ends a sentence.
        max_length: most tokens generated per sentence, EOS included; at least 1.

    Returns:
        B token lists, without BOS and EOS.

    Raises:
        ValueError: if `batch_size < 0`, `max_length < 1`, or the model returns logits of the wrong shape.
    """
    _check_sizes(batch_size, max_length)
    if batch_size == 0:
        return []
    generated = np.full((batch_size, max_length), eos_id, dtype=np.int32)  # (B, T)
    lengths = np.full(batch_size, max_length)  # (B,) tokens before EOS
    sentences = np.arange(batch_size)  # (L,) sentence of each live row
    tokens = np.full(batch_size, bos_id, dtype=np.int32)  # (L,)
    for position in range(max_length):
        logits, state = model.step(tokens, position, state)  # (L, V)
        tokens = np.argmax(_checked_logits(logits, len(sentences)), axis=-1).astype(np.int32)  # (L,)
        generated[sentences, position] = tokens
        ended = tokens == eos_id  # (L,)
        lengths[sentences[ended]] = position
        if ended.all() or position + 1 == max_length:
            break
        if ended.any():
            live = ~ended
            state = model.select(state, np.flatnonzero(live))
            sentences, tokens = sentences[live], tokens[live]
    return [generated[i, : lengths[i]].tolist() for i in range(batch_size)]


def beam_search(
    model: StepModel,
    state: State,
    batch_size: int,
    bos_id: int,
    eos_id: int,
    max_length: int,
    beam_size: int,
    length_penalty: float = 1.0,
) -> list[list[int]]:
    """Batched beam search: returns, per sentence, its best hypothesis by length-penalized score.

    Each step keeps the `beam_size` (K) best extensions per sentence over all K beams x V tokens.
    Those among the K best candidates that end in EOS are set aside as finished hypotheses; the K
    best candidates that do not end in EOS continue. At the first step only beam 0 is live, so no
    duplicate beams appear. A sentence is decided once no live beam can still beat its best finished
    hypothesis (log-probabilities only lower a beam's sum, so its best reachable score is its sum
    over the largest penalty term among the lengths it can still finish with), or at `max_length`,
    where unfinished beams compete as they are. Waiting for K finished hypotheses before stopping,
    as some implementations do, could not change the one hypothesis returned. Ties are broken
    deterministically: between candidates, the lower (beam, token) index; between hypotheses of
    equal score, the one found first.

    `beam_size == 1` is exactly `greedy_decode`.

    Args:
        model: the cached decoder step.
        state: the model's state for `batch_size` rows, one per sentence, nothing fed yet.
        batch_size: number of sentences B.
        bos_id: first token fed to every row.
        eos_id: the token that ends a hypothesis.
        max_length: most tokens generated per sentence, EOS included; at least 1.
        beam_size: beams per sentence K; at least 1.
        length_penalty: alpha of the GNMT penalty `((5 + len) / 6) ** alpha`; 0 ranks by the raw sum.

    Returns:
        B token lists, without BOS and EOS.

    Raises:
        ValueError: if `batch_size < 0`, `max_length < 1`, `beam_size < 1`, or the model returns
            logits of the wrong shape.
    """
    _check_sizes(batch_size, max_length)
    if beam_size < 1:
        raise ValueError(f"expected beam_size >= 1, got {beam_size}")
    if beam_size == 1:
        return greedy_decode(model, state, batch_size, bos_id, eos_id, max_length)
    return _beam_search(model, state, batch_size, bos_id, eos_id, max_length, beam_size, length_penalty)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Numerically stable log-softmax over the last axis, as float64: `x - logsumexp(x)`."""
    return np.asarray(logits, dtype=np.float64) - log_sum_exp(logits)


def log_sum_exp(logits: np.ndarray) -> np.ndarray:
    """(..., V) -> (..., 1) float64 `max + log(sum(exp(x - max)))`.

    The exponentials are taken in float32 (the model's logits are float32; float64 exp of the full
    (rows, V) matrix was the costliest part of a beam-search step) and summed in float64.
    """
    x = np.asarray(logits, dtype=np.float32)
    top = x.max(axis=-1, keepdims=True)  # (..., 1)
    total = np.exp(x - top).sum(axis=-1, keepdims=True, dtype=np.float64)  # (..., 1)
    return top.astype(np.float64) + np.log(total)


def length_penalty_term(length: int, alpha: float) -> float:
    """GNMT length penalty `((5 + length) / 6) ** alpha`; a hypothesis' score is its log-prob sum over this."""
    return ((5.0 + length) / 6.0) ** alpha


# --- beam search internals --------------------------------------------------------------------


def _beam_search(model, state, batch_size, bos_id, eos_id, max_length, beam_size, alpha):
    """The beam search of `beam_search`, for any beam_size >= 1 (arguments already checked)."""
    if batch_size == 0:
        return []
    K = beam_size
    state = model.select(state, np.repeat(np.arange(batch_size), K))  # row b*K + k: beam k of sentence b
    sentences = np.arange(batch_size)  # (L,) sentence of each live group of K rows
    scores = np.full((batch_size, K), -np.inf)  # (L, K) log-prob sum of each live beam
    scores[:, 0] = 0.0  # only beam 0 is live at the first step
    history = np.zeros((batch_size, K, 0), dtype=np.int32)  # (L, K, t) tokens of each live beam
    tokens = np.full(batch_size * K, bos_id, dtype=np.int32)  # (L*K,)
    best_scores = np.full(batch_size, -np.inf)  # (B,) score of the best finished hypothesis
    best_tokens: list[list[int]] = [[] for _ in range(batch_size)]
    beam_ids = np.arange(K).reshape(1, K, 1)

    for position in range(max_length):
        L, length = len(sentences), position + 1  # length: tokens per hypothesis after this step
        logits, state = model.step(tokens, position, state)  # (L*K, V)
        logits = _checked_logits(logits, L * K)
        V = logits.shape[1]
        # A sentence's 2K best candidates (beam, token) over its K*V can only use each beam's 2K best
        # tokens, so only those are scored: (L*K, W) with W = min(2K, V), ties to the lower token id.
        W = min(2 * K, V)
        best_words = _top_k(logits, W)  # (L*K, W)
        logprobs = np.take_along_axis(logits, best_words, axis=1).astype(np.float64) - log_sum_exp(logits)
        candidates = (scores.reshape(L * K, 1) + logprobs).reshape(L, K * W)  # (L, K*W)
        flat = (beam_ids * V + best_words.reshape(L, K, W)).reshape(L, K * W)  # (L, K*W) beam*V + token
        order = np.lexsort((flat, -candidates), axis=1)[:, : min(2 * K, K * V)]  # (L, C) best first, ties: lower id
        ranked_scores = np.take_along_axis(candidates, order, axis=1)  # (L, C)
        beams, words = np.divmod(np.take_along_axis(flat, order, axis=1), V)  # (L, C) beam each extends, its token
        is_eos = words == eos_id  # (L, C)

        # EOS among the K best candidates finishes a hypothesis.
        finished = np.where(is_eos[:, :K], ranked_scores[:, :K], -np.inf)  # (L, K)
        prefixes = np.take_along_axis(history, beams[:, :K, None], axis=1)  # (L, K, t)
        _record_best(best_scores, best_tokens, sentences, finished / length_penalty_term(length, alpha), prefixes)

        # The K best candidates not ending in EOS continue (padded with dead beams if too few).
        keep = np.argsort(is_eos, axis=1, kind="stable")[:, :K]  # (L, K) ranks, non-EOS first
        scores = np.where(
            np.take_along_axis(is_eos, keep, axis=1), -np.inf, np.take_along_axis(ranked_scores, keep, axis=1)
        )  # (L, K)
        beams = np.take_along_axis(beams, keep, axis=1)  # (L, K)
        words = np.take_along_axis(words, keep, axis=1)  # (L, K)
        history = np.concatenate(
            [np.take_along_axis(history, beams[:, :, None], axis=1), words[:, :, None].astype(np.int32)], axis=2
        )  # (L, K, t+1)

        if length == max_length:  # at the cap, unfinished beams compete as they are
            _record_best(best_scores, best_tokens, sentences, scores / length_penalty_term(length, alpha), history)
            break
        reachable = _best_reachable(scores, length, max_length, alpha).max(axis=1)  # (L,)
        live = best_scores[sentences] < reachable  # (L,)
        if not live.any():
            break
        rows = (np.arange(L)[:, None] * K + beams)[live].reshape(-1)  # (L'*K,) reorder and drop at once
        state = model.select(state, rows)
        sentences, scores, history = sentences[live], scores[live], history[live]
        tokens = words[live].reshape(-1).astype(np.int32)  # (L'*K,)
    return best_tokens


def _top_k(values: np.ndarray, k: int) -> np.ndarray:
    """Column indices of the k largest entries of each row of (N, n) `values`, best first.

    Ties go to the lower column index, so results never depend on the selection algorithm:
    `np.argpartition` picks k entries per row in O(n); a row is taken as it is unless it holds more
    entries equal to its k-th largest value than were picked (then `_top_k_with_ties` decides).
    """
    n = values.shape[1]
    if k >= n:
        return np.argsort(-values, axis=1, kind="stable")  # (N, n)
    columns = np.argpartition(-values, k - 1, axis=1)[:, :k]  # (N, k) some k largest
    picked = np.take_along_axis(values, columns, axis=1)  # (N, k)
    kth = picked.min(axis=1, keepdims=True)  # (N, 1) k-th largest value
    ambiguous = (values == kth).sum(axis=1) != (picked == kth).sum(axis=1)  # (N,) ties left out
    if ambiguous.any():
        columns[ambiguous] = _top_k_with_ties(values[ambiguous], k)
        picked = np.take_along_axis(values, columns, axis=1)
    order = np.lexsort((columns, -picked), axis=1)  # (N, k) by value, then by column
    return np.take_along_axis(columns, order, axis=1)


def _top_k_with_ties(values: np.ndarray, k: int) -> np.ndarray:
    """`_top_k` for rows with ties at the k-th value: the entries above it, then the lowest-index
    entries equal to it (unordered)."""
    kth = -np.partition(-values, k - 1, axis=1)[:, k - 1 : k]  # (N, 1) k-th largest value
    above = values > kth  # (N, n)
    tied = values == kth  # (N, n)
    room = k - above.sum(axis=1, keepdims=True)  # (N, 1) tied entries still admitted
    chosen = above | (tied & (np.cumsum(tied, axis=1) <= room))  # (N, n) exactly k per row
    return np.nonzero(chosen)[1].reshape(-1, k)  # (N, k) ascending column order


def _best_reachable(scores: np.ndarray, length: int, max_length: int, alpha: float) -> np.ndarray:
    """Upper bound on the score any continuation of live beams (log-prob sums `scores`, `length`
    tokens each) can reach: sums only decrease and are <= 0, so divide by the largest penalty term
    over the lengths they can still finish with, `length + 1 .. max_length` (the term is monotone)."""
    term = max(length_penalty_term(length + 1, alpha), length_penalty_term(max_length, alpha))
    return scores / term


def _record_best(best_scores, best_tokens, sentences, scores, sequences) -> None:
    """Keeps, per sentence, the best of the hypotheses `scores` (L, K) with tokens `sequences`
    (L, K, t) if it beats that sentence's best so far; on a tie the earlier hypothesis stays."""
    beam = np.argmax(scores, axis=1)  # (L,) first best
    top = scores[np.arange(len(sentences)), beam]  # (L,)
    for i in np.flatnonzero(top > best_scores[sentences]):  # per-sentence bookkeeping
        best_scores[sentences[i]] = top[i]
        best_tokens[sentences[i]] = sequences[i, beam[i]].tolist()


# --- checks -----------------------------------------------------------------------------------


def _check_sizes(batch_size: int, max_length: int) -> None:
    if batch_size < 0:
        raise ValueError(f"expected batch_size >= 0, got {batch_size}")
    if max_length < 1:
        raise ValueError(f"expected max_length >= 1, got {max_length}")


def _checked_logits(logits: np.ndarray, rows: int) -> np.ndarray:
    """The model's logits as an array, checked to be (rows, V)."""
    logits = np.asarray(logits)
    if logits.ndim != 2 or logits.shape[0] != rows or logits.shape[1] < 1:
        raise ValueError(f"expected step logits of shape ({rows}, V), got {logits.shape}")
    return logits
