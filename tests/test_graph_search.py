"""generate.onnx: greedy and beam search inside onnxruntime's BeamSearch operator must give the numpy
decoding loop's hypotheses (tokens, n-best order, scores to float32 precision), in padded batches,
at the length cap, with any length penalty, for fp32 and int8 bundles; settings it cannot
reproduce go to the numpy loop."""

import json
import math

import numpy as np
import onnx
import pytest

from keras_transformer.serve import bundle_format as fmt
from keras_transformer.serve.batching import encode_sources, search_sources
from keras_transformer.serve.decoding_options import DecodingOptions
from keras_transformer.serve.graph_search import GraphSearch
from keras_transformer.serve.translator import Translator


@pytest.fixture(scope="module")
def translators(tiny_bundle):
    in_graph = Translator(tiny_bundle)
    assert in_graph.graph_search.max_batch == 1  # the Translator's default: one sentence per call
    in_graph.graph_search.max_batch = 64  # here: the operator's search in padded batches too
    return in_graph, Translator(tiny_bundle, graph_search=False)


@pytest.fixture(scope="module")
def sources(translators, demo_pairs):
    texts = [source for source, _ in demo_pairs.test] + ["a b c " * 12, "zq", "?"]
    ids, _ = encode_sources(translators[0].source_tokenizer, texts, translators[0].max_source_length)
    return ids


def _search(translator, sources, **options):
    return search_sources(translator.model, sources, DecodingOptions(**options), translator.max_target_length,
                          graph_search=translator.graph_search)


def test_the_bundle_has_a_checked_generate_graph(tiny_bundle, translators):
    config = json.loads((tiny_bundle / fmt.CONFIG_FILE).read_text())
    record = config["graphs"]["generate"]
    assert fmt.GENERATE_FILE in config["files"]
    assert [record["inputs"], record["outputs"]] == list(fmt.generate_io_names(2))
    assert all(a == b for a, b in (value.split("/") for value in record["identical_to_numpy_loop"].values()))
    assert translators[0].graph_search is not None and translators[1].graph_search is None
    graph = onnx.load(tiny_bundle / fmt.GENERATE_FILE)
    (search,) = [node for node in graph.graph.node if node.op_type == "BeamSearch"]
    subgraphs = {a.name: a.g for a in search.attribute if a.type == onnx.AttributeProto.GRAPH}
    decoder_weights = {t.name for t in onnx.load(tiny_bundle / fmt.DECODER_FILE).graph.initializer}
    for name, prefix in (("decoder", "step/"), ("encoder", "first/")):  # each holds its own copy (faster)
        assert {prefix + w for w in decoder_weights} <= {t.name for t in subgraphs[name].initializer}


@pytest.mark.parametrize("options", [
    dict(beam_size=1, batch_size=1),
    dict(beam_size=1, batch_size=16),
    dict(beam_size=1, batch_size=16, return_scores=True, length_penalty=0.6),
    dict(beam_size=4, length_penalty=0.0, batch_size=1),
    dict(beam_size=4, length_penalty=0.0, batch_size=16, num_hypotheses=3),
    dict(beam_size=4, batch_size=16, num_hypotheses=4),  # the default length penalty, 1.0
    dict(beam_size=3, length_penalty=0.6, batch_size=7, max_length=5),  # most hit the length cap
    dict(beam_size=5, length_penalty=2.0, batch_size=1, max_length=9),
])
def test_graph_search_gives_the_numpy_loops_hypotheses(translators, sources, options):
    in_graph, numpy_loop = translators
    assert in_graph.graph_search.handles(DecodingOptions(beam_size=options["beam_size"]), 40)
    got, expected = _search(in_graph, sources, **options), _search(numpy_loop, sources, **options)
    assert [[h.tokens for h in hs] for hs in got] == [[h.tokens for h in hs] for hs in expected]
    for hypotheses, wanted in zip(got, expected):
        for h, w in zip(hypotheses, wanted):
            if math.isnan(w.score):
                assert math.isnan(h.score) and math.isnan(h.log_prob)
            else:
                assert h.score == pytest.approx(w.score, rel=1e-5, abs=1e-5)
                assert h.log_prob == pytest.approx(w.log_prob, rel=1e-5, abs=1e-5)
        assert [h.score for h in hypotheses] == sorted((h.score for h in hypotheses), reverse=True)


def test_a_graph_search_translation_does_not_depend_on_its_batch(translators, sources):
    in_graph, _ = translators
    for beam_size in (1, 4):
        alone = _search(in_graph, sources, beam_size=beam_size, batch_size=1)
        batched = _search(in_graph, sources, beam_size=beam_size, batch_size=32)
        assert [h[0].tokens for h in alone] == [h[0].tokens for h in batched]


def test_the_translator_sends_one_sentence_batches_to_the_operator(tiny_bundle, sources):
    translator = Translator(tiny_bundle)
    graph_search, batches = translator.graph_search, []
    search = graph_search.search
    graph_search.search = lambda source_ids, *rest: batches.append(len(source_ids)) or search(source_ids, *rest)
    _search(translator, sources[:5], batch_size=1, beam_size=2)
    assert batches == [1] * 5
    batches.clear()
    _search(translator, sources[:5], batch_size=5, beam_size=2)  # the numpy loop drops finished rows
    assert batches == []


@pytest.mark.parametrize("settings, handled", [
    (DecodingOptions(), True),
    (DecodingOptions(beam_size=4, length_penalty=0.0, num_hypotheses=4), True),
    (DecodingOptions(beam_size=4, length_penalty=1.0), True),
    (DecodingOptions(beam_size=4, length_penalty=0.0, patience=2.0), False),
    (DecodingOptions(sampling_topk=5), False),
    (DecodingOptions(repetition_penalty=1.2), False),
    (DecodingOptions(beam_size=2, length_penalty=0.0, no_repeat_ngram_size=2), False),
])
def test_only_settings_the_operator_reproduces_go_to_it(settings, handled):
    assert GraphSearch.handles(settings, 40) is handled
    assert GraphSearch.handles(settings, 1) is False  # see GraphSearch.handles


@pytest.mark.parametrize("max_length", [1, 2, 3])
def test_the_shortest_outputs_match_too(translators, sources, max_length):
    for beam_size in (1, 3):
        got = _search(translators[0], sources, beam_size=beam_size, max_length=max_length, return_scores=True)
        expected = _search(translators[1], sources, beam_size=beam_size, max_length=max_length, return_scores=True)
        assert [[h.tokens for h in hs] for hs in got] == [[h.tokens for h in hs] for hs in expected]
        assert [hs[0].score for hs in got] == pytest.approx([hs[0].score for hs in expected], rel=1e-5, abs=1e-5)


def test_other_settings_still_decode_through_the_numpy_loop(translators, sources):
    in_graph, numpy_loop = translators
    for options in (dict(beam_size=4, patience=2.0), dict(repetition_penalty=1.3), dict(sampling_topk=4, seed=3)):
        got = [h[0].tokens for h in _search(in_graph, sources[:12], **options)]
        assert got == [h[0].tokens for h in _search(numpy_loop, sources[:12], **options)]
    with pytest.raises(ValueError, match="numpy decoding loop"):
        in_graph.graph_search.search(np.array([[5, 2]], np.int32), 8, DecodingOptions(beam_size=2, patience=3.0))


def test_int8_bundles_search_in_the_graph_too(tmp_path, tiny_run, sources):
    from keras_transformer.export import quantize
    from keras_transformer.export.exporter import export_bundle

    export_bundle(tiny_run, tmp_path / "int8", int8=True, int8_plan=quantize.Int8Plan(min_weight_elements=256),
                  log=lambda *a: None)  # every weight of the tiny model int8
    in_graph, numpy_loop = Translator(tmp_path / "int8"), Translator(tmp_path / "int8", graph_search=False)
    in_graph.graph_search.max_batch = 64
    for options in (dict(batch_size=1), dict(batch_size=16), dict(beam_size=4, batch_size=16)):
        got = [h[0].tokens for h in _search(in_graph, sources, **options)]
        assert got == [h[0].tokens for h in _search(numpy_loop, sources, **options)]


def test_standard_ops_bundles_have_no_generate_graph(tmp_path, tiny_run):
    from keras_transformer.export.exporter import export_bundle

    config = export_bundle(tiny_run, tmp_path / "standard", standard_ops=True, log=lambda *a: None)
    assert "generate" not in config["graphs"] and fmt.GENERATE_FILE not in config["files"]
    assert Translator(tmp_path / "standard").graph_search is None


def test_a_changed_generate_graph_is_refused(tmp_path, tiny_bundle):
    import shutil

    from keras_transformer.serve.bundle import BundleError

    copy = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, copy)
    with open(copy / fmt.GENERATE_FILE, "ab") as f:
        f.write(b"\0")
    with pytest.raises(BundleError, match="generate.onnx: sha256 mismatch"):
        Translator(copy)
