"""decoder.onnx written directly from the Keras weights with onnxruntime's fused operators.

For a small model much of a decoding step's time is the fixed cost per kernel, not arithmetic, and
tf2onnx lowers the step into many small kernels (head splits, cache concatenations, bias adds, shape
computations). This module builds the same function from a few larger onnxruntime operators (the
`com.microsoft` domain, on the CPU and in onnxruntime-web):

    attention        MatMul x·[Wq|Wk|Wv] -> Split -> MultiHeadAttention(q, k, v, bias, mask or past K/V)
                     -> MatMul W_o -> Add b_o -> Add x -> LayerNormalization    (Add & Norm)
    cross-attention  MatMul x·Wq -> MultiHeadAttention(q, cross K/V, bias, source padding mask) -> ...
    feed-forward     MatMul W_1 -> Add b_1 -> Relu (or BiasGelu) -> MatMul W_2 -> Add & Norm as above
    decoder step     Gather(√d · E)[token] + PE[position] in; MatMul(x, Eᵀ) + bias out (a Gemm)

MultiHeadAttention appends the new key/value to the cache itself (its `present_*` outputs), scales
by 1/√d_k and adds -10000 to masked scores (`keras_transformer.attention` sets them to -1e9: both
weigh 0 after the softmax in float32). With `norm_first` (pre-norm) the sum is the residual stream
and its LayerNormalization the next sublayer's input. Add & Norm stays three plain operators
(onnxruntime's SkipLayerNormalization is slower on CPU from 32 rows up). The graph keeps the
bundle's interface (`serve/bundle_format.py`) and the export's parity check compares it with the
Keras model. encoder.onnx stays tf2onnx's: it runs once per batch, and fusing it gained little.
Figures: bench/RESULTS-decoder-graph.md, bench/RESULTS-speed-changes.md (section 3, "Tried and left out").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from keras_transformer.serve import bundle_format as fmt

MS_DOMAIN = "com.microsoft"
MASK_FILTER_VALUE = -10000.0  # MultiHeadAttention's default, added to masked scores


def cross_scores_name(layer: int) -> str:
    """A fused decoder's inner tensor (B, H, 1, S): layer `layer`'s cross-attention scores, masked
    and scaled, before the softmax (the browser's attention view adds it to the graph outputs)."""
    return f"cross_attention_scores_{layer}"


@dataclass
class AttentionWeights:
    """One attention sublayer; Dense kernels are (in, out) as in Keras."""

    query: tuple[np.ndarray, np.ndarray]  # kernel (D, D), bias (D,)
    key: tuple[np.ndarray, np.ndarray]
    value: tuple[np.ndarray, np.ndarray]
    output: tuple[np.ndarray, np.ndarray]
    norm: tuple[np.ndarray, np.ndarray]  # the Add & Norm's gamma, beta (D,)


@dataclass
class FeedForwardWeights:
    expand: tuple[np.ndarray, np.ndarray]  # (D, F), (F,)
    contract: tuple[np.ndarray, np.ndarray]  # (F, D), (D,)
    norm: tuple[np.ndarray, np.ndarray]


@dataclass
class LayerWeights:
    self_attention: AttentionWeights
    cross_attention: AttentionWeights
    feed_forward: FeedForwardWeights


@dataclass
class DecoderWeights:
    """The decoder, as float32 numpy arrays."""

    embedding: np.ndarray  # (V, D) token embedding (unscaled)
    positional_encoding: np.ndarray  # (L, D)
    layers: list[LayerWeights]
    final_norm: tuple[np.ndarray, np.ndarray] | None  # pre-norm only
    output: tuple[np.ndarray, np.ndarray]  # (D, V) kernel (tied: Eᵀ), (V,) bias


@dataclass(frozen=True)
class Architecture:
    num_heads: int
    epsilon: float
    activation: str = "relu"  # or "gelu" (exact, erf)
    norm_first: bool = False


def decoder_weights(model) -> tuple[DecoderWeights, Architecture]:
    """The decoder's weights and the architecture of a `build_transformer` model (needs Keras)."""
    from keras import ops

    from keras_transformer.model import config_of, decoder_of

    def array(variable):
        return np.asarray(ops.convert_to_numpy(variable), dtype=np.float32)

    def dense(layer):
        return array(layer.kernel), array(layer.bias)

    def norm(add_and_norm):
        return array(add_and_norm.norm.gamma), array(add_and_norm.norm.beta)

    def attention(layer, add_and_norm):
        return AttentionWeights(dense(layer.query_dense), dense(layer.key_dense), dense(layer.value_dense),
                                dense(layer.output_dense), norm(add_and_norm))

    def feed_forward(layer):
        ff = layer.feed_forward
        return FeedForwardWeights(dense(ff.expand), dense(ff.contract), norm(layer.feed_forward_norm))

    config, decoder = config_of(model), decoder_of(model)
    decoder_layers = [LayerWeights(attention(layer.self_attention, layer.self_attention_norm),
                                   attention(layer.cross_attention, layer.cross_attention_norm),
                                   feed_forward(layer)) for layer in decoder.decoder_layers]
    if decoder.output_projection is None:
        output = (np.ascontiguousarray(array(decoder.embedding.embeddings).T), array(decoder.output_bias))
    else:
        output = dense(decoder.output_projection)
    final = decoder.final_norm
    weights = DecoderWeights(array(decoder.embedding.embeddings),
                             np.asarray(decoder.embedding.positional_encoding, np.float32), decoder_layers,
                             None if final is None else (array(final.gamma), array(final.beta)), output)
    return weights, Architecture(config.num_heads, config.layer_norm_epsilon, config.activation, config.norm_first)


class _Graph:
    """Collects nodes and initializers; the names given are unique by construction."""

    def __init__(self, architecture: Architecture):
        self.arch = architecture
        self.nodes, self.initializers = [], []

    def constant(self, name, value):
        from onnx import numpy_helper

        self.initializers.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def node(self, op, inputs, outputs, domain="", **attributes):
        from onnx import helper

        outputs = [outputs] if isinstance(outputs, str) else outputs
        self.nodes.append(helper.make_node(op, inputs, outputs, name=f"{outputs[0]}_{op}", domain=domain,
                                           **attributes))
        return outputs[0] if len(outputs) == 1 else outputs

    def layer_norm(self, p, x, norm):
        return self.node("LayerNormalization", [x, self.constant(f"{p}_gamma", norm[0]),
                                                self.constant(f"{p}_beta", norm[1])],
                         f"{p}_normed", axis=-1, epsilon=self.arch.epsilon)

    def residual(self, p, sublayer_output, stream, bias, norm, next_norm):
        """Add & Norm with the sublayer's output bias; returns (stream, next sublayer input).
        Post-norm: both are LN(out + b + stream). Pre-norm: out + b + stream, and `next_norm` of it.

        Two Adds and a LayerNormalization rather than onnxruntime's SkipLayerNormalization, whose CPU
        kernel is slower from 32 rows up (serve/sessions.py turns off the optimizer that would fuse them
        back; bench/RESULTS-speed-changes.md). The sums run in Keras' order: (out + b) + stream."""
        biased = self.node("Add", [sublayer_output, self.constant(f"{p}_bias", bias)], f"{p}_biased")
        summed = self.node("Add", [biased, stream], f"{p}_stream")
        if not self.arch.norm_first:
            out = self.layer_norm(p, summed, norm)
            return out, out
        return summed, self.layer_norm(f"{p}_next", summed, next_norm)

    def self_attention(self, p, h, w: AttentionWeights, past, present):
        """Packed Q/K/V projection, MultiHeadAttention over the cache, output projection (its bias
        left to `residual`). h (B, 1, D); past/present: the cache's (key, value) input/output names.
        No causal mask: the cache holds earlier positions only."""
        kernel = np.concatenate([w.query[0], w.key[0], w.value[0]], axis=1)  # (D, 3D)
        qkv = self.node("MatMul", [h, self.constant(f"{p}_qkv_kernel", kernel)], f"{p}_qkv")  # (B, 1, 3D)
        sizes = self.constant(f"{p}_qkv_split", np.array([kernel.shape[0]] * 3, np.int64))
        q, k, v = self.node("Split", [qkv, sizes], [f"{p}_q", f"{p}_k", f"{p}_v"], axis=2)
        bias = self.constant(f"{p}_qkv_bias", np.concatenate([w.query[1], w.key[1], w.value[1]]))
        attended, _, _ = self.node("MultiHeadAttention", [q, k, v, bias, "", "", *past],  # no mask, no attention bias
                                   [f"{p}_attended", *present], domain=MS_DOMAIN, num_heads=self.arch.num_heads)
        return self.node("MatMul", [attended, self.constant(f"{p}_output_kernel", w.output[0])], f"{p}_output")

    def feed_forward(self, p, h, w: FeedForwardWeights):
        """Position-wise feed-forward without the contraction's bias (left to `residual`)."""
        hidden = self.node("MatMul", [h, self.constant(f"{p}_expand_kernel", w.expand[0])], f"{p}_expand")
        bias = self.constant(f"{p}_expand_bias", w.expand[1])
        if self.arch.activation == "relu":
            hidden = self.node("Relu", [self.node("Add", [hidden, bias], f"{p}_expand_biased")], f"{p}_hidden")
        else:  # Keras' exact (erf) GELU
            hidden = self.node("BiasGelu", [hidden, bias], f"{p}_hidden", domain=MS_DOMAIN)
        return self.node("MatMul", [hidden, self.constant(f"{p}_contract_kernel", w.contract[0])], f"{p}_contract")

    def embed(self, p, ids, positions, weights: DecoderWeights):
        """√d · E[ids] + PE[positions]: the scaled table is stored, so no multiply runs."""
        hidden_dim = weights.embedding.shape[1]
        scaled = self.constant(f"{p}_embedding_scaled",
                               (weights.embedding * np.float32(np.sqrt(hidden_dim))).astype(np.float32))
        table = self.constant(f"{p}_positional_encoding", weights.positional_encoding)
        tokens = self.node("Gather", [scaled, ids], f"{p}_token_embedding", axis=0)
        return self.node("Add", [tokens, self.node("Gather", [table, positions], f"{p}_position_encoding", axis=0)],
                         f"{p}_embedded")

    def norms_after(self, weights: DecoderWeights, i: int) -> list:
        """Pre-norm: the norm after each sublayer of layer i is the next sublayer's input norm."""
        layer = weights.layers[i]
        following = weights.layers[i + 1].self_attention.norm if i + 1 < len(weights.layers) else weights.final_norm
        return [layer.cross_attention.norm, layer.feed_forward.norm, following]

    def model(self, name, inputs, outputs, opset):
        from onnx import helper

        graph = helper.make_graph(self.nodes, name, inputs, outputs, self.initializers)
        model = helper.make_model(graph, producer_name="keras-transformer",
                                  opset_imports=[helper.make_opsetid("", opset), helper.make_opsetid(MS_DOMAIN, 1)])
        model.ir_version = min(model.ir_version, 10)
        return model


def _heads(g: _Graph, p, x, num_heads, head_dim):
    """(B, T, D) -> (B, H, T, Dh)."""
    x = g.node("Reshape", [x, g.constant(f"{p}_split_heads", np.array([0, 0, num_heads, head_dim], np.int64))],
               f"{p}_bthd")
    return g.node("Transpose", [x], f"{p}_bhtd", perm=[0, 2, 1, 3])


def build_decoder_step(decoder: DecoderWeights, architecture: Architecture, opset: int = 17,
                       plain_cross_attention: bool = False, shortlist: bool = False):
    """decoder.onnx, one cached step, inputs and outputs as `fmt.decoder_io_names`: token_ids int32
    (B, 1), position int32 (), source_mask bool (B, S), per layer cross K/V (B, H, S, Dh) and past K/V
    (B, H, P, Dh) -> logits (B, V), per layer present K/V (B, H, P+1, Dh).

    `plain_cross_attention` (the int8 bundles'): cross-attention from plain operators
    (`_plain_attention`) instead of MultiHeadAttention, whose sums over the source change in the last
    bit with the batch's padded length; int8 quantization then makes that sum exact
    (`export.quantize.exact_cross_attention`).

    `shortlist`: one more input, vocab_ids int32 (C,), and logits (B, C) for those ids only: the
    output projection's rows are gathered, so the step does C / V of the projection's work
    (`_shortlist_projection`, serve/shortlist.py); no ids (C = 0): every logit, (B, V). The bundle's
    decoder.onnx is this graph split by `export.hoisting.split_per_batch`: the gathers run once per batch
    in candidates.onnx, and the step takes their results instead of vocab_ids.
    """
    from onnx import TensorProto, helper

    g = _Graph(architecture)
    vocab_size, hidden_dim = decoder.embedding.shape
    num_heads, num_layers = architecture.num_heads, len(decoder.layers)
    head_dim = hidden_dim // num_heads
    x = g.embed("decoder", fmt.TOKEN_IDS, fmt.POSITION, decoder)  # (B, 1, D)
    if plain_cross_attention:  # (B, 1, 1, S): 0 on real source tokens, MASK_FILTER_VALUE on padding
        unsqueezed = g.node("Unsqueeze", [fmt.SOURCE_MASK, g.constant("mask_axes", np.array([1, 2], np.int64))],
                            "source_mask_4d")
        mask = g.node("Where", [unsqueezed, g.constant("attend", np.float32(0.0)),
                                g.constant("masked", np.float32(MASK_FILTER_VALUE))], "source_mask_bias")
    else:
        mask = g.node("Cast", [fmt.SOURCE_MASK], "source_mask_int32", to=TensorProto.INT32)  # (B, S)
    h = g.layer_norm("decoder_layer0_self", x, decoder.layers[0].self_attention.norm) if architecture.norm_first else x
    value_infos = []  # the types onnx cannot infer (MultiHeadAttention's optional scores output)
    for i, w in enumerate(decoder.layers):
        p = f"decoder_layer{i}"
        after = g.norms_after(decoder, i) if architecture.norm_first else [None] * 3
        out = g.self_attention(f"{p}_self", h, w.self_attention, (fmt.past_key_name(i), fmt.past_value_name(i)),
                               (fmt.present_key_name(i), fmt.present_value_name(i)))
        x, h = g.residual(f"{p}_self", out, x, w.self_attention.output[1], w.self_attention.norm, after[0])

        # Cross-attention: keys/values projected once per sentence by encoder.onnx (their biases
        # included), so only the query's bias goes into the operator's [q | k | v] bias.
        cross = w.cross_attention
        q = g.node("MatMul", [h, g.constant(f"{p}_cross_query_kernel", cross.query[0])], f"{p}_cross_q")
        if plain_cross_attention:
            attended = _plain_attention(g, f"{p}_cross", q, cross.query[1], i, mask, num_heads, head_dim)
        else:
            zeros = np.zeros(hidden_dim, np.float32)
            bias = g.constant(f"{p}_cross_qkv_bias", np.concatenate([cross.query[1], zeros, zeros]))
            # The fourth output, the masked scaled scores (B, H, 1, S) before the softmax, is what
            # the browser's attention view reads (web/src/onnx_graph.js); it costs a copy of B*H*S floats.
            scores = cross_scores_name(i)
            attended = g.node("MultiHeadAttention", [q, fmt.cross_key_name(i), fmt.cross_value_name(i), bias, mask],
                              [f"{p}_cross_attended", "", "", scores], domain=MS_DOMAIN, num_heads=num_heads)[0]
            value_infos.append(helper.make_tensor_value_info(scores, TensorProto.FLOAT, ["batch", num_heads, 1,
                                                                                         "source_length"]))
        out = g.node("MatMul", [attended, g.constant(f"{p}_cross_output_kernel", cross.output[0])],
                     f"{p}_cross_output")
        x, h = g.residual(f"{p}_cross", out, x, cross.output[1], cross.norm, after[1])

        out = g.feed_forward(f"{p}_feed_forward", h, w.feed_forward)
        x, h = g.residual(f"{p}_feed_forward", out, x, w.feed_forward.contract[1], w.feed_forward.norm, after[2])

    # Pre-softmax linear map on (B, D) rows: MatMul + Add, which onnxruntime fuses into one Gemm
    # (and `export/quantize.py`, for a large enough vocabulary, into int8 MatMulIntegerToFloat + Add).
    rows = g.node("Reshape", [h, g.constant("rows_shape", np.array([-1, hidden_dim], np.int64))], "final_rows")
    if shortlist:
        _shortlist_projection(g, rows, decoder.output)
    else:
        logits = g.node("MatMul", [rows, g.constant("output_kernel", decoder.output[0])], "logits_unbiased")
        g.node("Add", [logits, g.constant("output_bias", decoder.output[1])], fmt.LOGITS)

    heads = lambda length: ["batch", num_heads, length, head_dim]  # noqa: E731
    inputs = [helper.make_tensor_value_info(fmt.TOKEN_IDS, TensorProto.INT32, ["batch", 1]),
              helper.make_tensor_value_info(fmt.POSITION, TensorProto.INT32, []),
              helper.make_tensor_value_info(fmt.SOURCE_MASK, TensorProto.BOOL, ["batch", "source_length"])]
    if shortlist:
        inputs.append(helper.make_tensor_value_info(fmt.VOCAB_IDS, TensorProto.INT32, ["candidates"]))
    outputs = [helper.make_tensor_value_info(fmt.LOGITS, TensorProto.FLOAT,
                                             ["batch", "candidates" if shortlist else vocab_size])]
    for i in range(num_layers):
        inputs += [helper.make_tensor_value_info(name, TensorProto.FLOAT, heads(length)) for name, length in (
            (fmt.cross_key_name(i), "source_length"), (fmt.cross_value_name(i), "source_length"),
            (fmt.past_key_name(i), "past_length"), (fmt.past_value_name(i), "past_length"))]
        outputs += [helper.make_tensor_value_info(name, TensorProto.FLOAT, heads("present_length"))
                    for name in (fmt.present_key_name(i), fmt.present_value_name(i))]
    model = g.model("decoder_step", inputs, outputs, opset)
    model.graph.value_info.extend(value_infos)
    return model


def _shortlist_projection(g: _Graph, rows: str, output) -> None:
    """logits for a shortlist decoder: with vocab_ids (C,) the projection of those ids only, their (C, D) rows
    and (C,) biases gathered, one Gemm -> (B, C); with no ids (C = 0: the shortlist turned off) every
    logit, one Gemm on the whole (V, D) table -> (B, V), as fast as a bundle without a shortlist.

    Rows, not columns of a (D, V) kernel: Gather copies a row at a time, so a column gather costs ten
    times more. `export/quantize.py` makes both Gemms int8 as it does the full MatMul."""
    from onnx import TensorProto, helper

    kernel = g.constant("output_kernel_rows", np.ascontiguousarray(output[0].T))  # (V, D)
    bias = g.constant("output_bias", output[1])  # (V,)
    size = g.node("Size", [fmt.VOCAB_IDS], "vocab_ids_size")
    every = g.node("Equal", [size, g.constant("no_ids", np.array(0, np.int64))], "every_id")
    logits = lambda name: [helper.make_tensor_value_info(name, TensorProto.FLOAT, None)]  # noqa: E731
    whole = helper.make_graph([helper.make_node("Gemm", [rows, kernel, bias], ["every_logits"], name="every_logits",
                                                transB=1)], "every_id", [], logits("every_logits"))
    chosen = helper.make_graph([
        helper.make_node("Gather", [kernel, fmt.VOCAB_IDS], ["shortlist_kernel"], name="shortlist_kernel", axis=0),
        helper.make_node("Gather", [bias, fmt.VOCAB_IDS], ["shortlist_bias"], name="shortlist_bias", axis=0),
        helper.make_node("Gemm", [rows, "shortlist_kernel", "shortlist_bias"], ["candidate_logits"],
                         name="candidate_logits", transB=1),
    ], "candidates", [], logits("candidate_logits"))
    g.node("If", [every], fmt.LOGITS, then_branch=whole, else_branch=chosen)


def _plain_attention(g: _Graph, p, query, query_bias, layer, mask_bias, num_heads, head_dim):
    """Cross-attention of one new position from plain operators, softmax(q Kᵀ / √d_k + mask) V, with
    the `weights @ cross_value` MatMul that `export.quantize.exact_cross_attention` rewrites into a
    sum that padding cannot change. query (B, 1, D) before its bias -> (B, 1, D)."""
    q = g.node("Add", [query, g.constant(f"{p}_query_bias", query_bias)], f"{p}_q_biased")
    q = _heads(g, f"{p}_q", q, num_heads, head_dim)  # (B, H, 1, Dh)
    keys_t = g.node("Transpose", [fmt.cross_key_name(layer)], f"{p}_keys_t", perm=[0, 1, 3, 2])  # (B, H, Dh, S)
    scores = g.node("MatMul", [q, keys_t], f"{p}_scores")  # (B, H, 1, S)
    scores = g.node("Mul", [scores, g.constant(f"{p}_scale", np.float32(1.0 / np.sqrt(head_dim)))], f"{p}_scaled")
    weights = g.node("Softmax", [g.node("Add", [scores, mask_bias], f"{p}_masked")], f"{p}_weights", axis=-1)
    heads = g.node("MatMul", [weights, fmt.cross_value_name(layer)], f"{p}_heads_out")  # (B, H, 1, Dh)
    merged = g.node("Transpose", [heads], f"{p}_bthd", perm=[0, 2, 1, 3])  # (B, 1, H, Dh)
    merged_shape = g.constant(f"{p}_merged_shape", np.array([0, 1, num_heads * head_dim], np.int64))
    return g.node("Reshape", [merged, merged_shape], f"{p}_attended")


def convert_fused_decoder_step(model, opset: int = 17, plain_cross_attention: bool = False, shortlist: bool = False):
    """`build_decoder_step` for a Keras `build_transformer` model."""
    decoder, architecture = decoder_weights(model)
    return build_decoder_step(decoder, architecture, opset, plain_cross_attention, shortlist)

