"""`--int8`: int8 weights for the large MatMuls, activations quantized row by row, never per batch.

An `Int8Plan` says which constant MatMul weights become int8 (those of `min_weight_elements` and
more: below that int8 was no faster than float32) and how (`weight_levels`: 7-bit weights, so that
onnxruntime's x86 uint8 x int8 kernel, which adds pairs of products in int16, cannot saturate:
255 * 63 * 2 < 32767). Each such MatMul (with its bias Add) becomes a `MatMulIntegerToFloat`
(exact int32 sums, scaled back per row and column) on its input scaled to uint8 row by row, each
row by its own max |a| (six small ops per activation, shared by the matmuls that read it). A row's
result depends on that row alone, so a sentence translates to the same tokens whatever shares its
batch (onnxruntime's `quantize_dynamic` takes one activation scale per batch);
`exact_cross_attention` makes exact the one float sum that padding could change. Figures:
bench/RESULTS-int8-matmul.md, bench/RESULTS-speed-changes.md (sections 4 and 6; its last section
says why the MatMulNBits form was dropped).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .graph_walk import all_nodes, subgraphs


@dataclass(frozen=True)
class Int8Plan:
    """Which weights `quantize_model` makes int8, and with how many levels."""

    min_weight_elements: int = 1 << 17  # K * N; smaller weights (below 256 x 512) stay float32
    weight_levels: int = 63  # weights in -63..63 as int8 (7 bits); 127: uint8 x uint8, 8 bits

    def __post_init__(self):
        if self.min_weight_elements < 0:
            raise ValueError(f"Int8Plan.min_weight_elements: expected 0 or more, got {self.min_weight_elements}")
        if not (0 < self.weight_levels <= 63 or self.weight_levels == 127):
            raise ValueError(f"Int8Plan.weight_levels: expected 1..63 (int8 weights) or 127 (uint8), "
                             f"got {self.weight_levels}")

    def describe(self) -> dict:
        """The bundle config's "quantization" record (the export adds its measured figures)."""
        weights = (f"weights in -{self.weight_levels}..{self.weight_levels}" if self.weight_levels < 127
                   else "uint8 weights")
        return {
            "type": (f"int8 weights, activations quantized per row: weights under {self.min_weight_elements} "
                     f"elements stay float32, the others as MatMulIntegerToFloat (uint8 activations x {weights}, "
                     "one scale per weight column and per activation row); never a scale per batch"),
            "method": "int8_per_row",
            "bits": 8,
            "min_weight_elements": self.min_weight_elements,
            "weight_levels": self.weight_levels,
            "batch_invariant": True,
        }


def quantize_columns(weight: np.ndarray, levels: int) -> tuple[np.ndarray, np.ndarray]:
    """W float (K, N) -> (int8 (K, N), scales float32 (N,)): column n is round(w / scale_n) in
    -levels..levels with scale_n = max |column n| / levels (1 for an all-zero column), so W is
    about quantized * scales."""
    columns = weight.T.astype(np.float32)  # (N, K)
    scales = np.abs(columns).max(axis=1) / np.float32(levels)
    scales = np.where(scales == 0.0, 1.0, scales).astype(np.float32)
    quantized = np.clip(np.rint(columns / scales[:, None]), -levels, levels)  # (N, K)
    return quantized.T.astype(np.int8), scales


def quantize_model(model, plan: Int8Plan = Int8Plan()):
    """An onnx ModelProto with every MatMul(A, constant 2-D W of `plan.min_weight_elements` or more)
    replaced by the row-int8 chain (`_row_int8_nodes`), the Dense layer's bias Add included; returns
    (model, number of matmuls replaced). A Gemm(A, Wᵀ rows, bias, transB=1), on a constant (N, K) table
    or on rows gathered from one (the shortlist's projection, in the branches of an If), gets the same
    int8 columns of W, so each logit is the full int8 graph's to the bit. Matmuls of two activations
    (attention) stay float32."""
    from onnx import helper, numpy_helper

    graph = model.graph
    initializers = {init.name: init for init in graph.initializer}
    uses: dict[str, int] = {}
    for node in all_nodes(graph):
        for name in node.input:
            uses[name] = uses.get(name, 0) + 1
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    state = {"initializers": [], "replaced": 0, "rows": False}
    _quantize_nodes(graph, initializers, uses, plan, opset, state)
    new_initializers = state["initializers"]
    if state["rows"]:
        constants = dict(ROW_INT8_CONSTANTS, **({"row_int8_axes": np.array([-1], np.int64)} if opset >= 18 else {}))
        new_initializers += [numpy_helper.from_array(value, name) for name, value in constants.items()]
    kept = [init for init in graph.initializer if uses.get(init.name, 0) > 0]
    del graph.initializer[:]
    graph.initializer.extend(kept + new_initializers)
    if not any(entry.domain == "com.microsoft" for entry in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    return model, state["replaced"]


def _quantize_nodes(graph, initializers: dict, uses: dict, plan: Int8Plan, opset: int, state: dict) -> None:
    """`quantize_model` on one graph's nodes, then on its subgraphs' (their constants are the outer graph's);
    new initializers go to state["initializers"], `uses` counts down as float weights are replaced."""
    from onnx import numpy_helper

    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    graph_outputs = {output.name for output in graph.output}
    producers = {output: node for node in graph.node for output in node.output}
    nodes, absorbed = [], set()
    row_scales: dict[str, tuple] = {}  # activation name -> (its uint8 rows, their scales): shared by matmuls
    transposed = {}  # id(Gemm) -> (its (N, K) weight's name, the Gather of its rows or None)
    for node in graph.node:
        found = _transposed_weight(node, producers, initializers, uses, graph_outputs, plan)
        if found is not None:
            transposed[id(node)] = found
            if found[1] is not None:
                absorbed.add(id(found[1]))  # replaced by Gathers of the int8 rows and their scales
    for node in graph.node:
        for subgraph in subgraphs(node):
            _quantize_nodes(subgraph, initializers, uses, plan, opset, state)
        if id(node) in absorbed:
            continue
        weight_name, gather = transposed.get(id(node), (None, None))
        weight = _int8_weight(node, initializers, plan) if weight_name is None else initializers[weight_name]
        if weight is None:
            nodes.append(node)
            continue
        matrix = numpy_helper.to_array(weight).astype(np.float32)  # (K, N); a Gemm's Wᵀ is stored (N, K)
        if weight_name is None:
            add = _bias_add(node, consumers, initializers, graph_outputs, weight.dims[1])  # Dense's bias, folded in
            bias = None if add is None else (add.input[1] if add.input[1] in initializers else add.input[0])
        else:
            matrix, add, bias = matrix.T, None, node.input[2] if len(node.input) > 2 and node.input[2] else None
        replacement, weights = _row_int8_nodes(
            node.input[0], matrix, bias, list((add or node).output), f"{weight.name}_int8_{state['replaced']}",
            row_scales, opset, plan.weight_levels, chosen=None if gather is None else gather.input[1])
        nodes += replacement
        state["initializers"] += weights
        if add is not None:
            absorbed.add(id(add))
        uses[weight.name] -= 1
        state["replaced"] += 1
    state["rows"] = state["rows"] or bool(row_scales)
    del graph.node[:]
    graph.node.extend(nodes)


def _int8_weight(node, initializers: dict, plan: Int8Plan):
    """The constant float (K, N) weight of a MatMul node that `plan` makes int8, else None."""
    if node.op_type != "MatMul" or len(node.input) != 2:
        return None
    return _int8_constant(node.input[1], initializers, plan)


def _int8_constant(name: str, initializers: dict, plan: Int8Plan):
    """The constant float (K, N) weight named `name` when `plan` makes it int8, else None."""
    from onnx import TensorProto

    weight = initializers.get(name)
    if (weight is None or len(weight.dims) != 2 or weight.dims[0] * weight.dims[1] < plan.min_weight_elements
            or weight.data_type != TensorProto.FLOAT):
        return None
    return weight


def _transposed_weight(node, producers: dict, initializers: dict, uses: dict, graph_outputs: set, plan: Int8Plan):
    """For Gemm(A, B, bias, transB=1) whose B is a constant float (N, K) table that `plan` makes int8, or
    rows gathered from one (Gather axis 0: the shortlist's output projection, export/fused_graphs.py):
    (the table's name, that Gather or None); else None."""
    if node.op_type != "Gemm" or len(node.input) < 2:
        return None
    attributes = {attribute.name: attribute for attribute in node.attribute}
    if (attributes.get("transB") is None or attributes["transB"].i != 1 or "transA" in attributes and
            attributes["transA"].i != 0 or any(name in attributes and attributes[name].f != 1.0
                                               for name in ("alpha", "beta"))):
        return None
    if _int8_constant(node.input[1], initializers, plan) is not None:
        return node.input[1], None
    gather = producers.get(node.input[1])
    if (gather is None or gather.op_type != "Gather" or uses.get(node.input[1]) != 1
            or node.input[1] in graph_outputs):
        return None
    axis = next((attribute.i for attribute in gather.attribute if attribute.name == "axis"), 0)
    return (gather.input[0], gather) if axis == 0 and _int8_constant(gather.input[0], initializers, plan) is not None \
        else None


def has_int8_weights(*paths, plan: Int8Plan = Int8Plan()) -> bool:
    """Whether `quantize_int8` with `plan` would make any weight of these ONNX graphs int8."""
    import onnx

    for path in paths:
        graph = onnx.load(str(path)).graph
        initializers = {init.name: init for init in graph.initializer}
        if any(_int8_weight(node, initializers, plan) is not None for node in graph.node):
            return True
    return False


ROW_INT8_CONSTANTS = {"row_int8_tiny": np.array(1e-30, np.float32),
                      "row_int8_127": np.array(127.0, np.float32), "row_int8_one": np.array(1.0, np.float32),
                      "row_int8_zero_point": np.array(128, np.uint8)}


def _row_int8_nodes(activation, weight, bias, outputs, prefix, row_scales, opset, levels, chosen=None):
    """Nodes computing activation (..., K) @ weight (K, N) [+ bias] with int8 arithmetic that depends on
    each row alone: the row is scaled by 127 / max |row| and rounded to uint8 around 128, W as
    `quantize_columns(weight, levels)`, MatMulIntegerToFloat adds exact int32 products and scales
    them back per row and column. Returns (nodes, initializers); `row_scales` caches one activation's
    quantized rows for every matmul that reads it. `chosen` (int ids (C,)): the product with those
    columns of W only, (..., C), each as the full product computes it (its int8 column and scale gathered;
    stored as (N, K) rows, since Gather copies a row at a time)."""
    from onnx import helper, numpy_helper

    nodes = []
    if activation not in row_scales:
        p = f"{activation}_row_int8"
        nodes += [
            helper.make_node("Abs", [activation], [f"{p}_abs"], name=f"{p}_abs"),
            (helper.make_node("ReduceMax", [f"{p}_abs", "row_int8_axes"], [f"{p}_max"], name=f"{p}_max", keepdims=1)
             if opset >= 18 else  # axes became an input in opset 18
             helper.make_node("ReduceMax", [f"{p}_abs"], [f"{p}_max"], name=f"{p}_max", keepdims=1, axes=[-1])),
            helper.make_node("Max", [f"{p}_max", "row_int8_tiny"], [f"{p}_range"], name=f"{p}_range"),  # (..., 1)
            helper.make_node("Div", ["row_int8_127", f"{p}_range"], [f"{p}_inverse"], name=f"{p}_inverse"),
            helper.make_node("Mul", [activation, f"{p}_inverse"], [f"{p}_scaled"], name=f"{p}_scaled"),
            helper.make_node("QuantizeLinear", [f"{p}_scaled", "row_int8_one", "row_int8_zero_point"], [f"{p}_uint8"],
                             name=f"{p}_uint8"),  # round half to even, + 128, saturate
        ]
        row_scales[activation] = (f"{p}_uint8", f"{p}_range")
    rows, row_range = row_scales[activation]
    quantized, column_scales = quantize_columns(weight, levels)
    weight_zero_point = []  # uint8 x int8: 255 * 63 * 2 < 32767, no int16 pair sum saturates
    if levels == 127:  # uint8 x uint8 (onnxruntime's x86 uint8 x int8 kernel could saturate at 8 bits)
        quantized, weight_zero_point = (quantized.astype(np.int16) + 128).astype(np.uint8), ["row_int8_zero_point"]
    weight_name, scales_name = f"{prefix}_weight", f"{prefix}_column_scales"
    initializers = [numpy_helper.from_array(quantized if chosen is None else np.ascontiguousarray(quantized.T),
                                            weight_name),  # (K, N), or (N, K) to gather rows
                    numpy_helper.from_array(column_scales / np.float32(127.0), scales_name)]
    if chosen is not None:  # (C, K) -> (K, C), and (C,)
        nodes += [helper.make_node("Gather", [weight_name, chosen], [f"{prefix}_chosen_rows"],
                                   name=f"{prefix}_chosen_rows", axis=0),
                  helper.make_node("Transpose", [f"{prefix}_chosen_rows"], [f"{prefix}_chosen_weight"],
                                   name=f"{prefix}_chosen_weight", perm=[1, 0]),
                  helper.make_node("Gather", [scales_name, chosen], [f"{prefix}_chosen_scales"],
                                   name=f"{prefix}_chosen_scales", axis=0)]
        weight_name, scales_name = f"{prefix}_chosen_weight", f"{prefix}_chosen_scales"
    inputs = [rows, weight_name, row_range, scales_name, "row_int8_zero_point",
              *weight_zero_point]  # no bias input: with a per-row A scale, onnxruntime scales the bias too
    product = outputs[0] if bias is None else f"{prefix}_product"
    # (rows - 128) @ W_q exactly in int32, times max |row| per row and column scale / 127 per column
    nodes.append(helper.make_node("MatMulIntegerToFloat", inputs, [product], name=f"{prefix}_matmul",
                                  domain="com.microsoft"))
    if bias is not None:
        nodes.append(helper.make_node("Add", [product, bias], outputs, name=f"{prefix}_bias"))
    return nodes, initializers


def _bias_add(matmul, consumers, initializers, graph_outputs, n):
    """The Add that adds a constant float bias (N,) to `matmul`'s output, if that is its only use."""
    from onnx import TensorProto

    output = matmul.output[0]
    users = consumers.get(output, [])
    if output in graph_outputs or len(users) != 1 or users[0].op_type != "Add":
        return None
    add = users[0]
    other = add.input[1] if add.input[0] == output else add.input[0]
    bias = initializers.get(other)
    if bias is None or list(bias.dims) != [n] or bias.data_type != TensorProto.FLOAT or add.input[0] == add.input[1]:
        return None
    return add


def exact_cross_attention(model):
    """Rewrites the decoder's cross-attention `weights @ cross_value` (B, H, 1, S) x (B, H, S, Dh) so
    that its result does not depend on how far the batch pads the source: as a running sum over S
    (Mul, CumSum, the last position) instead of a MatMul, whose float summation order changes with S
    (1-ulp differences between a sentence alone and padded beside a longer one). fp32 shrugs those
    off; int8 rounds activations, which can turn them into a different token now and then. Returns
    (model, number of rewritten matmuls); graphs without cross_value inputs are left as they are."""
    from onnx import helper, numpy_helper

    from keras_transformer.serve import bundle_format as fmt

    graph = model.graph
    values = {fmt.cross_value_name(i) for i in range(len(graph.input))} & {i.name for i in graph.input}
    constants = {"column": np.array([0, 0, -1, 1], np.int64), "axis": np.array(2, np.int64),
                 "axes": np.array([2], np.int64), "last": np.array([-1], np.int64),
                 "end": np.array([np.iinfo(np.int64).max], np.int64)}
    names = {key: f"exact_cross_attention_{key}" for key in constants}
    nodes, rewritten = [], 0
    for node in graph.node:
        if node.op_type != "MatMul" or len(node.input) != 2 or node.input[1] not in values:
            nodes.append(node)
            continue
        weights, value = node.input
        p = f"exact_cross_attention_{rewritten}"
        nodes += [
            helper.make_node("Reshape", [weights, names["column"]], [f"{p}_column"], name=f"{p}_reshape"),  # (B,H,S,1)
            helper.make_node("Mul", [f"{p}_column", value], [f"{p}_terms"], name=f"{p}_mul"),  # (B,H,S,Dh)
            helper.make_node("CumSum", [f"{p}_terms", names["axis"]], [f"{p}_sums"], name=f"{p}_cumsum"),
            helper.make_node("Slice", [f"{p}_sums", names["last"], names["end"], names["axes"]], list(node.output),
                             name=f"{p}_last"),  # (B,H,1,Dh): the sum over all S, padding adds exact zeros
        ]
        rewritten += 1
    if rewritten:
        del graph.node[:]
        graph.node.extend(nodes)
        graph.initializer.extend(numpy_helper.from_array(value, names[key]) for key, value in constants.items())
    return model, rewritten


def quantize_int8(fp32_path, int8_path, plan: Int8Plan = Int8Plan()) -> int:
    """Writes the int8 version of the ONNX graph at `fp32_path` to `int8_path` (with
    `exact_cross_attention`); returns how many matmuls were quantized."""
    import onnx

    model, replaced = quantize_model(onnx.load(str(Path(fp32_path))), plan)
    model, _ = exact_cross_attention(model)
    onnx.save(model, str(Path(int8_path)))
    return replaced
