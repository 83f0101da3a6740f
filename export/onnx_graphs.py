"""Converts the Keras encoder and the cached decoder step into two ONNX graphs with tf2onnx.

Each graph is a `tf.function` with an explicit `TensorSpec` signature over the same Keras layer
instances as the training model (tf2onnx's `from_keras` is avoided: tf2onnx #2329). The decoding
loop is not in the graphs (tf2onnx #1229, #2274): it runs in numpy in `serve/`. The cache grows by
concatenation, never `slice_update` (tf2onnx #1601). Every graph input and output is renamed to
the names in `serve/bundle_format.py`, so nothing depends on converter-chosen names, and
TensorFlow's Tensordot scaffolding around each Dense layer is removed and each layer norm becomes
one LayerNormalization node (export/graph_cleanup.py).
"""

from __future__ import annotations

from .graph_cleanup import clean_up
from keras_transformer.serve import bundle_format as fmt
from keras_transformer.serve.bundle_format import decoder_io_names, encoder_io_names

OPSET = 17  # the one pinned opset; `export --opset N` may ask for a later one


def _rename(model_proto, old, new):
    graph = model_proto.graph
    for value in list(graph.input) + list(graph.output):
        if value.name == old:
            value.name = new
    for node in graph.node:
        node.input[:] = [new if name == old else name for name in node.input]
        node.output[:] = [new if name == old else name for name in node.output]


def _name_io(model_proto, input_names, output_names):
    """Renames the graph's inputs and outputs, in order, to the bundle's names."""
    graph_inputs = [value.name for value in model_proto.graph.input]
    graph_outputs = [value.name for value in model_proto.graph.output]
    assert len(graph_inputs) == len(input_names) and len(graph_outputs) == len(output_names), (
        graph_inputs, graph_outputs)
    for old, new in zip(graph_inputs + graph_outputs, input_names + output_names):
        if old != new:
            _rename(model_proto, old, new)
    return model_proto


def convert_encoder(model, opset=OPSET):
    """ONNX ModelProto: source_ids int32 (B, S) -> encoder_output (B, S, D), cross K/V (B, H, S, Dh)."""
    import tensorflow as tf
    import tf2onnx

    from keras_transformer.model import config_of, decoder_of, encoder_of

    encoder, decoder = encoder_of(model), decoder_of(model)
    signature = [tf.TensorSpec([None, None], tf.int32, name=fmt.SOURCE_IDS)]

    @tf.function(input_signature=signature)
    def encode(source_ids):
        encoder_output = encoder(source_ids, training=False)
        flat = [encoder_output]
        for key, value in decoder.cross_key_values(encoder_output):
            flat += [key, value]
        return flat

    model_proto, _ = tf2onnx.convert.from_function(encode, input_signature=signature, opset=opset)
    return _name_io(clean_up(model_proto), *encoder_io_names(config_of(model).decoder_layers))


def convert_decoder_step(model, opset=OPSET):
    """ONNX ModelProto of one cached decoding step (inputs and outputs as in decoder_io_names)."""
    import tensorflow as tf
    import tf2onnx

    from keras_transformer.model import config_of, decoder_of

    config = config_of(model)
    decoder = decoder_of(model)
    heads_shape = [None, config.num_heads, None, config.head_dim]  # (B, H, S or P, Dh)
    input_names, _ = decoder_io_names(config.decoder_layers)
    signature = [tf.TensorSpec([None, 1], tf.int32), tf.TensorSpec([], tf.int32),
                 tf.TensorSpec([None, None], tf.bool)]
    signature += [tf.TensorSpec(heads_shape, tf.float32) for _ in range(4 * config.decoder_layers)]
    signature = [tf.TensorSpec(s.shape, s.dtype, name=name) for s, name in zip(signature, input_names)]

    @tf.function(input_signature=signature)
    def step(token_ids, position, source_mask, *per_layer):
        cross = [(per_layer[4 * i], per_layer[4 * i + 1]) for i in range(config.decoder_layers)]
        past = [(per_layer[4 * i + 2], per_layer[4 * i + 3]) for i in range(config.decoder_layers)]
        logits, present = decoder.step(token_ids, position, past, cross, source_mask)
        flat = [logits]
        for key, value in present:
            flat += [key, value]
        return flat

    model_proto, _ = tf2onnx.convert.from_function(step, input_signature=signature, opset=opset)
    return _name_io(clean_up(model_proto), *decoder_io_names(config.decoder_layers))
