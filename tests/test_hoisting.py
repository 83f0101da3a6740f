"""export/hoisting.py: the step's per-batch nodes move into a graph of their own, and the step given their
results computes what it computed before."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from keras_transformer.export.hoisting import split_per_batch

RNG = np.random.default_rng(0)
TABLE = RNG.standard_normal((10, 4)).astype(np.float32)  # (V, D): a projection's rows


def _step_model():
    """rows x (B, 4), ids (C,) -> logits: x @ TABLE.T with no ids, x @ TABLE[ids].T with ids (an If, as the
    shortlist decoder's), plus a scale computed from constants only (which must stay in the step)."""
    whole = helper.make_graph([helper.make_node("Gemm", ["x", "table", "zero"], ["all"], transB=1)], "every", [],
                              [helper.make_tensor_value_info("all", TensorProto.FLOAT, None)])
    chosen = helper.make_graph([
        helper.make_node("Gather", ["table", "ids"], ["rows"], axis=0),  # per batch: moves out of the branch
        helper.make_node("Transpose", ["rows"], ["rows_t"], perm=[1, 0]),  # per batch too
        helper.make_node("MatMul", ["x", "rows_t"], ["some"]),  # reads x: stays
    ], "chosen", [], [helper.make_tensor_value_info("some", TensorProto.FLOAT, None)])
    nodes = [
        helper.make_node("Size", ["ids"], ["count"]),
        helper.make_node("Equal", ["count", "no_ids"], ["every"]),
        helper.make_node("Mul", ["two", "two"], ["four"]),  # constants only: left to constant folding
        helper.make_node("If", ["every"], ["logits_unscaled"], then_branch=whole, else_branch=chosen),
        helper.make_node("Mul", ["logits_unscaled", "four"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes, "step",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", 4]),
         helper.make_tensor_value_info("ids", TensorProto.INT64, ["C"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["B", None])],
        [numpy_helper.from_array(TABLE, "table"), numpy_helper.from_array(np.zeros(1, np.float32), "zero"),
         numpy_helper.from_array(np.array(0, np.int64), "no_ids"), numpy_helper.from_array(np.float32(2), "two")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _run(model, feeds):
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)


def test_the_per_batch_nodes_move_out_and_the_step_given_their_results_computes_the_same():
    model = _step_model()
    prelude, step, operands = split_per_batch(model, ["ids"])
    assert [node.op_type for node in prelude.graph.node] == ["Size", "Equal", "Gather", "Transpose"]
    assert operands == ["every", "rows_t"]  # the values the step still reads (not `rows`, `count`)
    assert [value.name for value in step.graph.input] == ["x", "every", "rows_t"]
    assert [node.op_type for node in step.graph.node] == ["Mul", "If", "Mul"]  # the constant-only Mul stays
    branch = next(node for node in step.graph.node if node.op_type == "If").attribute
    assert {a.name: [node.op_type for node in a.g.node] for a in branch} == {"then_branch": ["Gemm"],
                                                                             "else_branch": ["MatMul"]}
    assert "no_ids" not in {tensor.name for tensor in step.graph.initializer}  # read by the prelude only
    assert {tensor.name for tensor in prelude.graph.initializer} == {"table", "no_ids"}
    onnx.checker.check_model(prelude)
    onnx.checker.check_model(step)
    x = RNG.standard_normal((3, 4)).astype(np.float32)
    for ids in (np.zeros(0, np.int64), np.array([7, 0, 3], np.int64)):
        given = dict(zip(operands, _run(prelude, {"ids": ids})))
        assert given["rows_t"].shape == (4, len(ids))
        (expected,) = _run(model, {"x": x, "ids": ids})
        (got,) = _run(step, {"x": x, **given})
        np.testing.assert_array_equal(got, expected)
        np.testing.assert_allclose(got, 4 * x @ (TABLE[ids] if len(ids) else TABLE).T, rtol=1e-5)


def test_a_graph_without_per_batch_nodes_or_still_reading_the_input_is_refused():
    with pytest.raises(ValueError, match="no node depends"):
        split_per_batch(_step_model(), ["absent"])
    mixed = _step_model()  # a node reading the ids and a per-step value stays in the step: refused
    mixed.graph.node.extend([helper.make_node("Shape", ["x"], ["x_shape"]),
                             helper.make_node("Concat", ["ids", "x_shape"], ["ids_and_shape"], axis=0)])
    mixed.graph.output.append(helper.make_tensor_value_info("ids_and_shape", TensorProto.INT64, [None]))
    with pytest.raises(ValueError, match=r"still reads \['ids'\]"):
        split_per_batch(mixed, ["ids"])
