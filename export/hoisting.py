"""Per-batch work taken out of the decoding step: the nodes of decoder.onnx that read only constants and
per-batch inputs, moved into a graph of their own that runs once per batch.

onnxruntime keeps nothing between two runs of a graph, so whatever the step computes from the batch's
inputs alone is computed again at every token. With a shortlist the step gathered its candidates'
rows of the output projection ((C, D) floats, or int8 rows transposed and their scales) at every token;
CTranslate2 gathers them once per batch. `split_per_batch` finds those nodes (also inside If branches),
moves them into a prelude graph (candidates.onnx: vocab_ids -> the projection's operands) and gives the
step their results as inputs instead. Generic: it follows the values, not the names, so the int8
quantizer's gathered rows move as the float32 ones do.
"""

from __future__ import annotations

import copy

from .graph_walk import all_nodes, subgraphs


def _read_values(graph) -> set:
    """Every value name read by a node of `graph` or of the subgraphs inside it, and their outputs."""
    names = {value.name for value in graph.output}
    for node in all_nodes(graph):
        names.update(value for value in node.input if value)
        names.update(value.name for subgraph in subgraphs(node) for value in subgraph.output)
    return names


def split_per_batch(model, batch_inputs: list[str]):
    """(prelude, step, operands): `model` split in two. The prelude takes the `batch_inputs` and computes
    every node whose inputs are constants, batch inputs or such nodes' outputs (and that reads at least one
    batch input, else it is left to onnxruntime's constant folding); the step is `model` with those nodes
    removed, taking `operands` (the moved values it still reads) as inputs in place of the batch inputs.
    Raises ValueError when nothing depends on the batch inputs only, or the step still reads one.

    A node moved out of an If branch runs whichever branch the step takes: it must not fail on the batch
    inputs of the other (the shortlist's Gathers given no ids give (0, D) rows, which the step ignores)."""
    import onnx
    from onnx import helper

    step = copy.deepcopy(model)
    graph = step.graph
    constants = {tensor.name: tensor for tensor in graph.initializer}
    per_batch = set(batch_inputs)  # values computed from batch inputs and constants only
    moved = []

    def hoist(nodes):  # nodes of one graph, in order; returns those that stay
        kept = []
        for node in nodes:
            inner = subgraphs(node)
            for subgraph in inner:
                constants.update({tensor.name: tensor for tensor in subgraph.initializer})
                remaining = hoist(list(subgraph.node))
                del subgraph.node[:]
                subgraph.node.extend(remaining)
            inputs = [value for value in node.input if value]
            if (not inner and inputs and all(value in constants or value in per_batch for value in inputs)
                    and any(value in per_batch for value in inputs)):
                moved.append(node)
                per_batch.update(node.output)
            else:
                kept.append(node)
        return kept

    remaining = hoist(list(graph.node))
    del graph.node[:]
    graph.node.extend(remaining)
    if not moved:
        raise ValueError(f"split_per_batch: no node depends on {batch_inputs} and constants only")
    read = _read_values(graph)
    operands = [value for node in moved for value in node.output if value in read]
    still_read = [name for name in batch_inputs if name in read and name not in operands]
    if still_read:
        raise ValueError(f"split_per_batch: the step still reads {still_read} outside the moved nodes")

    prelude_initializers = {value for node in moved for value in node.input if value in constants}
    batch_values = [value for value in graph.input if value.name in batch_inputs]
    prelude = helper.make_model(
        helper.make_graph(moved, "per_batch", batch_values, [helper.make_value_info(name, onnx.TypeProto())
                                                             for name in operands],
                          [copy.deepcopy(constants[name]) for name in sorted(prelude_initializers)]),
        opset_imports=list(model.opset_import), producer_name=model.producer_name)
    prelude.ir_version = model.ir_version
    inferred = onnx.shape_inference.infer_shapes(prelude, strict_mode=True)
    types = {value.name: value.type for value in [*inferred.graph.value_info, *inferred.graph.output]}
    missing = [name for name in operands if not types.get(name, onnx.TypeProto()).HasField("tensor_type")]
    if missing:
        raise ValueError(f"split_per_batch: onnx cannot infer the types of {missing}")
    del prelude.graph.output[:]
    prelude.graph.output.extend(helper.make_value_info(name, types[name]) for name in operands)

    at = next(i for i, value in enumerate(graph.input) if value.name in batch_inputs)  # operands go there
    others = [value for value in graph.input if value.name not in batch_inputs]
    del graph.input[:]
    graph.input.extend(others[:at] + [helper.make_value_info(name, types[name]) for name in operands] + others[at:])
    still_used = _read_values(graph)
    kept = [tensor for tensor in graph.initializer if tensor.name in still_used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    return prelude, step, operands
