"""generate.onnx: the whole decoding loop (greedy and beam search) as one onnxruntime `BeamSearch` node.

The cached decoding loop in numpy (`serve/decoding.py`) calls onnxruntime once per token, and on a
small model the Python around each call costs as much as the kernels. The same search inside
onnxruntime's `BeamSearch` operator (com.microsoft, `model_type` 1 = encoder-decoder, the T5
interface), measured through `Translator` on the demo model, one sentence per call, one thread:
greedy 1.24x and beam search (4 beams) 1.78x faster, identical tokens (bench/RESULTS-graph-search.md).
This module builds that graph from a bundle's two graphs, so it holds exactly the computation the
parity check verified:

- the *encoder* subgraph is encoder.onnx followed by one decoder.onnx step from BOS with an empty
  cache (the operator wants the first step's logits from it);
- the *decoder* subgraph is decoder.onnx with its inputs and outputs renamed to the operator's
  (`input_ids`, `encoder_attention_mask`, `past_key_self_i`, ..., `past_key_cross_i`, ...), its
  `position` read from the cache length, its logits reshaped to (B, 1, V);
- each subgraph holds its own copy of the decoder's weights, so generate.onnx stores them twice.
  With one copy in the outer graph, read by both subgraphs as outer-scope values, greedy search was
  slower in each of three interleaved runs on the demo model (e.g. 1.53 against 1.27 ms a sentence,
  batch 1; beam search within noise).

The operator's search is Hugging Face's, and `serve/decoding.py`'s: per step it keeps, per
sentence, the 2K best (beam, token) candidates; EOS among the K best finishes a hypothesis, the K
best others continue; with `early_stopping` a sentence is done once K hypotheses finished (the
stopping rule of CTranslate2 and fairseq, patience 1); scores are log-prob sums / length **
length_penalty with length = tokens + 1. With one beam it is greedy search. `serve/graph_search.py`
says when it is used. The padding mask is computed here from PAD ids: the operator's own mask
treats only left padding as padding.

With a shortlist (serve/shortlist.py), decoder.onnx computes the logits of a batch's candidates only, from
the operands candidates.onnx gathers for them (export/hoisting.py); generate.onnx takes the ids as one more
input, `vocab_ids` (one sentence's candidates: the operator has no per-row mask), runs candidates.onnx's
nodes once in the outer graph, each subgraph reads their results from there (outer-scope values), and the
logits go into rows of -inf over the whole vocabulary, so the operator's search is unchanged and only
candidates can win. Those rows and the scatter's column ids are built once per call (`_scatter_operands`:
the loop's in the outer graph, the first step's beside it); a step only scatters, inside the If that
computes the candidates' logits (`_scatter_in_projection_branch`). The loop step also reads the operator's
int32 mask as it is and its position as Shape gives it (int64), where decoder.onnx would convert them:
fewer kernels a token, the same values (bench/RESULTS-edge.md).

Inputs and outputs (names in `serve/bundle_format.py`):
    source_ids int32 (B, S), PAD-padded; max_length int32 (1,): tokens per output + 1 (BOS counts);
    num_beams int32 (1,); num_return_sequences int32 (1,); length_penalty float32 (1,)
    [; vocab_ids int32 (C,), shortlist bundles]
    -> sequences int32 (B, N, T): BOS, the tokens, then EOS as padding (the finished hypothesis' own
       EOS is not stored; EOS never occurs inside a hypothesis, so the first EOS ends it);
       sequences_scores float32 (B, N).
"""

from __future__ import annotations

import copy

import numpy as np

from keras_transformer.serve import bundle_format as fmt

BUILT_BY = "export.generation_graph (onnxruntime's BeamSearch operator over encoder.onnx and decoder.onnx)"


def _copied_graph(graph, prefix: str, inputs: dict):
    """The nodes and initializers of `graph` with every value renamed: graph inputs as `inputs`
    maps them, everything else `prefix + name`. Returns (nodes, initializers, value_info, the name map)."""
    import onnx

    names = dict(inputs)

    def name(value):
        if value and value not in names:
            names[value] = prefix + value
        return names.get(value, value)

    initializers = []
    for tensor in graph.initializer:
        copied = copy.deepcopy(tensor)
        copied.name = name(tensor.name)
        initializers.append(copied)
    def renamed(node):  # a copy, its subgraphs' values renamed by the same map (If branches: no own inputs)
        if any(a.type == onnx.AttributeProto.GRAPHS for a in node.attribute):
            raise ValueError(f"node {node.name} ({node.op_type}) has a list of subgraphs; generate.onnx does not "
                             "copy those")
        copied = copy.deepcopy(node)
        copied.name = prefix + node.name
        del copied.input[:], copied.output[:]
        copied.input.extend(name(value) for value in node.input)
        copied.output.extend(name(value) for value in node.output)
        for attribute in copied.attribute:
            if attribute.type == onnx.AttributeProto.GRAPH:
                subgraph = attribute.g
                branch = [renamed(inner) for inner in subgraph.node]
                del subgraph.node[:]
                subgraph.node.extend(branch)
                for value in [*subgraph.input, *subgraph.output, *subgraph.value_info, *subgraph.initializer]:
                    value.name = name(value.name)
        return copied

    nodes = [renamed(node) for node in graph.node]
    value_info = []
    for value in graph.value_info:
        copied = copy.deepcopy(value)
        copied.name = name(value.name)
        value_info.append(copied)
    return nodes, initializers, value_info, names


def _dims(value) -> list:
    return [d.dim_value if d.HasField("dim_value") else d.dim_param for d in value.type.tensor_type.shape.dim]


def _scatter_operands(prefix: str, rows: str, vocab_size: int):
    """Nodes and initializers computing, once per call, what a step's scatter reads: `prefix + "unreachable"`
    float32 (R, V) of -inf and `prefix + "columns"` int32 (R, C), the outer graph's vocab_ids on every row;
    `rows` names an int64 (1,) value holding R, the rows the step's logits have."""
    from onnx import helper, numpy_helper

    p = prefix
    nodes = [
        helper.make_node("Concat", [rows, f"{p}vocab_size"], [f"{p}full_shape"], axis=0),  # [R, V]
        helper.make_node("ConstantOfShape", [f"{p}full_shape"], [f"{p}unreachable"],
                         value=numpy_helper.from_array(np.array([-np.inf], np.float32))),
        helper.make_node("Shape", [fmt.VOCAB_IDS], [f"{p}candidates"]),
        helper.make_node("Concat", [rows, f"{p}candidates"], [f"{p}columns_shape"], axis=0),  # [R, C]
        helper.make_node("Unsqueeze", [fmt.VOCAB_IDS, f"{p}axis_0"], [f"{p}vocab_row"]),
        helper.make_node("Expand", [f"{p}vocab_row", f"{p}columns_shape"], [f"{p}columns"]),
    ]
    initializers = [numpy_helper.from_array(np.array([0], np.int64), f"{p}axis_0"),
                    numpy_helper.from_array(np.array([vocab_size], np.int64), f"{p}vocab_size")]
    return nodes, initializers


def _scatter_in_projection_branch(nodes: list, logits: str, prefix: str):
    """Places a shortlist step's candidate logits in -inf rows of V (`_scatter_operands` under `prefix`)
    inside the branch that computes them: the decoder's logits come from an If (no ids: every logit,
    export/shortlist.py), whose candidates branch gains one ScatterElements; the every-logit branch is
    already (B, V). One If a step, and no scatter set-up in it. Edits `nodes` in place."""
    from onnx import helper

    producer = next((node for node in nodes if logits in node.output), None)
    if producer is None or producer.op_type != "If":
        raise ValueError(f"generate.onnx: a shortlist decoder's logits ({logits}) should come from an If "
                         f"(every logit or the candidates'), not {producer and producer.op_type}")
    branch = next(a.g for a in producer.attribute if a.name == "else_branch")
    candidate_logits = branch.output[0].name
    operands = [f"{prefix}unreachable", f"{prefix}columns", candidate_logits]
    branch.node.append(helper.make_node("ScatterElements", operands, [candidate_logits + "_scattered"], axis=1))
    branch.output[0].name = candidate_logits + "_scattered"
    branch.output[0].type.tensor_type.ClearField("shape")  # (B, V) now, like the other branch's


def _without_mask_casts(nodes: list, mask: str, int32_mask: str) -> list:
    """`nodes` reading `int32_mask` (0/1, int32) where they cast the bool `mask` to int32: the operator feeds
    the mask as int32 already, so a step does not convert it twice. Unchanged if `mask` has other readers."""
    from onnx import TensorProto, helper

    from .graph_walk import nodes_within

    def casts_to_int32(node):
        return node.op_type == "Cast" and any(a.name == "to" and helper.get_attribute_value(a) == TensorProto.INT32
                                              for a in node.attribute)

    readers = [node for node in nodes_within(nodes) if mask in node.input]
    if not readers or not all(casts_to_int32(node) and any(node is top for top in nodes) for node in readers):
        return nodes
    renamed = {node.output[0]: int32_mask for node in readers}
    kept = [node for node in nodes if not any(node is reader for reader in readers)]
    for node in nodes_within(kept):
        for index, value in enumerate(node.input):
            node.input[index] = renamed.get(value, value)
    return kept


def build_generation_graph(encoder_proto, decoder_proto, vocab_size: int, candidates_proto=None):
    """ModelProto of generate.onnx from a bundle's encoder.onnx and decoder.onnx ModelProtos.

    `candidates_proto`: a shortlist bundle's candidates.onnx (vocab_ids (C,) -> the operands decoder.onnx
    takes; its logits are (B, C)). generate.onnx then takes vocab_ids (C,) too, one sentence's candidates
    (serve/shortlist.py): the operands are computed once per call, in the outer graph, and each step computes
    those logits only, scattered into -inf rows of V for the operator (`_scatter_in_projection_branch`)."""
    from onnx import TensorProto, helper, numpy_helper

    from .graph_walk import nodes_within

    shortlist = candidates_proto is not None
    outer_nodes, outer_weights, operands = [], [], {}
    if shortlist:  # once per call; the subgraphs read the operands from the outer scope
        outer_nodes, outer_weights, _, names = _copied_graph(candidates_proto.graph, "candidates/",
                                                             {fmt.VOCAB_IDS: fmt.VOCAB_IDS})
        operands = {value.name: names[value.name] for value in candidates_proto.graph.output}

    def tensor(name, shape, dtype=TensorProto.FLOAT):
        return helper.make_tensor_value_info(name, dtype, shape)

    def const(name, value):
        return numpy_helper.from_array(np.asarray(value), name)

    num_layers = sum(1 for value in encoder_proto.graph.output if value.name.startswith("cross_key_"))
    decoder_inputs = {value.name: value for value in decoder_proto.graph.input}
    _, num_heads, _, head_dim = _dims(decoder_inputs[fmt.past_key_name(0)])
    hidden_dim = _dims(encoder_proto.graph.output[0])[2]
    # Per layer and cache half: the bundle's names of its past, present and cross tensor.
    caches = [(i, kv, past(i), present(i), cross(i)) for i in range(num_layers) for kv, past, present, cross in (
        ("key", fmt.past_key_name, fmt.present_key_name, fmt.cross_key_name),
        ("value", fmt.past_value_name, fmt.present_value_name, fmt.cross_value_name))]

    # The loop's step: decoder.onnx under the operator's names.
    step_inputs = {fmt.TOKEN_IDS: "input_ids", fmt.POSITION: "step/position", fmt.SOURCE_MASK: "step/source_mask"}
    step_inputs.update(operands)  # the outer graph's values, read from inside the loop
    for i, kv, past, _, cross in caches:
        step_inputs.update({cross: f"past_{kv}_cross_{i}", past: f"past_{kv}_self_{i}"})
    nodes, step_weights, value_info, names = _copied_graph(decoder_proto.graph, "step/", step_inputs)
    step_logits = names[fmt.LOGITS]
    if shortlist:  # the scatter's operands once per call, in the outer graph: the loop's rows are sentences x beams
        _scatter_in_projection_branch(nodes, step_logits, "scatter/")
        scatter_nodes, scatter_weights = _scatter_operands("scatter/", "scatter/rows", vocab_size)
        rows = [helper.make_node("Shape", [fmt.SOURCE_IDS], ["scatter/batch"], start=0, end=1),
                helper.make_node("Cast", [fmt.GENERATE_NUM_BEAMS], ["scatter/beams"], to=TensorProto.INT64),
                helper.make_node("Mul", ["scatter/batch", "scatter/beams"], ["scatter/rows"])]
        outer_nodes, outer_weights = outer_nodes + rows + scatter_nodes, outer_weights + scatter_weights
    nodes = _without_mask_casts(nodes, "step/source_mask", "encoder_attention_mask")
    mask = [helper.make_node("Cast", ["encoder_attention_mask"], ["step/source_mask"], to=TensorProto.BOOL)]
    mask = mask if any("step/source_mask" in node.input for node in nodes_within(nodes)) else []
    # The position is the cache's length; int64 as Shape gives it where only Gathers read it (their indices).
    position_readers = [node for node in nodes_within(nodes) if "step/position" in node.input]
    int64_position = all(node.op_type == "Gather" and list(node.input).index("step/position") == 1
                         for node in position_readers)
    position = [helper.make_node("Shape", ["past_key_self_0"], ["step/past_length"], start=2, end=3)]
    if int64_position:
        position.append(helper.make_node("Squeeze", ["step/past_length"], ["step/position"]))
    else:
        position += [helper.make_node("Cast", ["step/past_length"], ["step/past_length_int32"], to=TensorProto.INT32),
                     helper.make_node("Squeeze", ["step/past_length_int32"], ["step/position"])]
    step = [*mask, *position, *nodes, helper.make_node("Unsqueeze", [step_logits, "step/axis_1"], ["logits"])]
    step += [helper.make_node("Identity", [names[present]], [f"present_{kv}_self_{i}"])
             for i, kv, _, present, _ in caches]
    decoder_graph = helper.make_graph(
        step, "decoder_step",
        [tensor("input_ids", ["B", 1], TensorProto.INT32),
         tensor("encoder_attention_mask", ["B", "S"], TensorProto.INT32)]
        + [tensor(f"past_{kv}_self_{i}", ["B", num_heads, "P", head_dim]) for i, kv, *_ in caches]
        + [tensor(f"past_{kv}_cross_{i}", ["B", num_heads, "S", head_dim]) for i, kv, *_ in caches],
        [tensor("logits", ["B", 1, vocab_size])]
        + [tensor(f"present_{kv}_self_{i}", ["B", num_heads, "P + 1", head_dim]) for i, kv, *_ in caches],
        step_weights + [const("step/axis_1", np.array([1], np.int64))], value_info=value_info)

    # The encoder subgraph: encoder.onnx, then the first step (BOS, position 0, empty cache).
    encoder_nodes, encoder_weights, encoder_info, encoded = _copied_graph(
        encoder_proto.graph, "encoder/", {fmt.SOURCE_IDS: "encoder_input_ids"})
    first_inputs = {fmt.TOKEN_IDS: "decoder_input_ids", fmt.POSITION: "first/position",
                    fmt.SOURCE_MASK: "first/source_mask"}
    first_inputs.update(operands)
    for _, _, past, _, cross in caches:
        first_inputs.update({cross: encoded[cross], past: "first/empty_cache"})
    first_nodes, first_weights, first_info, first = _copied_graph(decoder_proto.graph, "first/", first_inputs)
    first_logits = first[fmt.LOGITS]
    first_scatter = []  # the first step's rows are the sentences (the operator expands to beams after it)
    if shortlist:
        _scatter_in_projection_branch(first_nodes, first_logits, "first/scatter_")
        first_scatter, scatter_weights = _scatter_operands("first/scatter_", "first/batch", vocab_size)
        first_weights = first_weights + scatter_weights
    start = [helper.make_node("Cast", ["encoder_attention_mask"], ["first/source_mask"], to=TensorProto.BOOL),
             helper.make_node("Shape", ["encoder_input_ids"], ["first/batch"], start=0, end=1),
             helper.make_node("Concat", ["first/batch", "first/cache_dims"], ["first/cache_shape"], axis=0),
             helper.make_node("ConstantOfShape", ["first/cache_shape"], ["first/empty_cache"],
                              value=const("zero", np.zeros(1, np.float32)))]
    finish = [helper.make_node("Unsqueeze", [first_logits, "first/axis_1"], ["logits"]),
              helper.make_node("Identity", [encoded[fmt.ENCODER_OUTPUT]], ["encoder_hidden_states"])]
    finish += [helper.make_node("Identity", [first[present]], [f"present_{kv}_self_{i}"])
               for i, kv, _, present, _ in caches]
    finish += [helper.make_node("Identity", [encoded[cross]], [f"present_{kv}_cross_{i}"])
               for i, kv, _, _, cross in caches]
    encoder_graph = helper.make_graph(
        encoder_nodes + start + first_scatter + first_nodes + finish, "encoder_and_first_step",
        [tensor("encoder_input_ids", ["B", "S"], TensorProto.INT32),
         tensor("encoder_attention_mask", ["B", "S"], TensorProto.INT32),
         tensor("decoder_input_ids", ["B", 1], TensorProto.INT32)],
        [tensor("logits", ["B", 1, vocab_size]), tensor("encoder_hidden_states", ["B", "S", hidden_dim])]
        + [tensor(f"present_{kv}_self_{i}", ["B", num_heads, 1, head_dim]) for i, kv, *_ in caches]
        + [tensor(f"present_{kv}_cross_{i}", ["B", num_heads, "S", head_dim]) for i, kv, *_ in caches],
        encoder_weights + first_weights + [const("first/position", np.array(0, np.int32)),
                                           const("first/cache_dims", np.array([num_heads, 0, head_dim], np.int64)),
                                           const("first/axis_1", np.array([1], np.int64))],
        value_info=encoder_info + first_info)

    search = [
        *outer_nodes,
        helper.make_node("Equal", [fmt.SOURCE_IDS, "pad_id"], ["is_pad"]),
        helper.make_node("Not", ["is_pad"], ["is_token"]),
        helper.make_node("Cast", ["is_token"], ["attention_mask"], to=TensorProto.INT32),
        helper.make_node(
            "BeamSearch",
            [fmt.SOURCE_IDS, fmt.GENERATE_MAX_LENGTH, "min_length", fmt.GENERATE_NUM_BEAMS, fmt.GENERATE_NUM_RETURN,
             fmt.GENERATE_LENGTH_PENALTY, "", "", "", "attention_mask"],
            [fmt.GENERATE_SEQUENCES, fmt.GENERATE_SCORES], name="search", domain="com.microsoft",
            encoder=encoder_graph, decoder=decoder_graph, model_type=1, vocab_size=vocab_size,
            decoder_start_token_id=fmt.BOS_ID, eos_token_id=fmt.EOS_ID,
            pad_token_id=fmt.EOS_ID,  # pads finished outputs (and feeds finished beams): EOS, so the first EOS ends one
            early_stopping=1, no_repeat_ngram_size=0),
    ]
    graph = helper.make_graph(
        search, "generate",
        [tensor(fmt.SOURCE_IDS, ["batch", "source_length"], TensorProto.INT32),
         tensor(fmt.GENERATE_MAX_LENGTH, [1], TensorProto.INT32),
         tensor(fmt.GENERATE_NUM_BEAMS, [1], TensorProto.INT32),
         tensor(fmt.GENERATE_NUM_RETURN, [1], TensorProto.INT32), tensor(fmt.GENERATE_LENGTH_PENALTY, [1])]
        + ([tensor(fmt.VOCAB_IDS, ["candidates"], TensorProto.INT32)] if shortlist else []),
        [tensor(fmt.GENERATE_SEQUENCES, ["batch", "hypotheses", "length"], TensorProto.INT32),
         tensor(fmt.GENERATE_SCORES, ["batch", "hypotheses"])],
        [const("pad_id", np.array(fmt.PAD_ID, np.int32)),
         const("min_length", np.array([0], np.int32))]  # optional, but onnxruntime 1.32 fails without it
        + outer_weights)
    protos = [encoder_proto, decoder_proto] + ([candidates_proto] if shortlist else [])
    opsets = {opset.domain: opset.version for proto in protos for opset in proto.opset_import}
    opsets["com.microsoft"] = 1
    opset_imports = [helper.make_opsetid(domain, version) for domain, version in opsets.items()]
    model = helper.make_model(graph, opset_imports=opset_imports, producer_name="keras-transformer")
    model.ir_version = max(proto.ir_version for proto in protos)
    return model
