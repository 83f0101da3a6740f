"""Graph clean-up after tf2onnx: remove TensorFlow's Tensordot scaffolding around Dense layers.

Keras' Dense on a (B, T, D) input lowers in TensorFlow to Tensordot: Reshape to (B*T, D), MatMul,
then Reshape back to (B, T, E), with a Shape/Gather/Concat/Cast subgraph computing that last shape.
ONNX MatMul broadcasts over leading axes, so `MatMul(x, W)` on the (B, T, D) input gives the same
(B, T, E) directly. Removing the scaffolding cuts a decoding step's kernel count, which dominates
its time for small models (bench/RESULTS.md). The export's parity check verifies the result.
"""

from __future__ import annotations

from onnx import numpy_helper


def _is_flatten_to_2d(node, initializers) -> bool:
    """A Reshape whose target shape is the constant (-1, D)."""
    shape = initializers.get(node.input[1]) if len(node.input) > 1 else None
    return shape is not None and shape.ndim == 1 and len(shape) == 2 and shape[0] == -1


def collapse_tensordot_reshapes(model_proto):
    """Rewrites Reshape(-1, D) -> MatMul(W) -> Reshape(back) as MatMul(x, W); prunes dead nodes."""
    graph = model_proto.graph
    initializers = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    producers = {output: node for node in graph.node for output in node.output}
    consumers = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    graph_outputs = {output.name for output in graph.output}
    renames = {}
    for node in graph.node:
        if node.op_type != "MatMul" or node.input[1] not in initializers:
            continue
        flatten = producers.get(node.input[0])
        after = consumers.get(node.output[0], [])
        if (flatten is None or flatten.op_type != "Reshape" or not _is_flatten_to_2d(flatten, initializers)
                or len(after) != 1 or after[0].op_type != "Reshape" or node.output[0] in graph_outputs
                or after[0].output[0] in graph_outputs):
            continue
        node.input[0] = flatten.input[0]
        renames[after[0].output[0]] = node.output[0]
    for node in graph.node:
        node.input[:] = [renames.get(name, name) for name in node.input]
    _prune_dead_nodes(model_proto)
    return model_proto


def _prune_dead_nodes(model_proto):
    graph = model_proto.graph
    needed = {output.name for output in graph.output}
    kept = []
    for node in reversed(list(graph.node)):  # tf2onnx emits nodes in topological order
        if any(output in needed for output in node.output):
            kept.append(node)
            needed.update(name for name in node.input if name)
    kept.reverse()
    del graph.node[:]
    graph.node.extend(kept)
    used = {name for node in kept for name in node.input}
    live = [init for init in graph.initializer if init.name in used or init.name in needed]
    del graph.initializer[:]
    graph.initializer.extend(live)
    return model_proto


__all__ = ["collapse_tensordot_reshapes"]
