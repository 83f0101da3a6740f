"""The decoding loop: greedy search (or sampling) and batched beam search over a cached decoder step, in numpy.

Model-agnostic: the loop sees the decoder only through a `StepModel`, which the ONNX bundle and the
Keras model implement and the tests fake. It imports nothing but numpy and its siblings
`decoding_options` (what to do) and `logits_processing` (penalties, n-gram bans, sampling).

Every sentence starts from BOS at position 0. Each step feeds one new token per row and gets the
logits of the next one; the model's state (encoder keys/values, source mask, self-attention cache)
holds one row per decoded sequence, and `select` gathers rows of it:
- greedy drops the rows of sentences that emitted EOS, so later steps run on live rows only;
- beam search keeps `beam_size` rows per sentence (row `b * K + k` is beam k of sentence b),
  reorders them after every step, and drops whole sentences once they are decided.

Lengths: `max_length` caps the generated tokens per sentence, EOS included. Returned token lists
hold neither BOS nor EOS. A hypothesis' length (`len` below) is its tokens + 1: for a finished one,
the tokens it generated with its EOS; for a beam cut at `max_length`, max_length + 1 (BOS counted,
as CTranslate2, Hugging Face and onnxruntime's BeamSearch count it).

Scores are normalized by length as CTranslate2 (its default), fairseq and Hugging Face do:

    score = log_prob / len ** alpha,     alpha = length_penalty

where log_prob is the sum of the generated tokens' log-probabilities (EOS included) under the
model's distribution after any penalties. alpha = 0 gives the raw sum (favours short outputs);
alpha = 1 the mean log-probability per token. With the same weights and alpha, the scores are
CTranslate2's (bench/RESULTS-ctranslate2.md), and onnxruntime's BeamSearch operator ranks the same
way, which lets it run our searches (serve/graph_search.py).

Example:
    >>> state = model.start(source_ids)                 # B rows
    >>> greedy_decode(model, state, batch_size=B, bos_id=1, eos_id=2, max_length=64)
    [[412, 97, 18], [55, 18]]
    >>> search(model, state, B, 1, 2, 64, DecodingOptions(beam_size=4, num_hypotheses=2))[0]
    [Hypothesis(tokens=[412, 97, 18], score=-0.61, log_prob=-1.2), Hypothesis(...)]
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from .decoding_options import DecodingOptions
from .logits_processing import apply_penalties, sample

ARGMAX_TOP_K = 16  # `_top_k` picks up to this many entries per row by repeated argmax (see there)

State = Any  # whatever the model keeps per row; only the model looks inside it


class StepModel(Protocol):
    """A cached decoder: state holds everything per row (encoder K/V, source mask, self-attention cache)."""

    def start(self, source_ids: np.ndarray) -> State:
        """source_ids int32 (B, S), PAD-padded -> the state of B rows with nothing fed yet."""
        ...

    def step(self, token_ids: np.ndarray, position: int, state: State) -> tuple[np.ndarray, State]:
        """token_ids int32 (B,) newest token per row; position = number of tokens already fed before this one
        (0 for BOS). Returns logits float32 (B, V) for the next token and the new state (cache grown by one)."""
        ...

    def select(self, state: State, rows: np.ndarray) -> State:
        """Gather rows (int array, may repeat) of every per-row tensor: used to drop finished rows and to
        reorder/expand beams."""
        ...


@dataclass(frozen=True)
class Hypothesis:
    """One output: tokens (no BOS/EOS), its score (what beam search ranks by) and its log-probability
    (nan for greedy search unless scores were asked for)."""

    tokens: list[int]
    score: float
    log_prob: float


def search(model: StepModel, state: State, batch_size: int, bos_id: int, eos_id: int, max_length: int,
           options: DecodingOptions = DecodingOptions(), generators: list | None = None,
           vocab: np.ndarray | None = None) -> list[list[Hypothesis]]:
    """Decodes `batch_size` sentences; returns per sentence its `num_hypotheses` best, best first.

    Args:
        model, state: the cached decoder step and its state for `batch_size` rows, nothing fed yet.
        bos_id, eos_id: the first token fed to every row; the token that ends a hypothesis.
        max_length: most tokens generated per sentence, EOS included; at least 1.
        options: beam size, n-best, length penalty, penalties and sampling (`max_length` and
            `batch_size` are the caller's: see the arguments above).
        generators: one `numpy.random.Generator` per sentence, needed when sampling.
        vocab: int (C,) the target ids of the logits' columns when the model computes only those (a
            shortlist, serve/shortlist.py); None: column = id.

    Raises:
        ValueError: bad sizes, sampling without one generator per sentence, or logits of the wrong
            shape (the options themselves are checked by `DecodingOptions`).
    """
    _check_sizes(batch_size, max_length)
    if options.samples and (options.beam_size > 1 or generators is None or len(generators) != batch_size):
        raise ValueError("sampling needs beam_size 1 and one generator per sentence")
    if batch_size == 0:
        return []
    if options.beam_size == 1:
        return [[hypothesis] for hypothesis in _greedy(model, state, batch_size, bos_id, eos_id, max_length,
                                                       options, generators, vocab)]
    return _beam_search(model, state, batch_size, bos_id, eos_id, max_length, options, vocab)


def greedy_decode(
    model: StepModel, state: State, batch_size: int, bos_id: int, eos_id: int, max_length: int
) -> list[list[int]]:
    """Decodes each sentence by always taking the most likely next token; B token lists (no BOS/EOS).

    Ties go to the lowest token id (`np.argmax`). A sentence ends at EOS or after `max_length`
    generated tokens; its rows leave the batch as soon as it ends.

    Raises:
        ValueError: if `batch_size < 0`, `max_length < 1`, or the model returns logits of the wrong shape.
    """
    return [hypotheses[0].tokens for hypotheses in search(model, state, batch_size, bos_id, eos_id, max_length)]


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
    """Batched beam search: per sentence, its best hypothesis' tokens (see `search`, `_beam_search`).

    `beam_size == 1` is exactly `greedy_decode`.
    """
    options = DecodingOptions(beam_size=beam_size, length_penalty=length_penalty)
    return [hypotheses[0].tokens for hypotheses in search(model, state, batch_size, bos_id, eos_id, max_length,
                                                          options)]


# --- greedy search and sampling ---------------------------------------------------------------


def greedy_steps(model, state, batch_size, bos_id, eos_id, max_length, options=DecodingOptions(),
                 generators=None, vocab=None) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
    """Greedy search (or sampling) one step at a time: yields, after each step, the sentences of the
    live rows (L,), the token each chose (L,) (EOS for a sentence that ended) and, when scores are
    asked for, each token's log-probability (L,). What `search` and token streaming are built on."""
    generated = np.zeros((batch_size, max_length), dtype=np.int32)  # (B, T) tokens so far
    sentences = np.arange(batch_size)  # (L,) sentence of each live row
    tokens = np.full(batch_size, bos_id, dtype=np.int32)  # (L,)
    for position in range(max_length):
        logits, state = model.step(tokens, position, state)  # (L, V)
        logits = _checked_logits(logits, len(sentences))
        if options.changes_logits:  # the history copy is made only when a penalty reads it
            logits = apply_penalties(logits, generated[sentences, :position], options, vocab)
        if options.samples:
            columns = sample(logits, options, [generators[s] for s in sentences])  # (L,)
        else:
            columns = np.argmax(logits, axis=-1).astype(np.int32)  # (L,)
        log_probs = None
        if options.return_scores:
            log_probs = (np.take_along_axis(logits, columns[:, None].astype(np.int64), axis=1)[:, 0].astype(np.float64)
                         - log_sum_exp(logits)[:, 0])  # (L,)
        tokens = columns if vocab is None else vocab[columns].astype(np.int32)  # (L,) target ids
        generated[sentences, position] = tokens
        yield sentences, tokens, log_probs
        ended = tokens == eos_id  # (L,)
        if ended.all() or position + 1 == max_length:
            return
        if ended.any():
            live = ~ended
            state = model.select(state, np.flatnonzero(live))
            sentences, tokens = sentences[live], tokens[live]


def _greedy(model, state, batch_size, bos_id, eos_id, max_length, options, generators, vocab) -> list[Hypothesis]:
    generated = np.full((batch_size, max_length), eos_id, dtype=np.int32)  # (B, T)
    lengths = np.full(batch_size, max_length)  # (B,) tokens before EOS
    log_probs = np.zeros(batch_size)  # (B,)
    for position, (sentences, chosen, chosen_log_probs) in enumerate(
            greedy_steps(model, state, batch_size, bos_id, eos_id, max_length, options, generators, vocab)):
        generated[sentences, position] = chosen
        lengths[sentences[chosen == eos_id]] = position
        if chosen_log_probs is not None:
            log_probs[sentences] += chosen_log_probs
    outputs = [generated[i, : lengths[i]].tolist() for i in range(batch_size)]
    if not options.return_scores:
        return [Hypothesis(tokens, math.nan, math.nan) for tokens in outputs]
    return [Hypothesis(tokens, float(log_probs[i] / length_penalty_term(int(lengths[i]) + 1, options.length_penalty)),
                       float(log_probs[i])) for i, tokens in enumerate(outputs)]


# --- beam search ------------------------------------------------------------------------------


def _beam_search(model, state, batch_size, bos_id, eos_id, max_length, options, vocab=None) -> list[list[Hypothesis]]:
    """Beam search with K = options.beam_size beams per sentence; per sentence its N = num_hypotheses
    best hypotheses by score, best first.

    Each step keeps the K best extensions per sentence over all its beams x V tokens. Those among
    the K best candidates that end in EOS are set aside as finished hypotheses; the K best
    candidates that do not end in EOS continue. The first step runs on one row per sentence (only
    beam 0 exists there), then the state is expanded to K rows. A sentence is decided as soon as
    - it has finished round(K * patience) hypotheses (the stopping rule of CTranslate2 and fairseq;
      patience = inf turns it off), or
    - no live beam can still beat its N-th best finished hypothesis (log-probabilities only lower a
      beam's sum, so its best reachable score is its sum over the largest penalty term among the
      lengths it can still finish with: with alpha = 0, once the best candidate ends in EOS), or
    - at `max_length`, where the unfinished beams of a sentence with fewer than round(K * patience)
      finished hypotheses compete as they are (one that reached that count at this last step is
      decided without them: Hugging Face's and onnxruntime's rule; CTranslate2's code registers
      every beam at its last step).
    Ties are broken deterministically: between candidates, the lower (beam, token) index; between
    hypotheses of equal score, the one found first.

    Reordering beams within a sentence moves only the per-beam tensors when the model offers
    `reorder_beams(state, rows)` (the per-sentence encoder keys/values are the same in every beam);
    `select` is used when sentences leave or the rows per sentence change.
    """
    K, N, alpha = options.beam_size, options.num_hypotheses, options.length_penalty
    reorder = getattr(model, "reorder_beams", model.select)
    sentences = np.arange(batch_size)  # (L,) sentence of each live group of R rows
    scores = np.zeros((batch_size, 1))  # (L, R) log-prob sum of each live beam; R = 1 at the first step
    history = np.zeros((batch_size, 1, 0), dtype=np.int32)  # (L, R, t) tokens of each live beam
    tokens = np.full(batch_size, bos_id, dtype=np.int32)  # (L*R,)
    finished: list[list[tuple]] = [[] for _ in range(batch_size)]  # per sentence: (score, log_prob, tokens), best first
    thresholds = np.full(batch_size, -np.inf)  # (B,) score of the N-th best finished hypothesis
    finished_counts = np.zeros(batch_size, dtype=np.int64)  # (B,) hypotheses finished so far
    enough = (max(N, math.floor(K * options.patience + 0.5))  # round half up, as C++ std::round and JS
              if math.isfinite(options.patience) else math.inf)

    for position in range(max_length):
        (L, R), length = scores.shape, position + 1  # length: tokens per hypothesis after this step
        logits, state = model.step(tokens, position, state)  # (L*R, V)
        logits = apply_penalties(_checked_logits(logits, L * R), history.reshape(L * R, -1), options, vocab)
        V = logits.shape[1]
        # A sentence's 2K best candidates (beam, token) over its R*V can only use each beam's 2K best
        # tokens, so only those are scored: (L*R, W) with W = min(2K, V), ties to the lower token id.
        W = min(2 * K, V)
        best_words = _top_k(logits, W)  # (L*R, W)
        logprobs = _gather(logits, best_words).astype(np.float64) - log_sum_exp(logits)  # (L*R, W)
        candidates = (scores.reshape(L * R, 1) + logprobs).reshape(L, R * W)  # (L, R*W)
        flat = (np.arange(R).reshape(1, R, 1) * V + best_words.reshape(L, R, W)).reshape(L, R * W)  # beam*V + token
        order = np.lexsort((flat, -candidates), axis=1)[:, : 2 * K]  # (L, C) best first, ties: lower id
        ranked_scores = _gather(candidates, order)  # (L, C)
        beams, words = np.divmod(_gather(flat, order), V)  # (L, C) beam each extends, its token
        if vocab is not None:
            words = vocab[words]  # columns -> target ids (a shortlist's)
        is_eos = words == eos_id  # (L, C)

        # EOS among the K best candidates finishes a hypothesis.
        if is_eos[:, :K].any():
            finished_sums = np.where(is_eos[:, :K], ranked_scores[:, :K], -np.inf)  # (L, min(K, C))
            finished_counts[sentences] += np.isfinite(finished_sums).sum(axis=1)
            _record_finished(finished, thresholds, sentences, finished_sums / length_penalty_term(length, alpha),
                             finished_sums, _gather(history, beams[:, :K]), N)

        # The K best candidates not ending in EOS continue (padded with dead beams if too few).
        keep = np.argsort(is_eos, axis=1, kind="stable")[:, :K]  # (L, R') ranks, non-EOS first
        scores = np.where(_gather(is_eos, keep), -np.inf, _gather(ranked_scores, keep))  # (L, R')
        beams = _gather(beams, keep)  # (L, R')
        words = _gather(words, keep)  # (L, R')
        history = np.concatenate([_gather(history, beams), words[:, :, None].astype(np.int32)], axis=2)  # (L, R', t+1)

        if length == max_length:  # at the cap, the unfinished beams of undecided sentences compete as they are
            undecided = finished_counts[sentences] < enough  # (L,)
            _record_finished(finished, thresholds, sentences[undecided],
                             scores[undecided] / length_penalty_term(length + 1, alpha), scores[undecided],
                             history[undecided], N)
            break
        reachable = _best_reachable(scores, length, max_length, alpha).max(axis=1)  # (L,)
        live = (thresholds[sentences] < reachable) & (finished_counts[sentences] < enough)  # (L,)
        if not live.any():
            break
        rows = (np.arange(L)[:, None] * R + beams)[live].reshape(-1)  # (L'*R',) reorder and drop at once
        same_rows = live.all() and scores.shape[1] == R  # only beams move, within their sentence
        state = reorder(state, rows) if same_rows else model.select(state, rows)
        sentences, scores, history = sentences[live], scores[live], history[live]
        tokens = words[live].reshape(-1).astype(np.int32)  # (L'*R',)
    return [[Hypothesis(tokens, score, log_prob) for score, log_prob, tokens in hypotheses]
            for hypotheses in finished]


def _gather(values: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """values[i, indices[i, j], ...] for every row i: `np.take_along_axis` on axis 1 for index
    arrays of rank 2, without its per-call overhead (it runs a dozen times per beam step)."""
    return values[np.arange(len(values))[:, None], indices]


def _record_finished(finished, thresholds, sentences, scores, log_probs, sequences, n) -> None:
    """Adds the hypotheses of `scores` (L, k) (sums `log_probs`, tokens `sequences` (L, k, t)) that
    beat their sentence's N-th best to its list, keeping the n best, best first; on a tie the
    earlier hypothesis stays ahead. Updates `thresholds`."""
    for i, k in zip(*np.nonzero(scores > thresholds[sentences][:, None])):  # row by row, best candidate first
        sentence, score = sentences[i], float(scores[i, k])
        hypotheses = finished[sentence]
        at = len(hypotheses)
        while at > 0 and hypotheses[at - 1][0] < score:
            at -= 1
        hypotheses.insert(at, (score, float(log_probs[i, k]), sequences[i, k].tolist()))
        del hypotheses[n:]
        if len(hypotheses) == n:
            thresholds[sentence] = hypotheses[-1][0]


# --- helpers ---------------------------------------------------------------------------------


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
    """`length ** alpha`, length = the hypothesis' tokens + 1 (see the module docstring); a
    hypothesis' score is its log-prob sum over this."""
    return float(length) ** alpha


def _top_k(values: np.ndarray, k: int) -> np.ndarray:
    """Column indices of the k largest entries of each row of (N, n) `values`, best first.

    Ties go to the lower column index, so results never depend on the selection algorithm. Up to
    `ARGMAX_TOP_K` entries are picked by k passes of `argmax` (which returns the first maximum), each
    masking its pick with -inf: numpy's argmax is vectorized and argpartition is not, and k passes
    were 1.9-18x faster than one argpartition for k <= 16 at the shapes of a beam step (rows 4-128,
    vocabularies 406 and 8000; 0.56-1.7x at k = 32). Rows with a pick that is not above -inf (fewer
    than k finite entries: the mask can no longer tell picked from unpicked; or NaN) take the
    general path: `np.argpartition` picks k entries per row in O(n); a row is taken as it is unless
    it holds more entries equal to its k-th largest value than were picked (then
    `_top_k_with_ties` decides).
    """
    n = values.shape[1]
    if k >= n:
        return np.argsort(-values, axis=1, kind="stable")  # (N, n)
    if k <= ARGMAX_TOP_K:
        columns, masked = np.empty((len(values), k), dtype=np.intp), np.array(values, copy=True)  # (N, k), (N, n)
        rows, unsure = np.arange(len(values)), np.zeros(len(values), dtype=bool)  # (N,), (N,)
        for j in range(k):
            columns[:, j] = masked.argmax(axis=1)
            unsure |= ~(masked[rows, columns[:, j]] > -np.inf)  # picked a masked or -inf entry, or NaN
            masked[rows, columns[:, j]] = -np.inf
        if unsure.any():
            columns[unsure] = _top_k_by_partition(values[unsure], k)
        return columns
    return _top_k_by_partition(values, k)


def _top_k_by_partition(values: np.ndarray, k: int) -> np.ndarray:
    """`_top_k` for k < n through `np.argpartition` (any k, any values)."""
    columns = np.argpartition(-values, k - 1, axis=1)[:, :k]  # (N, k) some k largest
    picked = _gather(values, columns)  # (N, k)
    kth = picked.min(axis=1, keepdims=True)  # (N, 1) k-th largest value
    ambiguous = (values == kth).sum(axis=1) != (picked == kth).sum(axis=1)  # (N,) ties left out
    if ambiguous.any():
        columns[ambiguous] = _top_k_with_ties(values[ambiguous], k)
        picked = _gather(values, columns)
    order = np.lexsort((columns, -picked), axis=1)  # (N, k) by value, then by column
    return _gather(columns, order)


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
    over the lengths they can still end with, `length + 1` (EOS next) .. `max_length + 1` (cut at
    the cap) (the term is monotone)."""
    term = max(length_penalty_term(length + 1, alpha), length_penalty_term(max_length + 1, alpha))
    return scores / term


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
