"""The decoding controls CTranslate2 users rely on: scores and n-best lists, sampling (temperature,
top-k, top-p, seeded), no-repeat-n-gram and repetition penalty, beams reordered without moving the
encoder keys/values, and token streaming — first with fake step models, then through the
Translator, the CLI and HTTP on a real bundle."""

import json

import numpy as np
import pytest

from keras_transformer.serve.decoding import search
from keras_transformer.serve.decoding_options import DecodingOptions
from keras_transformer.serve.logits_processing import apply_penalties

from test_decoding import BOS, EOS, PrefixModel, decode_beam, decode_greedy, random_logits, sequence_score


def run_search(logits_fn, sources, max_length, settings, generators=None, model=None):
    model = model or PrefixModel(logits_fn)
    return search(model, model.initial_state(sources), len(sources), BOS, EOS, max_length, settings, generators)


def finished(tokens, max_length):
    return tokens + [EOS] if len(tokens) < max_length else tokens


# --- scores and n-best ------------------------------------------------------------------------


@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_n_best_is_sorted_scored_and_led_by_the_beam_output(alpha):
    logits_fn = random_logits(vocab_size=7, seed=5, eos_bias=0.4)
    sources = [0, 1, 2, 3]
    found = run_search(logits_fn, sources, 6, DecodingOptions(beam_size=4, num_hypotheses=4, length_penalty=alpha))
    best = decode_beam(logits_fn, sources, 6, beam_size=4, length_penalty=alpha)
    for source, hypotheses, expected in zip(sources, found, best):
        assert len(hypotheses) == 4 and hypotheses[0].tokens == expected
        assert len({tuple(h.tokens) for h in hypotheses}) == 4
        scores = [h.score for h in hypotheses]
        assert scores == sorted(scores, reverse=True)
        for h in hypotheses:  # the score is the hypothesis' own, recomputed step by step without a cache
            assert h.score == pytest.approx(sequence_score(logits_fn, source, finished(h.tokens, 6), alpha), abs=1e-6)
            assert h.log_prob == pytest.approx(sequence_score(logits_fn, source, finished(h.tokens, 6), 0.0), abs=1e-6)


def test_greedy_scores_only_when_asked():
    logits_fn = random_logits(vocab_size=6, seed=2, eos_bias=0.5)
    plain = run_search(logits_fn, [0, 1], 5, DecodingOptions())
    scored = run_search(logits_fn, [0, 1], 5, DecodingOptions(return_scores=True, length_penalty=0.6))
    assert all(np.isnan(h[0].score) for h in plain)
    for source, (h,) in zip([0, 1], scored):
        assert h.tokens == decode_greedy(logits_fn, [source], 5)[0]
        assert h.score == pytest.approx(sequence_score(logits_fn, source, finished(h.tokens, 5), 0.6), abs=1e-6)


def test_more_hypotheses_than_beams_is_refused():
    with pytest.raises(ValueError, match="num_hypotheses"):
        run_search(random_logits(5, 0), [0], 3, DecodingOptions(beam_size=2, num_hypotheses=3))
    with pytest.raises(ValueError, match="num_hypotheses: expected at most beam_size \\(2\\), got 3"):
        DecodingOptions(beam_size=2, num_hypotheses=3)


# --- sampling ---------------------------------------------------------------------------------


def sampling(**kwargs):
    return DecodingOptions(**kwargs)


def generators(seed, sources):
    return [np.random.default_rng([seed, s]) for s in sources]


def test_a_seed_reproduces_and_another_seed_differs():
    logits_fn = random_logits(vocab_size=9, seed=1, eos_bias=-1.0)
    sources = list(range(8))
    first = run_search(logits_fn, sources, 8, sampling(sampling_topk=0), generators(3, sources))
    again = run_search(logits_fn, sources, 8, sampling(sampling_topk=0), generators(3, sources))
    other = run_search(logits_fn, sources, 8, sampling(sampling_topk=0), generators(4, sources))
    assert [h[0].tokens for h in first] == [h[0].tokens for h in again]
    assert [h[0].tokens for h in first] != [h[0].tokens for h in other]


def test_a_sample_does_not_depend_on_its_batch():
    logits_fn = random_logits(vocab_size=9, seed=1, eos_bias=-0.5)
    sources = [5, 2, 7, 0]
    together = run_search(logits_fn, sources, 8, sampling(sampling_topk=0), generators(9, sources))
    alone = [run_search(logits_fn, [s], 8, sampling(sampling_topk=0), generators(9, [s]))[0] for s in sources]
    assert [h[0].tokens for h in together] == [h[0].tokens for h in alone]


def test_top_k_samples_only_among_the_k_best_and_tiny_top_p_or_temperature_is_greedy():
    logits_fn = random_logits(vocab_size=12, seed=4, eos_bias=-1.0)
    sources = list(range(20))
    for hypotheses, source in zip(run_search(logits_fn, sources, 6, sampling(sampling_topk=2), generators(0, sources)),
                                  sources):
        prefix = (BOS,)
        for token in finished(hypotheses[0].tokens, 6):
            assert token in np.argsort(-logits_fn(source, prefix))[:2]
            prefix += (token,)
    greedy = decode_greedy(logits_fn, sources, 6)
    nucleus = run_search(logits_fn, sources, 6, sampling(sampling_topk=0, sampling_topp=1e-6), generators(0, sources))
    cold = run_search(logits_fn, sources, 6, sampling(sampling_topk=0, sampling_temperature=1e-4),
                      generators(0, sources))
    assert [h[0].tokens for h in nucleus] == greedy == [h[0].tokens for h in cold]


def test_sampling_follows_the_distribution():
    # One step: P(token 3) = 0.7, P(token 4) = 0.3, then EOS.
    def logits_fn(source, prefix):
        if len(prefix) == 1:
            return np.log(np.array([1e-12, 1e-12, 1e-12, 0.7, 0.3], dtype=np.float32))
        return np.array([-1e9, -1e9, 0.0, -1e9, -1e9], dtype=np.float32)

    sources = list(range(2000))
    found = run_search(logits_fn, sources, 3, sampling(sampling_topk=0), generators(1, sources))
    share = np.mean([h[0].tokens == [3] for h in found])
    assert abs(share - 0.7) < 0.04  # 4 standard deviations of a 2,000-draw binomial


def test_sampling_with_beams_is_refused():
    with pytest.raises(ValueError, match="sampling_topk: sampling \\(top-k != 1\\) needs beam_size 1"):
        DecodingOptions(beam_size=4, sampling_topk=5)


# --- penalties --------------------------------------------------------------------------------


def test_repetition_penalty_divides_positive_and_multiplies_negative_logits_of_seen_tokens():
    logits = np.array([[2.0, -1.0, 3.0, 0.5]], dtype=np.float32)
    out = apply_penalties(logits, np.array([[0, 1]]), DecodingOptions(repetition_penalty=2.0))
    np.testing.assert_allclose(out, [[1.0, -2.0, 3.0, 0.5]])
    np.testing.assert_allclose(logits, [[2.0, -1.0, 3.0, 0.5]])  # the input is left alone


@pytest.mark.parametrize("n", [1, 2, 3])
@pytest.mark.parametrize("beam_size", [1, 3])
def test_no_repeat_ngram_size_leaves_no_repeated_ngram(n, beam_size):
    # A decoder that loves repeating itself: the last token again is very likely.
    def logits_fn(source, prefix):
        logits = random_logits(vocab_size=8, seed=source)(source, prefix)
        logits[prefix[-1]] += 6.0
        logits[EOS] -= 4.0
        return logits

    settings = DecodingOptions(beam_size=beam_size, no_repeat_ngram_size=n)
    for (hypothesis,) in run_search(logits_fn, list(range(6)), 10, settings):
        grams = [tuple(hypothesis.tokens[i:i + n]) for i in range(len(hypothesis.tokens) - n + 1)]
        assert len(grams) == len(set(grams)), hypothesis.tokens
    repeated = decode_greedy(logits_fn, list(range(6)), 10)
    assert any(len(set(tokens)) < len(tokens) for tokens in repeated)  # without the ban it does repeat


def test_repetition_penalty_breaks_a_loop():
    def logits_fn(source, prefix):  # token 3 forever unless penalized
        return np.array([-9.0, -9.0, -2.0, 3.0, 1.0], dtype=np.float32)

    assert decode_greedy(logits_fn, [0], 4) == [[3, 3, 3, 3]]
    (penalized,) = run_search(logits_fn, [0], 4, DecodingOptions(repetition_penalty=4.0))
    # once generated, 3 scores 3 / 4 = 0.75 < 1 (token 4); once 4 is generated too, 4 scores 0.25 and 3 wins again
    assert penalized[0].tokens == [3, 4, 3, 3]


# --- beams reordered without moving per-sentence tensors -------------------------------------


class ReorderingModel(PrefixModel):
    """PrefixModel whose `reorder_beams` moves only the per-beam prefix, as the bundle's moves only
    the self-attention cache; the per-sentence source stays as it is."""

    reorders = 0

    def reorder_beams(self, state, rows):
        self.reorders += 1
        assert np.array_equal(state["source"][rows], state["source"]), "rows left their sentence"
        return {"source": state["source"], "prefix": state["prefix"][rows]}


@pytest.mark.parametrize("seed", range(4))
def test_reordering_beams_only_gives_the_same_search(seed):
    logits_fn = random_logits(vocab_size=7, seed=seed, eos_bias=0.2)
    sources = [0, 1, 2]
    model = ReorderingModel(logits_fn)
    settings = DecodingOptions(beam_size=3, num_hypotheses=3)
    assert run_search(logits_fn, sources, 7, settings, model=model) == run_search(logits_fn, sources, 7, settings)
    assert model.reorders > 0


# --- through the Translator, the CLI and HTTP --------------------------------------------------

TEXTS = ["the girls read the books.", "I sit.", "you do not call the good girls."]


@pytest.fixture(scope="module")
def translator(tiny_bundle):
    from keras_transformer.serve import Translator

    return Translator(tiny_bundle)


def test_translator_n_best_and_scores(translator):
    results = translator.translate_batch(TEXTS, beam_size=4, num_hypotheses=3)
    assert [r.text for r in results] == translator.translate(TEXTS, beam_size=4)
    for result in results:
        assert len(result.hypotheses) == 3 and result.hypotheses[0].text == result.text
        assert [h.score for h in result.hypotheses] == sorted((h.score for h in result.hypotheses), reverse=True)
        assert all(h.log_prob <= 0 for h in result.hypotheses)


def test_translator_sampling_is_seeded_and_batch_invariant(translator):
    options = dict(sampling_topk=0, sampling_temperature=1.5, seed=11)
    together = translator.translate(TEXTS, **options)
    assert together == translator.translate(TEXTS, **options)
    assert together == [translator.translate([text], **options)[0] for text in TEXTS]


@pytest.mark.parametrize("options", [{}, {"sampling_topk": 5, "seed": 3}, {"no_repeat_ngram_size": 2}])
def test_stream_pieces_join_to_the_translation(translator, options):
    for text in TEXTS + [""]:
        pieces = list(translator.stream(text, **options))
        assert "".join(pieces) == translator.translate([text], **options)[0]
        assert all(pieces)


def test_stream_refuses_beam_search(translator):
    with pytest.raises(ValueError, match="beam_size: streaming decodes greedily"):
        list(translator.stream("I sit.", beam_size=2))


def test_cli_n_best_scores_and_stream(tiny_bundle, translator, capsys):
    from keras_transformer.cli import main

    assert main(["translate", str(tiny_bundle), *TEXTS[:2], "--beam-size", "3", "--n-best", "2", "--scores"]) == 0
    lines = capsys.readouterr().out.splitlines()
    expected = translator.translate_batch(TEXTS[:2], beam_size=3, num_hypotheses=2)
    assert lines == [f"{h.score:.4f}\t{h.text}" for r in expected for h in r.hypotheses]
    assert main(["translate", str(tiny_bundle), *TEXTS, "--stream"]) == 0
    assert capsys.readouterr().out.splitlines() == translator.translate(TEXTS)
    assert main(["translate", str(tiny_bundle), "x", "--sampling-topk", "3", "--beam-size", "2"]) == 2
    assert "sampling_topk: sampling (top-k != 1) needs beam_size 1" in capsys.readouterr().err


def test_http_n_best_and_streaming(translator):
    from starlette.testclient import TestClient

    from keras_transformer.serve.http_server import create_app

    with TestClient(create_app(translator)) as client:
        answer = client.post("/translate", json={"texts": TEXTS, "beam_size": 3, "num_hypotheses": 2}).json()
        expected = translator.translate_batch(TEXTS, beam_size=3, num_hypotheses=2)
        assert answer["translations"] == [r.text for r in expected]
        assert [[h["text"] for h in hs] for hs in answer["hypotheses"]] == [[h.text for h in r.hypotheses]
                                                                            for r in expected]
        with client.stream("POST", "/translate/stream", json={"text": TEXTS[2]}) as response:
            assert response.headers["content-type"].startswith("application/x-ndjson")
            events = [json.loads(line) for line in response.iter_lines() if line]
        assert events[-1] == {"done": True, "translation": translator.translate([TEXTS[2]])[0]}
        assert "".join(e["piece"] for e in events[:-1]) == events[-1]["translation"]
        refused = client.post("/translate/stream", json={"text": "a", "beam_size": 2})
        assert refused.status_code == 400 and "streaming decodes greedily" in refused.json()["error"]
        bad = client.post("/translate", json={"texts": ["a"], "sampling_topp": 0})
        assert bad.status_code == 400 and bad.json()["error"] == "sampling_topp: expected a number in (0, 1], got 0.0"


# --- the stopping rule: patience ---------------------------------------------------------------


def two_finish_early_one_never_ends(source, prefix):
    """Step 1: EOS .6, token 3 .3, token 4 .1. After 4: EOS. After 3: token 3 forever (no EOS)."""
    if len(prefix) == 1:
        return np.log(np.array([1e-12, 1e-12, 0.6, 0.3, 0.1], dtype=np.float32))
    if prefix[1] == 4:
        return np.array([-np.inf, -np.inf, 0.0, -np.inf, -np.inf], dtype=np.float32)
    return np.array([-np.inf, -np.inf, -np.inf, 0.0, -np.inf], dtype=np.float32)


def test_patience_stops_once_k_hypotheses_finished_as_ctranslate2_and_fairseq_do():
    # With K = 2, [] and [4] have finished after step 2: the standard rule stops there and returns
    # [] (log .6 = -0.51). The exact rule goes on: [3] * 10 scores log .3 / ((5 + 10) / 6) = -0.48.
    standard = run_search(two_finish_early_one_never_ends, [0], 10, DecodingOptions(beam_size=2))
    exact = run_search(two_finish_early_one_never_ends, [0], 10, DecodingOptions(beam_size=2, patience=float("inf")))
    assert standard[0][0].tokens == [] and exact[0][0].tokens == [3] * 10
    patient = run_search(two_finish_early_one_never_ends, [0], 10, DecodingOptions(beam_size=2, patience=2.0))
    assert patient[0][0].tokens == [3] * 10  # 4 finished hypotheses never come: it waits like the exact rule


@pytest.mark.parametrize("seed", range(5))
def test_patience_never_runs_more_steps_than_the_exact_rule(seed):
    logits_fn = random_logits(vocab_size=8, seed=seed, eos_bias=0.3)
    standard, exact = PrefixModel(logits_fn), PrefixModel(logits_fn)
    run_search(logits_fn, list(range(6)), 12, DecodingOptions(beam_size=4), model=standard)
    run_search(logits_fn, list(range(6)), 12, DecodingOptions(beam_size=4, patience=float("inf")), model=exact)
    assert sum(standard.step_rows) <= sum(exact.step_rows)


def test_patience_is_checked():
    with pytest.raises(ValueError, match="patience: expected a number >= 1, got 0.5"):
        DecodingOptions(beam_size=2, patience=0.5)
    assert DecodingOptions(patience=float("inf")).patience == float("inf")
