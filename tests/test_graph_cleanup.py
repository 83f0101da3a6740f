"""Export graph clean-up: the rewrites keep the numbers and remove the kernels they promise to."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from keras_transformer.export.graph_cleanup import fuse_layer_norms
from keras_transformer.serve import bundle_format as fmt

from conftest import TINY_MODEL_OPTIONS

D = 8


def _unfused_layer_norm_graph(extra_output=None, epsilon=1e-6):
    """tf2onnx's lowering of keras_transformer.layer_norm.LayerNormalization on x (B, T, D), ten nodes."""
    rng = np.random.default_rng(0)
    nodes = [
        helper.make_node("GlobalAveragePool", ["x"], ["mean"]),
        helper.make_node("Sub", ["x", "mean"], ["centred"]),
        helper.make_node("Mul", ["centred", "centred"], ["square"]),
        helper.make_node("GlobalAveragePool", ["square"], ["variance"]),
        helper.make_node("Add", ["variance", "epsilon"], ["variance_eps"]),
        helper.make_node("Sqrt", ["variance_eps"], ["std"]),
        helper.make_node("Reciprocal", ["std"], ["inv_std"]),
        helper.make_node("Mul", ["inv_std", "gamma"], ["scale"]),
        helper.make_node("Mul", ["centred", "scale"], ["scaled"]),
        helper.make_node("Add", ["scaled", "beta"], ["y"]),
    ]
    initializers = [numpy_helper.from_array(np.array(epsilon, np.float32), "epsilon"),
                    numpy_helper.from_array(rng.normal(1, 0.2, D).astype(np.float32), "gamma"),
                    numpy_helper.from_array(rng.normal(0, 0.2, D).astype(np.float32), "beta")]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["B", "T", D])]
    if extra_output:
        outputs.append(helper.make_tensor_value_info(extra_output, TensorProto.FLOAT, None))
    graph = helper.make_graph(nodes, "layer_norm", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                                  ["B", "T", D])],
                              outputs, initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _run(model, x):
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})


def test_an_unfused_layer_norm_becomes_one_node_with_the_same_output():
    model = _unfused_layer_norm_graph()
    x = np.random.default_rng(1).normal(3, 2, (2, 5, D)).astype(np.float32)
    before = _run(model, x)[0]
    assert fuse_layer_norms(model) == 1
    onnx.checker.check_model(model)
    assert [node.op_type for node in model.graph.node] == ["LayerNormalization"]
    assert {init.name for init in model.graph.initializer} == {"gamma", "beta"}
    np.testing.assert_allclose(_run(model, x)[0], before, atol=1e-5)


def test_a_layer_norm_whose_intermediate_is_used_elsewhere_is_left_alone():
    model = _unfused_layer_norm_graph(extra_output="variance")
    assert fuse_layer_norms(model) == 0
    assert len(model.graph.node) == 10


def test_global_average_pool_on_a_rank_4_tensor_is_not_a_last_axis_mean():
    model = _unfused_layer_norm_graph()
    model.graph.input[0].CopyFrom(helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", "C", "T", D]))
    model.graph.output[0].CopyFrom(helper.make_tensor_value_info("y", TensorProto.FLOAT, None))
    assert fuse_layer_norms(model) == 0


@pytest.mark.parametrize("graph_file", [fmt.ENCODER_FILE, fmt.DECODER_FILE])
def test_tf2onnx_graphs_have_one_node_per_layer_norm_and_no_tensordot(tiny_run, tiny_bundle, graph_file):
    """The clean-up runs on what tf2onnx writes: the bundle's encoder.onnx, and the decoder step of
    `export --standard-ops` (the default decoder.onnx is built fused, export/fused_graphs.py)."""
    if graph_file == fmt.ENCODER_FILE:
        graph = onnx.load(tiny_bundle / graph_file).graph
    else:
        from keras_transformer.export.onnx_graphs import convert_decoder_step
        from keras_transformer.run_dir import RunDir

        graph = convert_decoder_step(RunDir(tiny_run).load_model()).graph
    ops = [node.op_type for node in graph.node]
    norms_per_layer = 2 if graph_file == fmt.ENCODER_FILE else 3  # self-attention, (cross-attention,) FFN
    assert ops.count("LayerNormalization") == norms_per_layer * TINY_MODEL_OPTIONS["num_layers"]
    assert "GlobalAveragePool" not in ops and "ReduceMean" not in ops and "Sqrt" not in ops
    assert not any("Tensordot" in node.name and node.op_type == "Reshape" for node in graph.node)
