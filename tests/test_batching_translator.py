"""Dynamic batching (`BatchingTranslator`) and streamed translation (`translate_iterable`): every request
gets exactly what translating it alone gives, requests share batches, a bad request fails alone, the
queue is bounded, a lone request does not wait; token-sized batches; windows of a stream in order."""

import threading
import time

import pytest

from keras_transformer.serve import Translator
from keras_transformer.serve import bundle_format as fmt
from keras_transformer.serve.batching import search_sources
from keras_transformer.serve.batching_translator import BatchingTranslator, QueueFull
from keras_transformer.serve.decoding_options import DecodingOptions

WAIT_S = 30
SENTENCES = ["I sit.", "you do not call the good girls.", "do you call the girl?", "did the woman sit?",
             "the old women are calling the children.", "we will sit.", "are you calling the good woman?",
             "the boys are buying the old book and the girls are reading the new books."]


@pytest.fixture(scope="module")
def translator(tiny_bundle):
    return Translator(tiny_bundle, replicas=2)


def _concurrently(calls):
    """Runs the callables at once (a barrier), returns their results in order."""
    results, barrier = [None] * len(calls), threading.Barrier(len(calls))

    def run(i):
        barrier.wait(WAIT_S)
        results[i] = calls[i]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT_S)
    return results


@pytest.mark.parametrize("options", [dict(), dict(beam_size=3), dict(beam_size=2, num_hypotheses=2, length_penalty=0.6),
                                     dict(sampling_topk=5, seed=7)])
def test_each_request_gets_what_it_would_get_alone(translator, options):
    alone = [translator.translate_batch([text], **options)[0] for text in SENTENCES]
    batcher = BatchingTranslator(translator, max_wait_ms=50)
    try:
        batched = _concurrently([lambda text=text: batcher.submit([text], **options).result(WAIT_S)[0]
                                 for text in SENTENCES * 3])
        assert [r.text for r in batched] == [r.text for r in alone] * 3
        assert [[h.target_ids for h in r.hypotheses] for r in batched] == [[h.target_ids for h in r.hypotheses]
                                                                             for r in alone] * 3
        assert max(batch["requests"] for batch in batcher.stats()["recent_batches"]) > 1  # they shared searches
    finally:
        batcher.close()


def test_requests_with_other_options_are_not_mixed(translator):
    batcher = BatchingTranslator(translator, max_wait_ms=50)
    try:
        calls = [lambda text=text, beam=beam: (text, beam, batcher.submit([text, ""], beam_size=beam).result(WAIT_S))
                 for text in SENTENCES for beam in (1, 2)]
        for text, beam, results in _concurrently(calls):
            assert [r.text for r in results] == translator.translate([text, ""], beam_size=beam)
    finally:
        batcher.close()


class _Gate:
    """A step model wrapper that blocks `start` until released, and fails for sources holding `poison`."""

    def __init__(self, model, poison=None):
        self.model, self.poison = model, poison
        self.release, self.entered = threading.Event(), threading.Event()

    def start(self, source_ids):
        self.entered.set()
        assert self.release.wait(WAIT_S)
        if self.poison is not None and (source_ids == self.poison).any():
            raise RuntimeError("poisoned batch")
        return self.model.start(source_ids)

    def step(self, *args):
        return self.model.step(*args)

    def select(self, *args):
        return self.model.select(*args)


def _gated(tiny_bundle, poison=None):
    translator = Translator(tiny_bundle, graph_search=False)
    gate = translator.model = _Gate(translator.model, poison)
    return translator, gate


def test_a_bad_request_fails_alone(tiny_bundle):
    translator, gate = _gated(tiny_bundle, poison=fmt.UNK_ID)  # a batch holding an unknown character fails
    gate.release.set()
    batcher = BatchingTranslator(translator, max_wait_ms=200)
    try:
        with pytest.raises(TypeError, match=r"texts\[0\]: expected str, got int"):
            batcher.submit([3])  # refused at once, queues nothing
        with pytest.raises(ValueError, match="beam_size: expected an int >= 1, got 0"):
            batcher.submit(["I sit."], beam_size=0)
        futures = _concurrently([lambda text=text: batcher.submit([text]) for text in (*SENTENCES[:3], "☃")])
        assert [f.result(WAIT_S)[0].text for f in futures[:3]] == translator.translate(SENTENCES[:3])
        with pytest.raises(RuntimeError, match="poisoned batch"):  # retried alone: only it fails
            futures[3].result(WAIT_S)
    finally:
        batcher.close()


def test_the_queue_is_bounded_and_a_full_queue_refuses_at_once(tiny_bundle):
    translator, gate = _gated(tiny_bundle)
    batcher = BatchingTranslator(translator, max_queue=3)
    try:
        running = batcher.submit(["I sit."])  # taken by the one replica, which blocks
        assert gate.entered.wait(WAIT_S)
        waiting = [batcher.submit([text]) for text in SENTENCES[1:4]]
        started = time.monotonic()
        with pytest.raises(QueueFull, match="3 requests are waiting"):
            batcher.submit(["one too many"])
        assert time.monotonic() - started < 1
        assert batcher.stats()["queued_requests"] == 3 and batcher.stats()["running_requests"] == 1
        gate.release.set()
        assert [f.result(WAIT_S)[0].text for f in (running, *waiting)] == translator.translate(SENTENCES[:4])
    finally:
        gate.release.set()
        batcher.close()


def test_a_lone_request_does_not_wait_for_company(translator):
    batcher = BatchingTranslator(translator, max_wait_ms=5_000)
    try:
        started = time.monotonic()
        assert batcher.submit(["I sit."]).result(WAIT_S)[0].text == translator.translate(["I sit."])[0]
        assert time.monotonic() - started < 2.5  # nothing else in flight: it starts at once
    finally:
        batcher.close()


def test_token_sized_batches_bound_rows_times_longest(translator):
    ids = [s + [fmt.EOS_ID] for s in translator.source_tokenizer.encode_batch(SENTENCES * 4)]
    starts = []
    original = translator.model.start
    translator.model.start = lambda source_ids: starts.append(source_ids.shape) or original(source_ids)
    try:
        options = DecodingOptions(batch_type="tokens", batch_size=60)
        found = search_sources(translator.model, ids, options, translator.max_target_length)
        by_examples = search_sources(translator.model, ids, DecodingOptions(), translator.max_target_length)
    finally:
        translator.model.start = original
    assert all(rows * length <= 60 or rows == 1 for rows, length in starts[:-1])
    assert len(starts) > 2 and [h[0].tokens for h in found] == [h[0].tokens for h in by_examples]


def test_translate_iterable_streams_windows_in_order_on_every_replica(translator):
    texts = SENTENCES * 9 + ["", "  "]
    seen = []
    results = list(translator.translate_iterable(iter(texts), buffer_size=5, progress=seen.append, beam_size=2))
    assert [r.text for r in results] == translator.translate(texts, beam_size=2)
    assert sum(seen) == len(texts) and max(seen) <= 5
    assert len(translator.replicas) == 2 and translator.replicas[0].model is not translator.replicas[1].model


def test_shared_sessions_replicas_run_one_set_of_sessions(tiny_bundle):
    shared = Translator(tiny_bundle, replicas=3, shared_sessions=True)
    assert len({id(replica.model) for replica in shared.replicas}) == 1
    assert [r.text for r in shared.translate_iterable(SENTENCES, buffer_size=2)] == shared.translate(SENTENCES)


def test_batch_type_is_checked():
    with pytest.raises(ValueError, match="batch_type: expected one of examples, tokens, got 'words'"):
        DecodingOptions(batch_type="words")
    with pytest.raises(TypeError, match="batch_type: expected a str, got int"):
        DecodingOptions(batch_type=1)
