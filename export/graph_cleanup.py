"""Graph clean-up after tf2onnx: fewer, larger kernels per decoding step.

For small models a decoding step's time is dominated by the number of kernels it launches
(bench/RESULTS.md), so the export rewrites two patterns that tf2onnx leaves unfused. The export's
parity check verifies the result against the Keras model.

1. `collapse_tensordot_reshapes`: Keras' Dense on a (B, T, D) input lowers in TensorFlow to Tensordot:
Reshape to (B*T, D), MatMul, then Reshape back to (B, T, E), with a Shape/Gather/Concat/Cast subgraph
computing that last shape.
ONNX MatMul broadcasts over leading axes, so `MatMul(x, W)` on the (B, T, D) input gives the same
(B, T, E) directly.

2. `fuse_layer_norms`: our LayerNormalization (keras_transformer/layer_norm.py) arrives as ten
kernels: mean (GlobalAveragePool over the last axis of (B, T, D)), Sub, Mul, mean, Add ε, Sqrt,
Reciprocal, Mul γ, Mul, Add β. ONNX has had one LayerNormalization op since opset 17, computing
the same γ · (x - mean) / sqrt(var + ε) + β over the last axis.
"""

from __future__ import annotations

from onnx import helper, numpy_helper, shape_inference


def _is_flatten_to_2d(node, initializers) -> bool:
    """A Reshape whose target shape is the constant (-1, D)."""
    shape = initializers.get(node.input[1]) if len(node.input) > 1 else None
    return shape is not None and shape.ndim == 1 and len(shape) == 2 and shape[0] == -1


def clean_up(model_proto):
    """Both rewrites below, in place; returns `model_proto`."""
    collapse_tensordot_reshapes(model_proto)
    fuse_layer_norms(model_proto)
    return model_proto


def _consumers(graph) -> dict[str, list]:
    """Tensor name -> the nodes that read it (a node reading a tensor twice, as Mul(d, d), counts once)."""
    consumers = {}
    for node in graph.node:
        for name in dict.fromkeys(node.input):
            consumers.setdefault(name, []).append(node)
    return consumers


def collapse_tensordot_reshapes(model_proto):
    """Rewrites Reshape(-1, D) -> MatMul(W) -> Reshape(back) as MatMul(x, W); prunes dead nodes."""
    graph = model_proto.graph
    initializers = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    producers = {output: node for node in graph.node for output in node.output}
    consumers = _consumers(graph)
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


def _is_last_axis_mean(node, rank_of) -> bool:
    if node.op_type == "GlobalAveragePool":  # averages every axis after the first two: the last of (B, T, D)
        return rank_of(node.input[0]) == 3
    if node.op_type == "ReduceMean" and len(node.input) == 1:
        axes = next((list(a.ints) for a in node.attribute if a.name == "axes"), None)
        keepdims = next((a.i for a in node.attribute if a.name == "keepdims"), 1)
        return axes == [-1] and keepdims == 1
    return False


def _tensor_ranks(model_proto) -> dict[str, int]:
    """Rank of every tensor ONNX shape inference can tell."""
    inferred = shape_inference.infer_shapes(model_proto).graph
    ranks = {}
    for info in [*inferred.input, *inferred.value_info, *inferred.output]:
        if info.type.tensor_type.HasField("shape"):
            ranks[info.name] = len(info.type.tensor_type.shape.dim)
    return ranks


def fuse_layer_norms(model_proto) -> int:
    """Replaces each unfused layer norm (see the module docstring) by one LayerNormalization node.

    GlobalAveragePool counts as a last-axis mean only on tensors of rank 3 by shape inference (the
    encoder's and decoder's activations are all (B, T, D)). A pattern whose intermediate results
    are used elsewhere, or whose ε, γ or β is not a constant, is left alone. Returns how many
    layer norms were fused; the graph is rewritten in place.
    """
    graph = model_proto.graph
    rank_of = _tensor_ranks(model_proto).get
    constants = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    consumers = _consumers(graph)
    graph_outputs = {output.name for output in graph.output}

    def only_consumer(name, op_type):
        users = consumers.get(name, [])
        if len(users) != 1 or users[0].op_type != op_type or name in graph_outputs:
            return None
        return users[0]

    def other_input(node, name):
        rest = [i for i in node.input if i != name]
        return rest[0] if len(rest) == 1 else None

    replacements = {}  # id(final Add) -> LayerNormalization node
    for mean in graph.node:
        if not _is_last_axis_mean(mean, rank_of):
            continue
        x = mean.input[0]
        centre = only_consumer(mean.output[0], "Sub")
        if centre is None or list(centre.input) != [x, mean.output[0]]:
            continue
        centred = centre.output[0]
        users = consumers.get(centred, [])
        square = next((n for n in users if n.op_type == "Mul" and list(n.input) == [centred, centred]), None)
        scale = next((n for n in users if n.op_type == "Mul" and n is not square), None)
        if len(users) != 2 or square is None or scale is None or centred in graph_outputs:
            continue
        variance = only_consumer(square.output[0], mean.op_type)
        add_eps = variance and only_consumer(variance.output[0], "Add")
        sqrt = add_eps and only_consumer(add_eps.output[0], "Sqrt")
        reciprocal = sqrt and only_consumer(sqrt.output[0], "Reciprocal")
        times_gamma = reciprocal and only_consumer(reciprocal.output[0], "Mul")
        if (not times_gamma or not _is_last_axis_mean(variance, rank_of)
                or other_input(scale, centred) != times_gamma.output[0]):
            continue
        if consumers.get(times_gamma.output[0], []) != [scale]:
            continue
        add_beta = only_consumer(scale.output[0], "Add")
        epsilon = constants.get(other_input(add_eps, variance.output[0]))
        gamma_name = other_input(times_gamma, reciprocal.output[0])
        beta_name = add_beta and other_input(add_beta, scale.output[0])
        gamma, beta = constants.get(gamma_name), constants.get(beta_name)
        if add_beta is None or epsilon is None or epsilon.size != 1 or gamma is None or beta is None:
            continue
        if gamma.ndim != 1 or beta.shape != gamma.shape:
            continue
        replacements[id(add_beta)] = helper.make_node(
            "LayerNormalization", [x, gamma_name, beta_name], [add_beta.output[0]],
            name=add_beta.name + "/LayerNormalization", axis=-1, epsilon=float(epsilon.reshape(())))
    if not replacements:
        return 0
    nodes = [replacements.get(id(node), node) for node in graph.node]  # keeps topological order
    del graph.node[:]
    graph.node.extend(nodes)
    _prune_dead_nodes(model_proto)
    return len(replacements)


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


__all__ = ["clean_up", "collapse_tensordot_reshapes", "fuse_layer_norms"]
