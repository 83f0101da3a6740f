"""Dynamic int8 quantization of the graphs' MatMul/Gemm weights with onnxruntime's quantizer.

Weights are stored as int8 with a per-tensor scale; activations are quantized on the fly at each
step. Accuracy is not guaranteed token for token, so the export measures and records agreement.
"""

from pathlib import Path


def quantize_int8(fp32_path, int8_path):
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(model_input=Path(fp32_path), model_output=Path(int8_path), weight_type=QuantType.QInt8,
                     op_types_to_quantize=["MatMul", "Gemm"])
