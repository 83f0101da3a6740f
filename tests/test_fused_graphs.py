"""export/fused_graphs.py: the decoder step built from onnxruntime's fused operators computes what
the Keras model's cached step computes, for every architecture option, with padding, the cache and
several steps; and it is what `export` writes unless `--standard-ops` is asked for."""

import json

import numpy as np
import pytest

ATOL = 1e-4  # the export's parity tolerance


def _random_model(**options):
    import keras

    from keras_transformer import TransformerConfig, build_transformer

    config = TransformerConfig(source_vocab_size=50, target_vocab_size=60, num_layers=2, hidden_dim=32, num_heads=4,
                               intermediate_dim=64, dropout=0.0, max_source_length=20, max_target_length=20, **options)
    keras.utils.set_random_seed(0)
    model = build_transformer(config)
    rng = np.random.default_rng(1)
    for weight in model.weights:  # layer norms and biases away from their 1/0 start, so each one matters
        weight.assign(weight.numpy() + rng.normal(0, 0.1, weight.shape).astype(np.float32))
    return model, config


def _max_step_difference(model, config, plain_cross_attention=False, steps=6):
    """Feeds the Keras step's own greedy tokens to both; returns the largest |difference| of the
    logits and present keys/values over all steps."""
    import onnxruntime as ort

    from keras_transformer.export.fused_graphs import convert_fused_decoder_step
    from keras_transformer.keras_step_model import KerasStepModel
    from keras_transformer.serve import bundle_format as fmt

    proto = convert_fused_decoder_step(model, plain_cross_attention=plain_cross_attention)
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    keras_step = KerasStepModel(model)
    sources = np.array([[5, 6, 7, 8, 2, 0, 0], [9, 10, 2, 0, 0, 0, 0], [11, 12, 13, 14, 15, 16, 2]], np.int32)
    state = keras_step.start(sources)
    head_shape = (3, config.num_heads, 0, config.hidden_dim // config.num_heads)
    past = [(np.zeros(head_shape, np.float32),) * 2 for _ in range(config.decoder_layers)]
    tokens, worst = np.full(3, fmt.BOS_ID, np.int32), 0.0
    for position in range(steps):
        keras_logits, state = keras_step.step(tokens, position, state)
        feeds = {fmt.TOKEN_IDS: tokens[:, None], fmt.POSITION: np.array(position, np.int32),
                 fmt.SOURCE_MASK: sources != fmt.PAD_ID}
        for i in range(config.decoder_layers):
            feeds[fmt.cross_key_name(i)], feeds[fmt.cross_value_name(i)] = state["cross"][i]
            feeds[fmt.past_key_name(i)], feeds[fmt.past_value_name(i)] = past[i]
        logits, *present = session.run(None, feeds)
        past = [(present[2 * i], present[2 * i + 1]) for i in range(config.decoder_layers)]
        worst = max(worst, float(np.abs(logits - keras_logits).max()))
        for (key, value), (keras_key, keras_value) in zip(past, state["past"]):
            worst = max(worst, float(np.abs(key - keras_key).max()), float(np.abs(value - keras_value).max()))
        tokens = np.argmax(keras_logits, axis=-1).astype(np.int32)
    return worst


@pytest.mark.parametrize("options", [{}, {"norm_first": True}, {"activation": "gelu"},
                                     {"tie_output_embedding": False}],
                         ids=["post-norm", "pre-norm", "gelu", "untied-output"])
def test_fused_step_equals_the_keras_step(options):
    model, config = _random_model(**options)
    assert _max_step_difference(model, config) < ATOL


@pytest.mark.parametrize("options", [{}, {"norm_first": True}], ids=["post-norm", "pre-norm"])
def test_padding_plain_cross_attention_equals_the_keras_step(options):
    model, config = _random_model(**options)
    assert _max_step_difference(model, config, plain_cross_attention=True) < ATOL


def test_fused_graph_launches_far_fewer_kernels_than_tf2onnx():
    """What the fused graph is for: per decoder layer a handful of kernels, not dozens."""
    from keras_transformer.export.fused_graphs import convert_fused_decoder_step

    model, config = _random_model()
    nodes = convert_fused_decoder_step(model).graph.node  # tf2onnx's count: bench/RESULTS-decoder-graph.md
    ops = [node.op_type for node in nodes]
    assert ops.count("MultiHeadAttention") == 2 * config.decoder_layers
    assert ops.count("LayerNormalization") == 3 * config.decoder_layers  # Add & Norm: Add, Add, LayerNormalization
    assert "SkipLayerNormalization" not in ops  # slower on onnxruntime's CPU from 32 rows up
    assert len(nodes) <= 21 * config.decoder_layers + 8


def test_export_writes_the_fused_decoder_unless_standard_ops_is_asked(tiny_run, tmp_path):
    import onnx

    from keras_transformer.export.exporter import export_bundle

    def domains(bundle):
        graph = onnx.load(str(bundle / "decoder.onnx")).graph
        return {node.domain or "ai.onnx" for node in graph.node}

    export_bundle(tiny_run, tmp_path / "fused", log=lambda *a: None)
    export_bundle(tiny_run, tmp_path / "standard", standard_ops=True, log=lambda *a: None)
    assert "com.microsoft" in domains(tmp_path / "fused")
    assert domains(tmp_path / "standard") == {"ai.onnx"}
    for name in ("fused", "standard"):
        config = json.loads((tmp_path / name / "config.json").read_text())
        assert config["parity"]["greedy_identical"] == config["parity"]["greedy_sentences"]
        assert ("fused" in config["graphs"]["decoder"]["built_by"]) == (name == "fused")


def test_cross_attention_scores_give_the_keras_attention_weights():
    """The browser's attention view reads each layer's cross-attention scores from the fused graph and
    applies the softmax (web/src/onnx_graph.js): that must be the Keras decoder's cross-attention."""
    import onnx
    import onnxruntime as ort

    from keras_transformer.export.fused_graphs import convert_fused_decoder_step, cross_scores_name
    from keras_transformer.model import decoder_of, encoder_of
    from keras_transformer.serve import bundle_format as fmt

    model, config = _random_model()
    proto = convert_fused_decoder_step(model)
    scores = [cross_scores_name(i) for i in range(config.decoder_layers)]
    proto.graph.output.extend(onnx.helper.make_empty_tensor_value_info(name) for name in scores)
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    sources = np.array([[5, 6, 7, 8, 2, 0, 0], [9, 10, 2, 0, 0, 0, 0]], np.int32)
    targets = np.array([[fmt.BOS_ID, 7, 9, 11], [fmt.BOS_ID, 8, 3, 4]], np.int32)
    encoder_output = encoder_of(model)(sources)
    decoder = decoder_of(model)
    _, _, expected = decoder(targets, encoder_output, sources, return_attention_weights=True)  # per layer (B, H, T, S)
    cross = decoder.cross_key_values(encoder_output)
    head_shape = (2, config.num_heads, 0, config.hidden_dim // config.num_heads)
    past = [(np.zeros(head_shape, np.float32),) * 2 for _ in range(config.decoder_layers)]
    for position in range(targets.shape[1]):
        feeds = {fmt.TOKEN_IDS: targets[:, position:position + 1], fmt.POSITION: np.array(position, np.int32),
                 fmt.SOURCE_MASK: sources != fmt.PAD_ID}
        for i in range(config.decoder_layers):
            feeds[fmt.cross_key_name(i)], feeds[fmt.cross_value_name(i)] = (np.asarray(t) for t in cross[i])
            feeds[fmt.past_key_name(i)], feeds[fmt.past_value_name(i)] = past[i]
        outputs = session.run(None, feeds)
        present = outputs[1:1 + 2 * config.decoder_layers]
        past = [(present[2 * i], present[2 * i + 1]) for i in range(config.decoder_layers)]
        for layer, layer_scores in enumerate(outputs[1 + 2 * config.decoder_layers:]):  # (B, H, 1, S)
            weights = np.exp(layer_scores - layer_scores.max(axis=-1, keepdims=True))
            weights /= weights.sum(axis=-1, keepdims=True)
            np.testing.assert_allclose(weights[:, :, 0], np.asarray(expected[layer])[:, :, position], atol=1e-5)
