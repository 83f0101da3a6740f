"""The vocabulary shortlist: IBM Model 1 finds a dictionary, a batch's candidates and each row's own, the
decoding loop on a shortlist's columns equals the full loop with every other token banned, and a bundle
exported with --shortlist translates exactly like the bundle without when the shortlist holds every token,
and like itself alone and batched when it does not."""

import json
import shutil

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from keras_transformer.export.shortlist import estimate, vmap_lines
from keras_transformer.serve import Translator
from keras_transformer.serve import bundle_format as fmt
from keras_transformer.serve.decoding import search
from keras_transformer.serve.decoding_options import DecodingOptions
from keras_transformer.serve.shortlist import Shortlist

SENTENCES = ["I sit.", "you do not call the good girls.", "do you call the girl?", "did the woman sit?",
             "the old women are calling the children.", "we will sit.", "are you calling the good woman?"]


def test_ibm_model_1_finds_a_dictionary_where_co_occurrence_would_pick_frequent_tokens():
    rng = np.random.default_rng(0)
    pairs = []
    for _ in range(2000):  # target = each source token + 100, plus two frequent filler tokens in every pair
        source = rng.integers(10, 60, rng.integers(3, 10))
        target = np.concatenate([source + 100, rng.integers(4, 8, 2)])
        rng.shuffle(target)
        pairs.append((source, target))
    table = estimate(pairs, source_vocab_size=200, target_vocab_size=300, k=2, frequent=4)
    assert [row[0] for row in table.table[10:60].tolist()] == list(range(110, 160))
    assert sorted(table.frequent.tolist()) == [4, 5, 6, 7]
    assert table.table.shape == (200, 2) and table.table[0].tolist() == table.frequent[:2].tolist()  # unseen id 0


def test_a_batch_computes_the_union_and_each_row_keeps_its_own_candidates():
    shortlist = Shortlist(frequent=np.array([5]), table=np.array([[7, 8], [9, 7], [6, 6]]), target_vocab_size=12)
    assert shortlist.candidates([0, 2]).tolist() == [1, 2, 3, 5, 6, 7, 8]  # BOS, EOS and UNK always
    vocab, allowed = shortlist.for_batch([[0], [1]])
    assert vocab.tolist() == [1, 2, 3, 5, 7, 8, 9]
    assert allowed.tolist() == [[True] * 6 + [False], [True] * 5 + [False, True]]


def test_int8_on_gathered_rows_gives_the_full_int8_products_columns_to_the_bit():
    """The shortlist's projection, Gemm(A, Gather(Wᵀ, ids), bias[ids], transB=1), quantized as the full
    MatMul(A, W) + bias is: the same int8 columns and scales, so each logit is the full graph's."""
    from onnx import TensorProto, helper, numpy_helper

    from keras_transformer.export.quantize import Int8Plan, quantize_model

    rng = np.random.default_rng(4)
    weight = (rng.normal(size=(32, 50)) * 0.2).astype(np.float32)  # (K, N)
    bias = rng.normal(size=50).astype(np.float32)
    inputs = [helper.make_tensor_value_info("A", TensorProto.FLOAT, ["M", 32]),
              helper.make_tensor_value_info("ids", TensorProto.INT32, ["C"])]
    gathered = helper.make_graph(
        [helper.make_node("Gather", ["W_rows", "ids"], ["chosen"], axis=0),
         helper.make_node("Gather", ["b", "ids"], ["chosen_bias"], axis=0),
         helper.make_node("Gemm", ["A", "chosen", "chosen_bias"], ["Y"], transB=1)],
        "gathered", inputs, [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["M", "C"])],
        [numpy_helper.from_array(np.ascontiguousarray(weight.T), "W_rows"), numpy_helper.from_array(bias, "b")])
    full = helper.make_graph(
        [helper.make_node("MatMul", ["A", "W"], ["P"]), helper.make_node("Add", ["P", "b"], ["Y"])],
        "full", inputs[:1], [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["M", 50])],
        [numpy_helper.from_array(weight, "W"), numpy_helper.from_array(bias, "b")])
    plan = Int8Plan(min_weight_elements=0)
    sessions = []
    for graph in (gathered, full):
        model, replaced = quantize_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), plan)
        op_types = {node.op_type for node in model.graph.node}
        assert replaced == 1 and not op_types & {"MatMul", "Gemm"} and "MatMulIntegerToFloat" in op_types
        assert not {"W", "W_rows"} & {init.name for init in model.graph.initializer}  # the float copy is gone
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        sessions.append(ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"]))
    rows = rng.normal(size=(6, 32)).astype(np.float32)
    every = sessions[1].run(None, {"A": rows})[0]
    np.testing.assert_allclose(every, rows @ weight + bias, atol=0.03 * np.abs(rows @ weight).max())
    for ids in (np.array([0, 7, 49, 3], np.int32), np.arange(50, dtype=np.int32), np.array([5], np.int32)):
        assert np.array_equal(sessions[0].run(None, {"A": rows, "ids": ids})[0], every[:, ids])


class Logits:
    """A fake step model over a vocabulary of 12: logits from (source, position, last token); `columns`
    restricts them to those ids (what a shortlist decoder computes), `banned` sets the others to -inf."""

    def __init__(self, columns=None, banned=None):
        self.columns, self.banned = columns, banned

    def start(self, sources):
        return {"source": np.asarray(sources), "last": np.full(len(sources), fmt.BOS_ID)}

    def step(self, tokens, position, state):
        rng = [np.random.default_rng([int(s), position, int(t)]) for s, t in zip(state["source"], tokens)]
        logits = np.stack([r.normal(0, 2, 12) for r in rng]).astype(np.float32)
        logits[:, fmt.EOS_ID] += 0.4 * position  # sentences end
        if self.banned is not None:
            logits[:, self.banned] = -np.inf
        if self.columns is not None:
            logits = logits[:, self.columns]
        return logits, {**state, "last": tokens}

    def select(self, state, rows):
        return {name: value[rows] for name, value in state.items()}


@pytest.mark.parametrize("options", [dict(), dict(beam_size=3, num_hypotheses=2), dict(return_scores=True),
                                     dict(beam_size=2, no_repeat_ngram_size=1, repetition_penalty=1.5),
                                     dict(sampling_topk=0, seed=3)])
def test_decoding_on_shortlist_columns_equals_the_full_loop_with_the_rest_banned(options):
    columns = np.array([2, 3, 4, 6, 7, 9, 11])
    banned = np.setdiff1d(np.arange(12), columns)
    options = DecodingOptions(**options)
    sources = [3, 8, 1]
    generators = lambda: ([np.random.default_rng([3, s]) for s in sources]  # noqa: E731
                          if options.samples else None)
    full = search(Logits(banned=banned), Logits().start(sources), 3, fmt.BOS_ID, fmt.EOS_ID, 9, options, generators())
    restricted = search(Logits(columns=columns), Logits().start(sources), 3, fmt.BOS_ID, fmt.EOS_ID, 9, options,
                        generators(), vocab=columns)
    assert [[h.tokens for h in hs] for hs in restricted] == [[h.tokens for h in hs] for hs in full]
    assert all(token in columns for hs in restricted for h in hs for token in h.tokens)
    for got, expected in zip(restricted, full):
        np.testing.assert_allclose([h.score for h in got], [h.score for h in expected], rtol=1e-6, atol=1e-6)


@pytest.fixture(scope="module")
def every_token_bundle(tiny_run, tmp_path_factory):
    """tiny_run exported with a shortlist whose frequent tokens are the whole target vocabulary."""
    from keras_transformer.export.exporter import export_bundle

    out = tmp_path_factory.mktemp("bundles") / "every-token"
    export_bundle(tiny_run, out, shortlist=2, shortlist_frequent=10_000, log=lambda *a: None)
    return out


@pytest.fixture(scope="module")
def shortlist_bundle(tiny_run, tmp_path_factory):
    from keras_transformer.export.exporter import export_bundle

    out = tmp_path_factory.mktemp("bundles") / "shortlist"
    export_bundle(tiny_run, out, shortlist=8, shortlist_frequent=10, log=lambda *a: None)
    return out


@pytest.mark.parametrize("options", [dict(), dict(beam_size=4), dict(beam_size=3, num_hypotheses=3, batch_size=1)])
def test_a_shortlist_holding_every_token_translates_as_the_full_vocabulary(every_token_bundle, tiny_bundle, options):
    full = Translator(tiny_bundle).translate_batch(SENTENCES, **options)
    for graph_search in (True, False):
        shortlisted = Translator(every_token_bundle, graph_search=graph_search)
        assert len(shortlisted.shortlist.candidates([5])) == shortlisted.target_tokenizer.vocab_size
        got = shortlisted.translate_batch(SENTENCES, **options)
        assert [[h.target_ids for h in r.hypotheses] for r in got] == [[h.target_ids for h in r.hypotheses]
                                                                       for r in full]


def test_the_shortlist_decoder_given_no_ids_computes_every_logit_as_the_plain_decoder(shortlist_bundle, tiny_bundle):
    """Turned off, a shortlist bundle's step is the whole projection (one Gemm, the If's first branch), not
    every row gathered: the plain decoder's logits."""
    from keras_transformer.serve.batching import pad_batch

    plain, listed = Translator(tiny_bundle).model, Translator(shortlist_bundle).model
    sources = Translator(tiny_bundle).encode(SENTENCES)[0].sources
    tokens = np.full(len(sources), fmt.BOS_ID, np.int32)
    expected, _ = plain.step(tokens, 0, plain.start(pad_batch(sources)))
    state = listed.start(pad_batch(sources))
    assert state[fmt.VOCAB_IDS].size == 0
    got, _ = listed.step(tokens, 0, state)
    assert got.shape == expected.shape == (len(sources), Translator(tiny_bundle).target_tokenizer.vocab_size)
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)
    assert any(node.op_type == "If" for node in onnx.load(shortlist_bundle / fmt.DECODER_FILE).graph.node)


def test_a_shortlist_bundle_is_batch_invariant_restricted_and_can_be_turned_off(shortlist_bundle, tiny_bundle):
    config = json.loads((shortlist_bundle / fmt.CONFIG_FILE).read_text())
    record = config["shortlist"]
    assert record["k"] == 8 and record["frequent"] == 10 and fmt.SHORTLIST_FILE in config["files"]
    # the projection's rows are gathered once per batch, by candidates.onnx; the step reads them
    operands = record["operands"]
    assert config["graphs"]["candidates"]["inputs"] == [fmt.VOCAB_IDS] and fmt.CANDIDATES_FILE in config["files"]
    assert config["graphs"]["candidates"]["outputs"] == operands
    assert fmt.VOCAB_IDS not in config["graphs"]["decoder"]["inputs"] and set(operands) <= set(
        config["graphs"]["decoder"]["inputs"])
    assert "Gather" in [node.op_type for node in onnx.load(shortlist_bundle / fmt.CANDIDATES_FILE).graph.node]
    assert record["identical_given_every_id"].split("/")[0] == record["identical_given_every_id"].split("/")[1]
    translator = Translator(shortlist_bundle, graph_search=False)
    for beam_size in (1, 3):
        batched = translator.translate_batch(SENTENCES, beam_size=beam_size)
        alone = [translator.translate_batch([s], beam_size=beam_size)[0] for s in SENTENCES]
        assert [r.target_ids for r in batched] == [r.target_ids for r in alone]
        for result in batched:
            allowed = set(translator.shortlist.candidates(result.source_ids).tolist())
            assert set(result.target_ids) <= allowed
    off = translator.translate(SENTENCES, use_shortlist=False, beam_size=2)
    assert off == Translator(tiny_bundle).translate(SENTENCES, beam_size=2)  # the whole vocabulary again
    in_graph = Translator(shortlist_bundle)  # generate.onnx on the sentence's candidates, one sentence a call
    for beam_size in (1, 4):
        assert in_graph.translate(SENTENCES, batch_size=1, beam_size=beam_size) == translator.translate(
            SENTENCES, batch_size=1, beam_size=beam_size)
    generate = config["graphs"]["generate"]
    assert fmt.VOCAB_IDS in generate["inputs"] and "shortlist on, greedy" in generate["identical_to_numpy_loop"]


def test_generate_onnx_scatters_a_batch_of_beams_into_rows_set_up_once_per_call(shortlist_bundle):
    """generate.onnx's step scatters the candidates' logits into -inf rows built once per call in the outer
    graph (sentences x beams of them): one If a step, no scatter set-up in the loop; a batch of sentences,
    each with beams, gets from one call what each sentence gets alone, given the same candidates."""
    from keras_transformer.serve.batching import pad_batch
    from keras_transformer.serve.graph_search import GraphSearch
    from keras_transformer.serve.sessions import session_options

    model = onnx.load(shortlist_bundle / fmt.GENERATE_FILE)
    search = next(node for node in model.graph.node if node.op_type == "BeamSearch")
    step = next(attribute.g for attribute in search.attribute if attribute.name == "decoder")
    step_ops = [node.op_type for node in step.node]
    assert step_ops.count("If") == 1 and not {"ScatterElements", "ConstantOfShape", "Expand"} & set(step_ops)
    assert "Cast" not in step_ops  # the mask arrives as int32 and the position as Shape gives it
    translator = Translator(shortlist_bundle, graph_search=False)
    sources = [translator.translate_batch([text])[0].source_ids for text in SENTENCES[:3]]
    vocab_ids, _ = translator.shortlist.for_batch(sources)  # one set of candidates for the whole call
    graph = GraphSearch(shortlist_bundle / fmt.GENERATE_FILE, session_options(1), 2, shortlist=True)
    options = DecodingOptions(beam_size=3, num_hypotheses=2)
    together = graph.search(pad_batch(sources), 12, options, vocab_ids)
    alone = [graph.search(pad_batch([source]), 12, options, vocab_ids)[0] for source in sources]
    assert [[h.tokens for h in row] for row in together] == [[h.tokens for h in row] for row in alone]
    assert all(set(h.tokens) <= set(vocab_ids.tolist()) for row in together for h in row)


def test_int8_with_a_shortlist_of_every_token_translates_as_the_int8_bundle(tiny_run, tmp_path_factory):
    """int8 and the shortlist together: the gathered projection is quantized as the full one (the
    export's own check, given every id, refused every trained model before), greedy and beam."""
    from keras_transformer.export.exporter import export_bundle
    from tests.test_int8_batch_invariance import SMALL_WEIGHTS_TOO

    out = tmp_path_factory.mktemp("bundles")
    export_bundle(tiny_run, out / "int8", int8=True, int8_plan=SMALL_WEIGHTS_TOO, log=lambda *a: None)
    export_bundle(tiny_run, out / "int8-every", int8=True, int8_plan=SMALL_WEIGHTS_TOO, shortlist=2,
                  shortlist_frequent=10_000, log=lambda *a: None)
    def op_types(graph):  # the graph's and its If branches'
        for node in graph.node:
            yield node.op_type
            for attribute in node.attribute:
                if attribute.type == onnx.AttributeProto.GRAPH:
                    yield from op_types(attribute.g)

    full, listed = (list(op_types(onnx.load(out / name / fmt.DECODER_FILE).graph)) for name in ("int8", "int8-every"))
    # the projection is int8 in both: in the shortlist decoder, in both branches (no ids, the ids given)
    assert listed.count("MatMulIntegerToFloat") == full.count("MatMulIntegerToFloat") + 1 and "Gemm" not in listed
    for options in (dict(), dict(beam_size=4, length_penalty=1.0)):
        full = Translator(out / "int8").translate_batch(SENTENCES, **options)
        for graph_search in (True, False):
            got = Translator(out / "int8-every", graph_search=graph_search).translate_batch(SENTENCES, **options)
            assert [r.target_ids for r in got] == [r.target_ids for r in full]


def test_ctranslate2s_vocabulary_map_lists_the_same_candidates():
    shortlist = estimate([(np.array([4, 5]), np.array([6, 7]))] * 3, 8, 9, k=2, frequent=1)
    tokens = [f"s{i}" for i in range(8)], [f"t{i}" for i in range(9)]
    lines = vmap_lines(shortlist, *tokens)
    assert lines[0] == "\t" + " ".join(f"t{i}" for i in sorted(shortlist.frequent.tolist()))
    assert lines[1 + 4].split("\t") == ["s4", " ".join(f"t{i}" for i in sorted(set(shortlist.table[4].tolist())))]


def test_a_shortlist_bundle_from_before_candidates_onnx_is_refused_by_name(shortlist_bundle, tmp_path):
    """A shortlist bundle whose decoder took vocab_ids (exported before candidates.onnx) names what to do."""
    from keras_transformer.serve.bundle import BundleError

    old = tmp_path / "old"
    shutil.copytree(shortlist_bundle, old)
    config = json.loads((old / fmt.CONFIG_FILE).read_text())
    del config["shortlist"]["operands"]
    (old / fmt.CONFIG_FILE).write_text(json.dumps(config))
    with pytest.raises(BundleError, match="shortlist.operands.*export it again"):
        Translator(old)
