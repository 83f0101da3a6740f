"""int8 bundles are batch-invariant: a sentence translates to the same token ids alone and inside
batches of any companions, greedy and beam (export/quantize.py: int8 weights in MatMulIntegerToFloat,
activations quantized per row). onnxruntime's quantize_dynamic, used before, took one activation
scale per batch; the graph-level test shows the difference on one matmul."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from keras_transformer.corpus import read_parallel_corpus
from keras_transformer.export.quantize import Int8Plan, quantize_columns, quantize_model
from keras_transformer.run_dir import RunDir
from keras_transformer.serve import Translator
from keras_transformer.serve import bundle_format as fmt
from keras_transformer.serve.bundle import read_bundle_config
from keras_transformer.serve.decoding_options import DecodingOptions


MIN_INT8_FOR_THE_TESTS = 256  # every tiny-model weight from 16 x 16 up is int8 (the real threshold is 2^17)
SMALL_WEIGHTS_TOO = Int8Plan(min_weight_elements=MIN_INT8_FOR_THE_TESTS)  # these tests quantize small matrices


def _matmul_model(weight):
    k, n = weight.shape
    graph = helper.make_graph([helper.make_node("MatMul", ["A", "W"], ["Y"])], "matmul",
                              [helper.make_tensor_value_info("A", TensorProto.FLOAT, ["M", k])],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["M", n])],
                              [numpy_helper.from_array(weight, "W")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _session(model):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def test_a_quantized_row_does_not_depend_on_the_other_rows():
    rng = np.random.default_rng(1)
    weight = (rng.normal(size=(64, 96)) * 0.1).astype(np.float32)
    rows = rng.normal(size=(6, 64)).astype(np.float32)
    loud = np.concatenate([rows, 50.0 * rng.normal(size=(3, 64)).astype(np.float32)])  # other activation ranges

    model, replaced = quantize_model(_matmul_model(weight), SMALL_WEIGHTS_TOO)
    assert replaced == 1 and [node.op_type for node in model.graph.node].count("MatMulIntegerToFloat") == 1
    session = _session(model)
    alone = np.concatenate([session.run(None, {"A": row[None]})[0] for row in rows])
    assert np.array_equal(session.run(None, {"A": rows})[0], alone)
    assert np.array_equal(session.run(None, {"A": loud})[0][:6], alone)
    np.testing.assert_allclose(alone, rows @ weight, atol=0.05 * np.abs(rows @ weight).max())

    # The method it replaces: one activation scale for the whole batch, so loud companions change a row.
    from onnxruntime.quantization import QuantType
    from onnxruntime.quantization.onnx_quantizer import ONNXQuantizer  # noqa: F401  (the module quantize_dynamic uses)
    from onnxruntime.quantization import quantize_dynamic
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        fp32, int8 = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        onnx.save(_matmul_model(weight), fp32)
        quantize_dynamic(fp32, int8, weight_type=QuantType.QInt8)
        dynamic = _session(onnx.load(int8))
    dynamic_alone = np.concatenate([dynamic.run(None, {"A": row[None]})[0] for row in rows])
    assert not np.array_equal(dynamic.run(None, {"A": loud})[0][:6], dynamic_alone)


def test_the_plan_keeps_small_weights_float32_and_checks_its_fields(tmp_path):
    weight = np.ones((64, 96), np.float32)  # 6,144 elements, far below the default plan's 2^17
    model, replaced = quantize_model(_matmul_model(weight))
    assert replaced == 0 and [node.op_type for node in model.graph.node] == ["MatMul"]
    assert quantize_model(_matmul_model(weight), Int8Plan(min_weight_elements=64 * 96))[1] == 1
    with pytest.raises(ValueError, match=r"weight_levels: expected 1\.\.63 \(int8 weights\) or 127 \(uint8\), got 100"):
        Int8Plan(weight_levels=100)
    with pytest.raises(ValueError, match="min_weight_elements: expected 0 or more, got -1"):
        Int8Plan(min_weight_elements=-1)
    from keras_transformer.export.exporter import export_bundle

    with pytest.raises(ValueError, match="int8_plan: expected int8=True with it, got int8=False"):
        export_bundle(tmp_path / "run", tmp_path / "bundle", int8_plan=Int8Plan())


def test_column_quantization_round_trips_within_half_a_step():
    weight = np.random.default_rng(4).normal(size=(40, 24)).astype(np.float32)
    weight[:, 3] = 0.0  # a zero column keeps scale 1 rather than dividing by zero
    for levels in (127, 63):  # the uint8 x uint8 form's range, and the 7-bit weights row int8 uses
        quantized, scales = quantize_columns(weight, levels)
        assert quantized.dtype == np.int8 and scales.shape == (24,) and quantized[:, 3].tolist() == [0] * 40
        assert np.abs(quantized).max() == levels and np.all(np.abs(quantized) <= levels)
        assert np.all(np.abs(quantized.astype(np.float32) * scales - weight) <= scales / 2 + 1e-7)


def _two_dense_model(first, second, bias, opset=17):
    """A (B, T, K) -> (A @ first + bias, A @ second): two Dense layers reading the same activation."""
    k = first.shape[0]
    nodes = [helper.make_node("MatMul", ["A", "W1"], ["P1"]), helper.make_node("Add", ["P1", "b1"], ["Y1"]),
             helper.make_node("MatMul", ["A", "W2"], ["Y2"])]
    graph = helper.make_graph(nodes, "dense", [helper.make_tensor_value_info("A", TensorProto.FLOAT, ["B", "T", k])],
                              [helper.make_tensor_value_info(y, TensorProto.FLOAT, None) for y in ("Y1", "Y2")],
                              [numpy_helper.from_array(w, n) for w, n in [(first, "W1"), (bias, "b1"), (second, "W2")]])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


@pytest.mark.parametrize("opset", [17, 18])  # ReduceMax's axes: an attribute, then an input
def test_row_int8_rows_are_independent_exact_and_share_one_quantization(opset):
    rng = np.random.default_rng(2)
    first = (rng.normal(size=(64, 96)) * 0.1).astype(np.float32)
    second = (rng.normal(size=(64, 40)) * 0.1).astype(np.float32)
    bias = rng.normal(size=96).astype(np.float32)
    model, replaced = quantize_model(_two_dense_model(first, second, bias, opset), SMALL_WEIGHTS_TOO)
    op_types = [node.op_type for node in model.graph.node]
    assert replaced == 2 and op_types.count("MatMulIntegerToFloat") == 2 and "MatMul" not in op_types
    assert op_types.count("QuantizeLinear") == 1  # one per activation, not per matmul
    session = _session(model)

    rows = rng.normal(size=(5, 3, 64)).astype(np.float32)  # (B, T, K): every (b, t) is a row
    rows[1, 2] = 0.0  # an all-zero row: no division by zero, the product is exactly the bias
    loud = np.concatenate([rows, 80.0 * rng.normal(size=(2, 3, 64)).astype(np.float32)])
    batched = session.run(None, {"A": rows})
    alone = [np.concatenate(parts) for parts in zip(*(session.run(None, {"A": row[None]}) for row in rows))]
    for got, want in zip(batched, alone):
        assert np.array_equal(got, want)
    for got, want in zip(session.run(None, {"A": loud}), alone):
        assert np.array_equal(got[:5], want)
    assert np.array_equal(batched[0][1, 2], bias) and not np.array_equal(batched[0][1, 1], bias)
    for got, want in zip(batched, (rows @ first + bias, rows @ second)):
        np.testing.assert_allclose(got, want, atol=0.03 * np.abs(want).max())  # int8 both sides: ~1% error


@pytest.mark.parametrize("levels", [63, 127])  # 7-bit int8 weights (the default), the uint8 x uint8 form
def test_row_int8_sums_are_exact_at_the_extremes(levels):
    """Rows of +max|a| (uint8 255) against columns of +max|w| (int8 63): the largest pair of products
    onnxruntime's x86 uint8 x int8 kernel adds in int16 (255 * 63 * 2). With 8-bit int8 weights
    (127) it would saturate at 32767; the result must equal the exact integer product, scaled."""
    k = 64
    weight = np.full((k, 6), 0.5, np.float32)
    weight[:, 1] = -0.5
    weight[::2, 2] = -0.5  # alternating signs: pairs that cancel
    weight[:, 3] = np.linspace(-0.5, 0.5, k)
    model, replaced = quantize_model(_matmul_model(weight), Int8Plan(min_weight_elements=0, weight_levels=levels))
    [stored] = [init for init in model.graph.initializer if init.name.endswith("_weight")]
    assert replaced == 1 and stored.data_type == (TensorProto.INT8 if levels == 63 else TensorProto.UINT8)
    rows = np.stack([np.full(k, 3.0), np.full(k, -3.0), np.linspace(-3, 3, k), np.zeros(k)]).astype(np.float32)
    got = _session(model).run(None, {"A": rows})[0]
    quantized, scales = quantize_columns(weight, levels)
    row_max = np.abs(rows).max(axis=1, keepdims=True)
    row_codes = np.rint(rows / np.maximum(row_max, 1e-30) * 127.0)  # -127..127 around the zero point
    exact = (row_codes.astype(np.int64) @ quantized.astype(np.int64)) * (row_max / 127.0) * scales
    np.testing.assert_allclose(got, exact, rtol=1e-6, atol=1e-5)
    np.testing.assert_allclose(got, rows @ weight, atol=0.02 * np.abs(rows @ weight).max())


@pytest.fixture(scope="module")
def int8_bundle(tmp_path_factory, tiny_run):
    """The tiny run's int8 bundle, every weight int8 (the real threshold is for wide models)."""
    from keras_transformer.export.exporter import export_bundle

    out = tmp_path_factory.mktemp("bundles") / "tiny-int8"
    export_bundle(tiny_run, out, int8=True, int8_plan=SMALL_WEIGHTS_TOO, log=lambda *a, **k: None)
    return out


def test_the_bundle_records_the_method(int8_bundle):
    quantization = read_bundle_config(int8_bundle).values["quantization"]
    assert quantization["method"] == "int8_per_row" and quantization["bits"] == 8
    assert quantization["batch_invariant"] is True and quantization["min_weight_elements"] == MIN_INT8_FOR_THE_TESTS
    assert quantization["weight_levels"] == 63
    assert quantization["greedy_identical_alone_and_batched"] == 1.0
    assert quantization["matmuls_quantized"][fmt.DECODER_FILE] > 0
    decoder = onnx.load(int8_bundle / fmt.DECODER_FILE)
    op_types = {node.op_type for node in decoder.graph.node}
    assert "MatMulIntegerToFloat" in op_types
    assert not op_types & {"DynamicQuantizeLinear", "DynamicQuantizeMatMul"}  # per-tensor (per-batch) scales


def test_step_logits_are_bitwise_identical_alone_and_padded_beside_a_longer_sentence(int8_bundle, tiny_run):
    """The exact cross-attention (export/quantize.py): padding the source adds exact zeros. (The fp32
    graph's MatMul differs here by an ulp for some sentences, harmless without int8 rounding.)"""
    from keras_transformer.serve.batching import pad_batch

    texts = [source for source, _ in read_parallel_corpus(str(RunDir(tiny_run).test_path))[0]]
    translator = Translator(int8_bundle)
    model = translator.model
    sources = translator._source_ids(texts, list(range(len(texts))))
    longest = max(sources, key=len)

    def logits(rows):
        state, tokens, out = model.start(pad_batch(rows)), np.full(len(rows), fmt.BOS_ID, np.int32), []
        for position in range(3):
            step_logits, state = model.step(tokens, position, state)
            out.append(step_logits[0])
            tokens = np.full(len(rows), 5 + position, np.int32)
        return np.stack(out)

    for source in sources:
        assert np.array_equal(logits([source]), logits([source, longest, source[:2] + [fmt.EOS_ID]]))


# The tiny model's beams prefer the empty hypothesis unless a strong length penalty favours length.
@pytest.mark.filterwarnings("ignore::keras_transformer.serve.translator.TruncationWarning")  # long companions
@pytest.mark.parametrize("beam_size, length_penalty", [(1, 1.0), (4, 8.0)])
def test_a_sentence_translates_the_same_alone_and_in_any_batch(int8_bundle, tiny_run, beam_size, length_penalty):
    texts = [source for source, _ in read_parallel_corpus(str(RunDir(tiny_run).test_path))[0]][:16]
    companions = ["zebra " * 12, "the", "9 9 9 ! ? , . ; : ' \" @ # $ % ^ & * ( )", "THE GIRLS READ " * 8]
    translator = Translator(int8_bundle)

    def ids(batch, batch_size):
        options = DecodingOptions(beam_size=beam_size, batch_size=batch_size, length_penalty=length_penalty)
        return [result.target_ids for result in translator.translate_batch(batch, options)]

    alone = [ids([text], 1)[0] for text in texts]
    assert ids(texts, 16) == alone
    assert ids(texts[::-1], 5)[::-1] == alone
    mixed = [x for pair in zip(texts, companions * 4) for x in pair]  # each sentence beside a companion
    assert ids(mixed, 8)[::2] == alone
    assert ids(companions + texts, 32)[len(companions):] == alone
    assert sum(map(len, alone)) >= len(texts)  # real translations, not a trivial comparison
