"""`--int8`: int8 weights for the MatMuls whose constant weight is large enough for int8 to pay,
quantizing activations row by row, never with a statistic of the batch.

Which weights: those of `MIN_WEIGHT_ELEMENTS` (2^17: 256 x 512) elements and more. On this
project's AVX2 CPU no int8 form beat float32 below that at 1 and 4 rows (a batch-1 greedy step and
a 4-beam one): 0.58-0.96x for the d_model 128 shapes, and for 256 x 256 1.07x at one row
(MatMulNBits) but 0.74-0.81x at four (bench/RESULTS-int8-matmul.md). Smaller weights stay
float32. A model as narrow as the demo's then has no int8 weight at all: its --int8 bundle keeps
the fp32 graphs (the export says so) and is no slower than the fp32 bundle.

Row int8 (`_row_int8_nodes`), for every weight of `ROW_INT8_MIN_ELEMENTS` elements and more (by
default the same size, so every int8 weight): six small ops scale each row of A to uint8 by its own
max |a| (shared by every matmul reading that A), then `MatMulIntegerToFloat` multiplies by the
weight (uint8 x int8, exact int32 sums) and scales back per row and column. Its weights are 7-bit:
round(w / scale) in -63..63 per column (`ROW_INT8_WEIGHT_LEVELS`). On x86 without VNNI
onnxruntime's uint8 x int8 kernel (`vpmaddubsw`) adds each pair of products in int16, which
saturates above 32767; 255 * 63 * 2 = 32130 cannot, so the sums stay exact (tested). That kernel is
1.0-1.3x faster than the uint8 x uint8 one with 8-bit weights used before (which widens both sides
to int16 first); `ROW_INT8_WEIGHT_LEVELS = 127` gives that form back. On a Multi30k-size model the
7-bit weights kept test2016 BLEU within 0.1 of fp32 (bench/RESULTS-speed-changes.md).

MatMulNBits (com.microsoft, bits = 8), for int8 weights under `ROW_INT8_MIN_ELEMENTS` (none by
default; kept as the measured alternative, bench/int8_forms_ab.py): W (K, N) is cut into blocks of
`BLOCK_SIZE` consecutive rows (along K, the reduced axis) per output column; a block keeps one
float32 scale, max |w| / 127, and its values as round(w / scale) in -127..127, stored as uint8 with
the operator's default zero point 128 (the symmetric form). With `accuracy_level` 4 onnxruntime
quantizes each row of A on its own (one int8 scale per row and block of K, MLAS "CompInt8"). Blocks
above 64 are not used: for them onnxruntime's M = 1 kernel rounds differently from the M > 1 one.
The Dense layer's bias Add is folded into the node. Its int8 kernel is a fast M = 1 GEMV but slower
than float32 from 4 rows on (0.55-0.8x); row int8 runs the 256 x 768 and larger weights at
1.09-2.01x float32 at one row, 0.95-1.34x at four and 1.42-1.80x at 32 and 128. onnxruntime-web
1.30 (the browser page) rounds MatMulNBits differently from native onnxruntime (up to 0.02 apart on
outputs of magnitude 5; a bundle with it translated differently in the page), while row int8 gave
the same outputs on a 64 x 192 matmul and gives Python's tokens in the page (tests/test_web.py).

Either way every row's result depends on that row alone, so a sentence translates to the same
tokens whatever other sentences share its batch. (onnxruntime's `quantize_dynamic`, used before,
takes one activation scale per tensor, i.e. per batch: a sentence's int8 translation then depended
on its companions.) One float op is rewritten too (`exact_cross_attention`): the decoder's `weights
@ cross_value` sums over the source length, and a MatMul's summation order changes with the padded
length, which int8 rounding could turn into another token; a running sum (CumSum) adds the
padding's exact zeros last. With all of this, a sentence's step logits are bitwise the same alone,
in any batch and beside any padding.

The packing is done here with numpy (a few lines) rather than with onnxruntime's
`MatMulNBitsQuantizer`, which needs the extra `onnx_ir` package, or `quantize_dynamic` (per-batch
activation scales); `tests/test_int8_batch_invariance.py` checks both forms against a float matmul
and the batch invariance end to end.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

BITS = 8
BLOCK_SIZE = 64  # rows of K per scale, a power of 2 >= 16; above 64 the M = 1 kernel rounds differently
ACCURACY_LEVEL = 4  # MatMulNBits: 4 = int8 compute (A quantized per row and block), 0 = float compute
MIN_WEIGHT_ELEMENTS = 1 << 17  # smaller weights (below 256 x 512) stay float32: int8 was no faster there
ROW_INT8_MIN_ELEMENTS = 1 << 17  # weights with K * N >= this use row int8 (so, by default, every int8 weight)
ROW_INT8_WEIGHT_LEVELS = 63  # row int8 weights in -63..63 as int8 (7 bits); 127: uint8 x uint8, 8 bits
METHOD = "int8 weights, activations quantized per row"


def describe(block_size: int = BLOCK_SIZE, accuracy_level: int = ACCURACY_LEVEL) -> dict:
    """The bundle config's "quantization" record (without the measured figures)."""
    return {
        "type": (f"{METHOD}: weights under {MIN_WEIGHT_ELEMENTS} elements stay float32; "
                 + (f"under {ROW_INT8_MIN_ELEMENTS} elements as onnxruntime MatMulNBits (bits {BITS}, symmetric, "
                    f"block {block_size} along K, accuracy_level {accuracy_level}), larger ones "
                    if ROW_INT8_MIN_ELEMENTS > MIN_WEIGHT_ELEMENTS else "the others ")
                 + f"as MatMulIntegerToFloat (uint8 activations x weights in -{ROW_INT8_WEIGHT_LEVELS}.."
                 f"{ROW_INT8_WEIGHT_LEVELS}, one scale per weight column and per activation row); never a scale per batch"),
        "method": "int8_per_row",
        "bits": BITS,
        "block_size": block_size,
        "accuracy_level": accuracy_level,
        "min_weight_elements": MIN_WEIGHT_ELEMENTS,
        "row_int8_min_elements": ROW_INT8_MIN_ELEMENTS,
        "row_int8_weight_levels": ROW_INT8_WEIGHT_LEVELS,
        "batch_invariant": True,
    }


def _symmetric(columns: np.ndarray, levels: int) -> tuple[np.ndarray, np.ndarray]:
    """float (..., L) -> (int16 round(x / scale) in -levels..levels, scales float32 (...,)), one scale
    = max |x| / levels per last-axis vector (1 for an all-zero one)."""
    scales = np.abs(columns).max(axis=-1) / np.float32(levels)
    scales = np.where(scales == 0.0, 1.0, scales).astype(np.float32)
    return np.clip(np.rint(columns / scales[..., None]), -levels, levels).astype(np.int16), scales


def quantize_weight(weight: np.ndarray, block_size: int = BLOCK_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """W float (K, N) -> (packed uint8 (N, K_blocks, block_size), scales float32 (N, K_blocks)).

    MatMulNBits' layout: B holds column n's K values block after block; the zero point is 128."""
    k, n = weight.shape
    blocks = -(-k // block_size)
    padded = np.zeros((blocks * block_size, n), dtype=np.float32)
    padded[:k] = weight
    quantized, scales = _symmetric(padded.T.reshape(n, blocks, block_size), 127)  # (N, K_blocks, block)
    return (quantized + 128).astype(np.uint8), scales


def quantize_columns(weight: np.ndarray, levels: int = 127) -> tuple[np.ndarray, np.ndarray]:
    """W float (K, N) -> (int8 (K, N), scales float32 (N,)): column n is round(w / scale_n) in
    -levels..levels with scale_n = max |column n| / levels, so W is about quantized * scales."""
    quantized, scales = _symmetric(weight.T.astype(np.float32), levels)  # (N, K), (N,)
    return quantized.T.astype(np.int8), scales


def dequantize_weight(packed: np.ndarray, scales: np.ndarray, k: int) -> np.ndarray:
    """The float (K, N) weight that MatMulNBits multiplies by (for checks)."""
    n, blocks, block_size = packed.shape
    values = (packed.astype(np.float32) - 128.0) * scales[:, :, None]  # (N, K_blocks, block)
    return values.reshape(n, blocks * block_size)[:, :k].T


def quantize_model(model, block_size: int = BLOCK_SIZE, accuracy_level: int = ACCURACY_LEVEL,
                   row_int8_min_elements: int | None = None):
    """An onnx ModelProto with every MatMul(A, constant 2-D W of MIN_WEIGHT_ELEMENTS or more) replaced
    by MatMulNBits, or by the row-int8 chain (`_row_int8_nodes`) where K * N >= row_int8_min_elements
    (default ROW_INT8_MIN_ELEMENTS, read at call time); returns (model, number of matmuls replaced).
    Matmuls of two activations (attention) stay float32."""
    from onnx import helper, numpy_helper

    if row_int8_min_elements is None:
        row_int8_min_elements = ROW_INT8_MIN_ELEMENTS
    graph = model.graph
    initializers = {init.name: init for init in graph.initializer}
    uses: dict[str, int] = {}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            uses[name] = uses.get(name, 0) + 1
            consumers.setdefault(name, []).append(node)
    graph_outputs = {output.name for output in graph.output}
    nodes, new_initializers, dropped, replaced, fused_adds = [], [], set(), 0, set()
    row_scales: dict[str, tuple] = {}  # activation name -> (its uint8 rows, their scales): shared by matmuls
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    for node in graph.node:
        if id(node) in fused_adds:
            continue
        weight = _int8_weight(node, initializers)
        if weight is None:
            nodes.append(node)
            continue
        k, n = weight.dims
        weight_array = numpy_helper.to_array(weight).astype(np.float32)
        add = _bias_add(node, consumers, initializers, graph_outputs, n)  # Dense's bias, folded in when there
        bias = None if add is None else (add.input[1] if add.input[1] in initializers else add.input[0])
        outputs = list((add or node).output)
        prefix = f"{node.input[1]}_int8_{replaced}"
        if k * n >= row_int8_min_elements:
            replacement, weights = _row_int8_nodes(node.input[0], weight_array, bias, outputs, prefix, row_scales,
                                                   opset)
        else:
            replacement, weights = _matmul_nbits_node(node, weight_array, bias, outputs, prefix, block_size,
                                                      accuracy_level)
        nodes += replacement
        new_initializers += weights
        if add is not None:
            fused_adds.add(id(add))
        uses[node.input[1]] -= 1
        if uses[node.input[1]] == 0:
            dropped.add(node.input[1])
        replaced += 1
    del graph.node[:]
    graph.node.extend(nodes)
    if row_scales:
        constants = dict(ROW_INT8_CONSTANTS, **({"row_int8_axes": np.array([-1], np.int64)} if opset >= 18 else {}))
        new_initializers += [numpy_helper.from_array(value, name) for name, value in constants.items()]
    kept = [init for init in graph.initializer if init.name not in dropped]
    del graph.initializer[:]
    graph.initializer.extend(kept + new_initializers)
    if not any(entry.domain == "com.microsoft" for entry in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    return model, replaced


def _int8_weight(node, initializers: dict):
    """The constant float (K, N) weight of a MatMul node that `quantize_model` makes int8 (K * N >=
    MIN_WEIGHT_ELEMENTS, read at call time), else None."""
    from onnx import TensorProto

    weight = initializers.get(node.input[1]) if node.op_type == "MatMul" and len(node.input) == 2 else None
    if (weight is None or len(weight.dims) != 2 or weight.dims[0] * weight.dims[1] < MIN_WEIGHT_ELEMENTS
            or weight.data_type != TensorProto.FLOAT):
        return None
    return weight


def has_int8_weights(*paths) -> bool:
    """Whether `quantize_int8` would make any weight of these ONNX graphs int8."""
    import onnx

    for path in paths:
        graph = onnx.load(str(path)).graph
        initializers = {init.name: init for init in graph.initializer}
        if any(_int8_weight(node, initializers) is not None for node in graph.node):
            return True
    return False


def _matmul_nbits_node(matmul, weight, bias, outputs, prefix, block_size, accuracy_level):
    """One MatMulNBits node for A @ weight (K, N) [+ bias]; returns ([node], its initializers)."""
    from onnx import helper, numpy_helper

    k, n = weight.shape
    packed, scales = quantize_weight(weight, block_size)
    initializers = [numpy_helper.from_array(packed, f"{prefix}_weight"),
                    numpy_helper.from_array(scales, f"{prefix}_scales")]
    inputs = [matmul.input[0], f"{prefix}_weight", f"{prefix}_scales"] + (["", "", bias] if bias is not None else [])
    attributes = dict(K=k, N=n, bits=BITS, block_size=block_size)
    if accuracy_level:
        attributes["accuracy_level"] = accuracy_level
    node = helper.make_node("MatMulNBits", inputs, outputs, name=f"{matmul.name or prefix}_int8",
                            domain="com.microsoft", **attributes)
    return [node], initializers


ROW_INT8_CONSTANTS = {"row_int8_tiny": np.array(1e-30, np.float32),
                      "row_int8_127": np.array(127.0, np.float32), "row_int8_one": np.array(1.0, np.float32),
                      "row_int8_zero_point": np.array(128, np.uint8)}


def _row_int8_nodes(activation, weight, bias, outputs, prefix, row_scales, opset):
    """Nodes computing activation (..., K) @ weight (K, N) [+ bias] with int8 arithmetic that depends on
    each row alone: the row is scaled by 127 / max |row| and rounded to uint8 around 128, W as
    `quantize_columns` does with `ROW_INT8_WEIGHT_LEVELS` (7-bit int8, so that onnxruntime's x86
    uint8 x int8 kernel, which adds pairs of products in int16, never saturates), MatMulIntegerToFloat
    adds exact int32 products and scales them back per row and column. Returns (nodes, initializers);
    `row_scales` caches one activation's quantized rows for every matmul that reads it."""
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
    levels = ROW_INT8_WEIGHT_LEVELS
    quantized, column_scales = quantize_columns(weight, levels)
    if levels == 127:  # uint8 x uint8 (onnxruntime's x86 uint8 x int8 kernel could saturate at 8 bits)
        quantized, weight_zero_point = (quantized.astype(np.int16) + 128).astype(np.uint8), ["row_int8_zero_point"]
    elif 0 < levels <= 63:  # uint8 x int8: 255 * 63 * 2 < 32767, no int16 pair sum saturates
        weight_zero_point = []  # 0
    else:
        raise ValueError(f"ROW_INT8_WEIGHT_LEVELS must be 1..63 (int8 weights) or 127 (uint8), not {levels}")
    initializers = [numpy_helper.from_array(quantized, f"{prefix}_weight"),  # (K, N)
                    numpy_helper.from_array(column_scales / np.float32(127.0), f"{prefix}_column_scales")]
    inputs = [rows, f"{prefix}_weight", row_range, f"{prefix}_column_scales", "row_int8_zero_point",
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


def quantize_int8(fp32_path, int8_path, block_size: int = BLOCK_SIZE, accuracy_level: int = ACCURACY_LEVEL,
                  row_int8_min_elements: int | None = None) -> int:
    """Writes the int8 version of the ONNX graph at `fp32_path` to `int8_path` (with
    `exact_cross_attention`); returns how many matmuls were quantized."""
    import onnx

    model, replaced = quantize_model(onnx.load(str(Path(fp32_path))), block_size, accuracy_level,
                                     row_int8_min_elements)
    model, _ = exact_cross_attention(model)
    onnx.save(model, str(Path(int8_path)))
    return replaced
