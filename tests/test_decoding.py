"""Tests of serve/decoding.py with fake step models: no network, no TensorFlow, no onnxruntime.

A fake model's logits are a function of (source id, whole prefix fed so far). Its state holds, per
row, the source id and the prefix as numpy arrays, so `select` really gathers rows, and `step`
checks that the prefix it is extended from has `position` tokens: a cache reordered or grown wrongly
changes the logits or fails the check.
"""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keras_transformer.serve import decoding
from keras_transformer.serve.decoding import beam_search, greedy_decode, log_softmax
from keras_transformer.serve.decoding_options import DecodingOptions

BOS, EOS = 1, 2


class PrefixModel:
    """A `StepModel` whose logits for row r are `logits_fn(source[r], prefix[r])`, prefix starting with BOS.

    Records the number of rows of every step call in `step_rows`.
    """

    def __init__(self, logits_fn):
        self.logits_fn = logits_fn
        self.step_rows = []

    def initial_state(self, sources):
        sources = np.asarray(sources, dtype=np.int64)
        return {"source": sources, "prefix": np.zeros((len(sources), 0), dtype=np.int64)}

    def step(self, token_ids, position, state):
        assert token_ids.dtype == np.int32 and token_ids.shape == state["source"].shape
        assert state["prefix"].shape[1] == position, "position must count the tokens already fed"
        prefix = np.concatenate([state["prefix"], token_ids[:, None]], axis=1)  # (B, position + 1)
        logits = np.stack([self.logits_fn(s, tuple(p)) for s, p in zip(state["source"].tolist(), prefix.tolist())])
        self.step_rows.append(len(token_ids))
        return logits.astype(np.float32), {"source": state["source"], "prefix": prefix}

    def select(self, state, rows):
        assert rows.ndim == 1 and np.issubdtype(rows.dtype, np.integer)
        return {name: value[rows] for name, value in state.items()}


def random_logits(vocab_size, seed, eos_bias=0.0):
    """Seeded random logits, a deterministic function of (source, prefix)."""

    def logits_fn(source, prefix):
        logits = np.random.default_rng([seed, source, *prefix]).normal(size=vocab_size) * 2.0
        logits[EOS] += eos_bias
        return logits.astype(np.float32)

    return logits_fn


def decode_greedy(logits_fn, sources, max_length):
    model = PrefixModel(logits_fn)
    return greedy_decode(model, model.initial_state(sources), len(sources), BOS, EOS, max_length)


def decode_beam(logits_fn, sources, max_length, beam_size, length_penalty=1.0):
    model = PrefixModel(logits_fn)
    state = model.initial_state(sources)
    return beam_search(model, state, len(sources), BOS, EOS, max_length, beam_size, length_penalty)


def reference_greedy(logits_fn, source, max_length):
    """One sentence, no cache, no batching: argmax until EOS or max_length."""
    prefix, tokens = (BOS,), []
    for _ in range(max_length):
        token = int(np.argmax(logits_fn(source, prefix)))
        if token == EOS:
            break
        tokens.append(token)
        prefix += (token,)
    return tokens


def sequence_score(logits_fn, source, tokens, alpha):
    """Length-normalized log-probability of `tokens` (EOS included if finished), computed one step at
    a time: sum / length ** alpha, length = the tokens before EOS + 1 (CTranslate2's)."""
    prefix, total = (BOS,), 0.0
    for token in tokens:
        total += log_softmax(logits_fn(source, prefix))[token]
        prefix += (token,)
    length = len(tokens) if tokens and tokens[-1] == EOS else len(tokens) + 1
    return total / length ** alpha


# --- greedy ----------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_greedy_matches_per_sentence_argmax(seed):
    logits_fn = random_logits(vocab_size=7, seed=seed, eos_bias=1.0)
    sources = list(range(6))
    assert decode_greedy(logits_fn, sources, max_length=9) == [reference_greedy(logits_fn, s, 9) for s in sources]


def test_greedy_ties_go_to_lowest_id():
    outputs = decode_greedy(lambda source, prefix: np.zeros(5, np.float32), [0, 1], max_length=3)
    assert outputs == [[0, 0, 0], [0, 0, 0]]


def test_max_length_one():
    def eos_first(source, prefix):
        return np.eye(5, dtype=np.float32)[EOS if source == 0 else 4] * 5

    assert decode_greedy(eos_first, [0, 1], max_length=1) == [[], [4]]
    assert decode_beam(eos_first, [0, 1], max_length=1, beam_size=3) == [[], [4]]


def test_greedy_drops_finished_rows():
    # Sentence s emits token 3 `stops[s]` times, then EOS.
    stops = [0, 2, 4, 1]

    def logits_fn(source, prefix):
        return np.eye(5, dtype=np.float32)[EOS if len(prefix) > stops[source] else 3] * 10

    model = PrefixModel(logits_fn)
    outputs = greedy_decode(model, model.initial_state(range(4)), 4, BOS, EOS, max_length=10)
    assert outputs == [[3] * n for n in stops]
    # step t runs on the sentences with stop >= t
    assert model.step_rows == [4, 3, 2, 1, 1]


# --- beam search -----------------------------------------------------------------------------


def test_beam_finds_better_sequence_than_greedy():
    # V = 5: a = 3, b = 4. P(a) = .55, P(b) = .45; after a: P(EOS) = .4; after b: P(EOS) = .9.
    # Greedy takes a then EOS (p = .22); the beam finds b then EOS (p = .405).
    table = {
        (BOS,): [1e-6, 1e-6, 1e-6, 0.55, 0.45],
        (BOS, 3): [1e-6, 1e-6, 0.4, 0.3, 0.3],
        (BOS, 4): [1e-6, 1e-6, 0.9, 0.05, 0.05],
    }

    def logits_fn(source, prefix):
        return np.log(np.array(table.get(prefix, [1e-6, 1e-6, 0.99, 0.005, 0.005]), dtype=np.float32))

    assert decode_greedy(logits_fn, [0], max_length=5) == [[3]]
    assert decode_beam(logits_fn, [0], max_length=5, beam_size=2, length_penalty=0.0) == [[4]]
    assert decode_beam(logits_fn, [0], max_length=5, beam_size=2, length_penalty=1.0) == [[4]]


def test_search_continues_while_length_penalty_can_still_favour_a_live_beam():
    # P(EOS) = .8 at once; otherwise token 3, then token 3 forever (EOS impossible). With alpha = 1,
    # [] scores log .8 / 1 = -0.22 but [3] * 10 scores log .2 / 11 = -0.15: a search that bounds the
    # live beam by the next length's penalty only (-1.61 / 2 = -0.80) would stop at [].
    def logits_fn(source, prefix):
        if len(prefix) == 1:
            return np.log(np.array([1e-9, 1e-9, 0.8, 0.2, 1e-9], dtype=np.float32))
        return np.array([-np.inf, -np.inf, -np.inf, 0.0, -np.inf], dtype=np.float32)

    assert decode_beam(logits_fn, [0], max_length=10, beam_size=2, length_penalty=1.0) == [[3] * 10]
    assert decode_beam(logits_fn, [0], max_length=10, beam_size=2, length_penalty=0.0) == [[]]


def test_never_eos_fills_max_length():
    def logits_fn(source, prefix):
        logits = random_logits(6, seed=3)(source, prefix)
        logits[EOS] = -np.inf
        return logits

    for max_length in (1, 4):
        outputs = decode_greedy(logits_fn, [0, 1, 2], max_length)
        outputs += decode_beam(logits_fn, [0, 1, 2], max_length, beam_size=3)
        assert all(len(tokens) == max_length and EOS not in tokens for tokens in outputs)


@pytest.mark.parametrize("seed", range(6))
def test_beam_size_one_is_greedy(seed):
    logits_fn = random_logits(vocab_size=8, seed=seed, eos_bias=0.5)
    sources = list(range(5))
    greedy = decode_greedy(logits_fn, sources, max_length=8)
    assert decode_beam(logits_fn, sources, 8, beam_size=1, length_penalty=0.7) == greedy
    # The general beam path agrees too at K = 1 without length penalty.
    model = PrefixModel(logits_fn)
    settings = DecodingOptions(beam_size=1, length_penalty=0.0)
    found = decoding._beam_search(model, model.initial_state(sources), 5, BOS, EOS, 8, settings)
    assert [hypotheses[0].tokens for hypotheses in found] == greedy


@pytest.mark.parametrize(("beam_size", "length_penalty"), [(2, 0.0), (3, 0.6), (4, 1.0)])
def test_batch_invariance(beam_size, length_penalty):
    logits_fn = random_logits(vocab_size=6, seed=11, eos_bias=0.5)
    sources = [4, 0, 7, 2, 9]
    alone = [decode_beam(logits_fn, [s], 7, beam_size, length_penalty)[0] for s in sources]
    assert decode_beam(logits_fn, sources, 7, beam_size, length_penalty) == alone
    assert decode_greedy(logits_fn, sources, 7) == [decode_greedy(logits_fn, [s], 7)[0] for s in sources]


def test_beam_drops_decided_sentences():
    stops = [1, 3, 0]

    def logits_fn(source, prefix):
        return np.eye(5, dtype=np.float32)[EOS if len(prefix) > stops[source] else 3] * 10

    model = PrefixModel(logits_fn)
    outputs = beam_search(model, model.initial_state(range(3)), 3, BOS, EOS, 10, beam_size=3)
    assert outputs == [[3] * n for n in stops]
    # The first step runs one row per sentence (only beam 0 exists); then 3 sentences x 3 beams, less
    # sentence 2, decided after step 0, then less sentence 0, decided after step 1, ...
    assert model.step_rows == [3, 6, 3, 3]


def test_beam_scores_no_worse_than_greedy():
    for seed in range(4):
        logits_fn = random_logits(vocab_size=6, seed=seed, eos_bias=0.3)
        for source in range(4):
            greedy = decode_greedy(logits_fn, [source], 6)[0]
            beam = decode_beam(logits_fn, [source], 6, beam_size=4, length_penalty=0.0)[0]

            def finish(tokens):
                return tokens + [EOS] if len(tokens) < 6 else tokens

            assert sequence_score(logits_fn, source, finish(beam), 0.0) >= (
                sequence_score(logits_fn, source, finish(greedy), 0.0) - 1e-9
            )


def all_hypotheses(vocab_size, max_length):
    """Every output a decoder can produce: EOS-terminated up to max_length tokens, or max_length tokens without EOS."""
    words = [t for t in range(vocab_size) if t != EOS]
    for n in range(max_length):
        for body in itertools.product(words, repeat=n):
            yield list(body) + [EOS]
    yield from (list(body) for body in itertools.product(words, repeat=max_length))


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    max_length=st.integers(1, 4),
    length_penalty=st.sampled_from([0.0, 0.6, 1.0, 2.0]),
    eos_bias=st.sampled_from([-1.0, 0.0, 1.5]),
)
def test_wide_beam_is_exhaustive(seed, max_length, length_penalty, eos_bias):
    # V = 4 with 3 non-EOS tokens: at most 27 live prefixes x 4 = 108 candidates per step, so a beam
    # of 108 keeps every candidate and must return the best of all hypotheses.
    logits_fn = random_logits(vocab_size=4, seed=seed, eos_bias=eos_bias)
    scored = [(sequence_score(logits_fn, 0, h, length_penalty), h) for h in all_hypotheses(4, max_length)]
    best_score, best = max(scored, key=lambda pair: pair[0])
    expected = best[:-1] if best and best[-1] == EOS else best
    found = decode_beam(logits_fn, [0], max_length, beam_size=108, length_penalty=length_penalty)[0]
    assert found == expected, (found, expected, best_score)


@pytest.mark.parametrize("beam_size", [1, 3])
def test_deterministic(beam_size):
    logits_fn = random_logits(vocab_size=6, seed=5, eos_bias=0.2)
    runs = [decode_beam(logits_fn, list(range(4)), 8, beam_size) for _ in range(2)]
    assert runs[0] == runs[1]

    def ties(source, prefix):
        return np.zeros(6, np.float32)

    assert decode_beam(ties, [0, 1], 5, beam_size=3) == decode_beam(ties, [0, 1], 5, beam_size=3)
    assert decode_beam(ties, [0, 1], 5, beam_size=3) == [[], []]  # equal steps: shortest scores best


def test_top_k_breaks_ties_by_lowest_index():
    rng = np.random.default_rng(0)
    values = rng.integers(0, 4, size=(50, 20)).astype(np.float64)  # many ties
    values[rng.random(values.shape) < 0.2] = -np.inf
    for k in (1, 3, 8, 20, 25):
        expected = np.argsort(-values, axis=1, kind="stable")[:, :k]
        np.testing.assert_array_equal(decoding._top_k(values, k), expected)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_top_k_argmax_and_partition_paths_agree_with_a_stable_sort(dtype):
    """Both selection paths (repeated argmax up to ARGMAX_TOP_K, argpartition above) and the
    argmax path's fallback (rows with fewer than k finite entries, NaN) give the stable sort's order."""
    rng = np.random.default_rng(2)
    values = rng.integers(0, 6, size=(64, 120)).astype(dtype)  # ties everywhere
    values[rng.random(values.shape) < 0.3] = -np.inf
    values[3, :] = -np.inf  # no finite entry
    values[4, 10:] = -np.inf  # 10 finite entries, fewer than k for the larger k
    values[6, 7] = np.nan
    values[8, [2, 50]] = np.inf
    for k in (1, 2, decoding.ARGMAX_TOP_K - 1, decoding.ARGMAX_TOP_K, decoding.ARGMAX_TOP_K + 1, 119):
        expected = np.argsort(-values, axis=1, kind="stable")[:, :k]
        got = decoding._top_k(values, k)
        finite_rows = ~np.isnan(values).any(axis=1)  # NaN rows: distinct columns, any order
        np.testing.assert_array_equal(got[finite_rows], expected[finite_rows])
        assert all(len(set(row)) == k for row in got.tolist())


def test_top_k_without_ties_and_with_a_few_rows_tied():
    rng = np.random.default_rng(1)
    values = rng.normal(size=(40, 300)).astype(np.float32)  # no ties: the argpartition path alone
    values[5, :] = 0.0  # one row all tied, one with ties at the k-th value only
    values[7, [3, 9, 200]] = values[7].max() + 1.0
    for k in (1, 2, 8, 299):
        expected = np.argsort(-values, axis=1, kind="stable")[:, :k]
        np.testing.assert_array_equal(decoding._top_k(values, k), expected)


def test_log_softmax_is_stable():
    logits = np.array([[1000.0, 0.0, -np.inf], [-1000.0, -1000.0, -1000.0]], dtype=np.float32)
    result = log_softmax(logits)
    np.testing.assert_allclose(np.exp(result).sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(result[1], np.log(1 / 3), rtol=1e-12)
    assert result[0, 2] == -np.inf


# --- empty batches and errors ----------------------------------------------------------------


def test_empty_batch_never_calls_the_model():
    model = PrefixModel(random_logits(5, seed=0))
    assert greedy_decode(model, model.initial_state([]), 0, BOS, EOS, 5) == []
    assert beam_search(model, model.initial_state([]), 0, BOS, EOS, 5, beam_size=2) == []
    assert model.step_rows == []


@pytest.mark.parametrize("max_length", [0, -1])
def test_max_length_must_be_positive(max_length):
    model = PrefixModel(random_logits(5, seed=0))
    with pytest.raises(ValueError, match=r"expected max_length >= 1, got"):
        greedy_decode(model, model.initial_state([0]), 1, BOS, EOS, max_length)
    with pytest.raises(ValueError, match=r"expected max_length >= 1, got"):
        beam_search(model, model.initial_state([0]), 1, BOS, EOS, max_length, beam_size=2)


def test_beam_size_must_be_positive():
    model = PrefixModel(random_logits(5, seed=0))
    with pytest.raises(ValueError, match=r"beam_size: expected an int >= 1, got 0"):
        beam_search(model, model.initial_state([0]), 1, BOS, EOS, 5, beam_size=0)


def test_batch_size_must_not_be_negative():
    model = PrefixModel(random_logits(5, seed=0))
    with pytest.raises(ValueError, match=r"expected batch_size >= 0, got -1"):
        greedy_decode(model, model.initial_state([]), -1, BOS, EOS, 5)


def test_wrong_logits_shape_is_reported():
    class FlatLogits(PrefixModel):
        def step(self, token_ids, position, state):
            logits, state = super().step(token_ids, position, state)
            return logits.reshape(-1), state

    model = FlatLogits(random_logits(5, seed=0))
    with pytest.raises(ValueError, match=r"expected step logits of shape \(2, V\), got \(10,\)"):
        greedy_decode(model, model.initial_state([0, 1]), 2, BOS, EOS, 5)
