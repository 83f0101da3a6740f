"""`--int8`: quantize both graphs (int8 weights, per-row activations: `export/quantize.py`), then
measure what it costs on the sample sentences.

Token identity with fp32 is not required; the share of identical greedy outputs and the chrF++ of
fp32 and int8 outputs (against the sample references) are printed and kept in config.json, with
the method. Batch invariance is measured too: the sample sentences decoded one by one must give the
token ids they get in batches (the method quantizes no activation with a statistic of the batch).
"""

from __future__ import annotations

import os

from .quantize import Int8Plan, quantize_int8
from keras_transformer.serve import bundle_format as fmt
from keras_transformer.serve.bundle import BundleConfig


def quantize_and_compare(directory, fp32_out, sources, pairs, target_tokenizer, model_config, log,
                         plan: Int8Plan = Int8Plan()) -> dict:
    """Replaces directory's encoder.onnx/decoder.onnx by their int8 versions under `plan`; returns the
    figures. fp32_out: the fp32 graphs' greedy outputs for `sources` (from the parity check)."""
    from keras_transformer.serve.decoding_options import DecodingOptions
    from keras_transformer.serve.onnx_model import OnnxStepModel
    from keras_transformer.serve.batching import decode_sources

    quantized = {}
    for name in (fmt.ENCODER_FILE, fmt.DECODER_FILE):
        fp32_path = directory / name
        int8_path = directory / f"int8.{name}"
        quantized[name] = quantize_int8(fp32_path, int8_path, plan)
        os.replace(int8_path, fp32_path)
    if not any(quantized.values()):
        log(f"int8: no weight has {plan.min_weight_elements} elements or more, the size from which int8 is faster "
            "than float32 (bench/RESULTS-int8-matmul.md); this bundle computes in float32")
    int8_model = OnnxStepModel(BundleConfig(directory, {"model": model_config.to_dict()}))
    max_length = model_config.max_target_length
    int8_out = decode_sources(int8_model, sources, DecodingOptions(), max_length)
    alone = [decode_sources(int8_model, [source], DecodingOptions(batch_size=1), max_length)[0] for source in sources]
    identical = sum(a == b for a, b in zip(fp32_out, int8_out)) / max(len(sources), 1)
    invariant = sum(a == b for a, b in zip(alone, int8_out)) / max(len(sources), 1)
    figures = {**plan.describe(), "matmuls_quantized": quantized, "greedy_identical_to_fp32": identical,
               "greedy_identical_alone_and_batched": invariant, "sentences": len(sources)}
    if pairs and len(pairs) == len(sources):
        from keras_transformer.evaluation import score_translations

        references = [t for _, t in pairs]
        figures["chrf_fp32"] = score_translations(target_tokenizer.decode_batch(fp32_out), references).chrf
        figures["chrf_int8"] = score_translations(target_tokenizer.decode_batch(int8_out), references).chrf
    log("int8 ({}): greedy outputs identical to fp32 for {:.1%} of {} sentences{}; alone = batched for {:.1%}".format(
        figures["method"], identical, len(sources),
        f"; chrF++ fp32 {figures['chrf_fp32']:.1f}, int8 {figures['chrf_int8']:.1f}" if "chrf_fp32" in figures else "",
        invariant))
    return figures
