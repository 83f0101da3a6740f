"""The export's parity check: the ONNX graphs must compute what the Keras model computes.

Three levels, each with its figure:
1. encoder outputs and cross-attention keys/values vs Keras (max |diff|, atol 1e-4);
2. step-by-step decoder logits through onnxruntime, feeding the reference target tokens, vs the
   full Keras model's logits at every real target position (max |diff|, atol 1e-4), on a batch
   with padding and source/target lengths that differ;
3. greedy decoding of sample sentences: token-for-token identical between onnxruntime and Keras.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from keras_transformer.serve import bundle_format as fmt
from keras_transformer.serve.errors import KerasTransformerError

ATOL = 1e-4


class ParityError(KerasTransformerError, RuntimeError):
    """The ONNX graphs disagree with the Keras model; the message gives the figures."""


@dataclass
class ParityReport:
    encoder_max_abs_diff: float
    decoder_step_max_abs_diff: float
    greedy_identical: int
    greedy_sentences: int

    @property
    def passed(self) -> bool:
        return (self.encoder_max_abs_diff <= ATOL and self.decoder_step_max_abs_diff <= ATOL
                and self.greedy_identical == self.greedy_sentences)

    def summary(self) -> str:
        return (f"encoder max |diff| {self.encoder_max_abs_diff:.2e}, decoder step logits max |diff| "
                f"{self.decoder_step_max_abs_diff:.2e} (tolerance {ATOL:.0e}); greedy outputs identical for "
                f"{self.greedy_identical}/{self.greedy_sentences} sentences")

    def to_dict(self) -> dict:
        return {**asdict(self), "atol": ATOL}


def _max_abs_diff(got, expected, rows=None) -> float:
    """max |got - expected| (over `rows` of the leading axes when given); inf when shapes differ."""
    got, expected = np.asarray(got), np.asarray(expected)
    if got.shape != expected.shape:
        return float("inf")
    diff = np.abs(got - expected)
    return float((diff if rows is None else diff[rows]).max(initial=0.0))


def _encoder_diff(model, onnx_model, source_ids) -> float:
    from keras_transformer.model import decoder_of, encoder_of

    encoder_output = encoder_of(model)(source_ids, training=False)
    expected = [np.asarray(encoder_output)]
    for key, value in decoder_of(model).cross_key_values(encoder_output):
        expected += [np.asarray(key), np.asarray(value)]
    got = onnx_model.encode(source_ids)
    names = [fmt.ENCODER_OUTPUT, *onnx_model.cross_names]
    mask = (source_ids != fmt.PAD_ID)
    diffs = [_max_abs_diff(got[fmt.ENCODER_OUTPUT], expected[0], mask)]
    for name, want in zip(names[1:], expected[1:]):  # (B, H, S, Dh): compare real source positions
        diffs.append(_max_abs_diff(got[name].transpose(0, 2, 1, 3), np.asarray(want).transpose(0, 2, 1, 3), mask))
    return max(diffs)


def _decoder_step_diff(model, onnx_model, source_ids, target_ids) -> float:
    full = np.asarray(model({"source_ids": source_ids, "target_ids": target_ids}, training=False))  # (B, T, V)
    state = onnx_model.start(source_ids)
    worst = 0.0
    for position in range(target_ids.shape[1]):
        logits, state = onnx_model.step(target_ids[:, position], position, state)
        real = target_ids[:, position] != fmt.PAD_ID
        worst = max(worst, _max_abs_diff(logits, full[:, position], real))
    return worst


def check_parity(model, onnx_model, source_ids: np.ndarray, target_ids: np.ndarray,
                 greedy_sources: list[list[int]], max_length: int) -> tuple[ParityReport, list[list[int]]]:
    """Compares `onnx_model` (a serve.onnx_model.OnnxStepModel) with the Keras `model`.

    source_ids int32 (B, S) and target_ids int32 (B, T) (decoder inputs, BOS first) are padded
    batches for levels 1 and 2; greedy_sources are token id lists (EOS included) for level 3.
    Returns the report and onnxruntime's greedy outputs (reused by the int8 comparison).
    """
    from keras_transformer.keras_step_model import KerasStepModel
    from keras_transformer.serve.decoding_options import DecodingOptions
    from keras_transformer.serve.batching import decode_sources

    ours = decode_sources(onnx_model, greedy_sources, DecodingOptions(), max_length)
    theirs = decode_sources(KerasStepModel(model), greedy_sources, DecodingOptions(), max_length)
    report = ParityReport(
        encoder_max_abs_diff=_encoder_diff(model, onnx_model, source_ids),
        decoder_step_max_abs_diff=_decoder_step_diff(model, onnx_model, source_ids, target_ids),
        greedy_identical=sum(a == b for a, b in zip(ours, theirs)),
        greedy_sentences=len(greedy_sources),
    )
    return report, ours
