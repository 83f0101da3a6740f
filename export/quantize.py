"""`--int8`: weight-only int8 for every MatMul with a constant weight, as onnxruntime's `MatMulNBits`
(com.microsoft, bits = 8).

Each weight W (K, N) is cut into blocks of `BLOCK_SIZE` consecutive rows (along K, the reduced
axis) per output column; a block keeps one float32 scale, max |w| / 127, and its values as
round(w / scale) in -127..127, stored as uint8 with the operator's default zero point 128 (the
symmetric form: no zero-point tensor). Activations are never quantized with a statistic of the
batch: with `accuracy_level` 4 onnxruntime quantizes each row of A on its own (one int8 scale per
row and block of K, MLAS "CompInt8"), so every row's result depends on that row alone, and a
sentence translates to the same tokens whatever other sentences share its batch. (onnxruntime's
`quantize_dynamic`, used before, takes one activation scale per tensor, i.e. per batch: a
sentence's int8 translation then depended on its companions.) Blocks above 64 are not used: for them
onnxruntime's M = 1 kernel rounds differently from the M > 1 one. A Dense layer's bias Add is folded
into the MatMulNBits node (one kernel fewer per matmul). One float op is rewritten too
(`exact_cross_attention`): the decoder's `weights @ cross_value` sums over the source length, and a
MatMul's summation order changes with the padded length, which int8 rounding could turn into another
token; a running sum (CumSum) adds the padding's exact zeros last. With all three, a sentence's step
logits are bitwise the same alone, in any batch and beside any padding.

The packing is done here with numpy (a few lines) rather than with onnxruntime's
`MatMulNBitsQuantizer`, which needs the extra `onnx_ir` package; `tests/test_int8_batch_invariance.py`
checks the packing against a float matmul and the batch invariance end to end.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

BITS = 8
BLOCK_SIZE = 64  # rows of K per scale, a power of 2 >= 16; above 64 the M = 1 kernel rounds differently
ACCURACY_LEVEL = 4  # MatMulNBits: 4 = int8 compute (A quantized per row and block), 0 = float compute
MIN_WEIGHT_ELEMENTS = 16 * 16  # smaller matmuls stay float32
METHOD = "weight-only int8"


def describe(block_size: int = BLOCK_SIZE, accuracy_level: int = ACCURACY_LEVEL) -> dict:
    """The bundle config's "quantization" record (without the measured figures)."""
    return {
        "type": (f"{METHOD}: onnxruntime MatMulNBits (bits {BITS}, symmetric, block {block_size} along K, "
                 f"accuracy_level {accuracy_level}); activations quantized per row, never per batch"),
        "method": "matmul_nbits_int8",
        "bits": BITS,
        "block_size": block_size,
        "accuracy_level": accuracy_level,
        "batch_invariant": True,
    }


def quantize_weight(weight: np.ndarray, block_size: int = BLOCK_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """W float (K, N) -> (packed uint8 (N, K_blocks, block_size), scales float32 (N, K_blocks)).

    MatMulNBits' layout: B holds column n's K values block after block; the zero point is 128."""
    k, n = weight.shape
    blocks = -(-k // block_size)
    padded = np.zeros((blocks * block_size, n), dtype=np.float32)
    padded[:k] = weight
    columns = padded.T.reshape(n, blocks, block_size)  # (N, K_blocks, block)
    scales = np.abs(columns).max(axis=2) / 127.0  # (N, K_blocks)
    scales = np.where(scales == 0.0, 1.0, scales).astype(np.float32)
    quantized = np.clip(np.rint(columns / scales[:, :, None]), -127, 127).astype(np.int16) + 128
    return quantized.astype(np.uint8), scales


def dequantize_weight(packed: np.ndarray, scales: np.ndarray, k: int) -> np.ndarray:
    """The float (K, N) weight that MatMulNBits multiplies by (for checks)."""
    n, blocks, block_size = packed.shape
    values = (packed.astype(np.float32) - 128.0) * scales[:, :, None]  # (N, K_blocks, block)
    return values.reshape(n, blocks * block_size)[:, :k].T


def quantize_model(model, block_size: int = BLOCK_SIZE, accuracy_level: int = ACCURACY_LEVEL):
    """An onnx ModelProto with every MatMul(A, constant 2-D W) replaced by MatMulNBits; returns
    (model, number of matmuls replaced). Matmuls of two activations (attention) stay float32."""
    import onnx
    from onnx import helper, numpy_helper

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
    for node in graph.node:
        if id(node) in fused_adds:
            continue
        weight = initializers.get(node.input[1]) if node.op_type == "MatMul" and len(node.input) == 2 else None
        dims = list(weight.dims) if weight is not None else []
        if (weight is None or len(dims) != 2 or dims[0] * dims[1] < MIN_WEIGHT_ELEMENTS
                or weight.data_type != onnx.TensorProto.FLOAT):
            nodes.append(node)
            continue
        k, n = dims
        packed, scales = quantize_weight(numpy_helper.to_array(weight).astype(np.float32), block_size)
        prefix = f"{node.input[1]}_int8_{replaced}"
        new_initializers += [numpy_helper.from_array(packed, f"{prefix}_weight"),
                             numpy_helper.from_array(scales, f"{prefix}_scales")]
        inputs, outputs = [node.input[0], f"{prefix}_weight", f"{prefix}_scales"], list(node.output)
        add = _bias_add(node, consumers, initializers, graph_outputs, n)
        if add is not None:  # Dense's bias: added inside the kernel, one node fewer per matmul
            inputs += ["", "", add.input[1] if add.input[1] in initializers else add.input[0]]
            outputs = list(add.output)
            fused_adds.add(id(add))
        attributes = dict(K=k, N=n, bits=BITS, block_size=block_size)
        if accuracy_level:
            attributes["accuracy_level"] = accuracy_level
        nodes.append(helper.make_node("MatMulNBits", inputs, outputs, name=f"{node.name or prefix}_int8",
                                      domain="com.microsoft", **attributes))
        uses[node.input[1]] -= 1
        if uses[node.input[1]] == 0:
            dropped.add(node.input[1])
        replaced += 1
    del graph.node[:]
    graph.node.extend(nodes)
    kept = [init for init in graph.initializer if init.name not in dropped]
    del graph.initializer[:]
    graph.initializer.extend(kept + new_initializers)
    if not any(opset.domain == "com.microsoft" for opset in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    return model, replaced


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


def quantize_int8(fp32_path, int8_path, block_size: int = BLOCK_SIZE, accuracy_level: int = ACCURACY_LEVEL) -> int:
    """Writes the weight-only int8 version of the ONNX graph at `fp32_path` to `int8_path` (with
    `exact_cross_attention`); returns how many matmuls were quantized."""
    import onnx

    model, replaced = quantize_model(onnx.load(str(Path(fp32_path))), block_size, accuracy_level)
    model, _ = exact_cross_attention(model)
    onnx.save(model, str(Path(int8_path)))
    return replaced
