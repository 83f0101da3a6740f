"""`--int8`'s row-int8 matmul (export/quantize.py) against a float32 MatMul, each the quantized graph
of one Dense layer (MatMul + bias), at the weight shapes of the demo and Multi30k-size models:

- row int8: each activation row scaled to uint8 by its own max |a|, then MatMulIntegerToFloat
  (uint8 x int8 GEMM, 7-bit weights, `Int8Plan.weight_levels` 63) and the bias Add; eight nodes;
- row int8, uint8 weights: the same with 8-bit uint8 weights (uint8 x uint8 GEMM, `weight_levels` 127).

    python -m experiments.int8_matmul [--out FILE]

M = 1, 4, 32 and 128 rows of input (a greedy step at batch 1, a 4-beam step, a batch-32 greedy
step, a batch-32 4-beam step). µs per `session.run`, best of 3 interleaved rounds of up to 2000 runs,
1 thread; each includes the same Python call overhead of a small session, so compare within a row.
Ratios are fp32 time ÷ int8 time (> 1: the int8 form is faster): where they stay below 1 the weight
should stay float32 (`Int8Plan.min_weight_elements`). bench/RESULTS-int8-matmul.md holds a run that
also timed the MatMulNBits form, since dropped.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from bench.common import cpu_model, markdown_table
from experiments.common import best_microseconds, print_and_save

SHAPES = [(128, 384), (128, 128), (128, 256), (256, 128), (128, 406),  # demo: QKV, out/cross, FFN, output
          (256, 768), (256, 256), (256, 1024), (1024, 256), (256, 8000)]  # Multi30k-size
ROWS = (1, 4, 32, 128)
FORMS = ("fp32", "row int8", "row int8 u8")


def _dense_model(weight: np.ndarray, bias: np.ndarray):
    from onnx import TensorProto, helper, numpy_helper

    k, n = weight.shape
    nodes = [helper.make_node("MatMul", ["x", "w"], ["product"]), helper.make_node("Add", ["product", "b"], ["y"])]
    graph = helper.make_graph(nodes, "dense", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["M", k])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["M", n])],
                              [numpy_helper.from_array(weight, "w"), numpy_helper.from_array(bias, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    return model


def _quantized(weight: np.ndarray, bias: np.ndarray, levels: int):
    """The Dense model with its weight int8 whatever its size, in -levels..levels."""
    from keras_transformer.export.quantize import Int8Plan, quantize_model

    return quantize_model(_dense_model(weight, bias), Int8Plan(min_weight_elements=0, weight_levels=levels))[0]


def _sessions(weight: np.ndarray, bias: np.ndarray) -> dict:
    import onnxruntime as ort

    from keras_transformer.serve.sessions import session_options

    models = {"fp32": _dense_model(weight, bias), "row int8": _quantized(weight, bias, 63),
              "row int8 u8": _quantized(weight, bias, 127)}
    return {form: ort.InferenceSession(model.SerializeToString(), session_options(1),
                                       providers=["CPUExecutionProvider"]) for form, model in models.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.int8_matmul", description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="also write the table to this file")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    rows = []
    for k, n in SHAPES:
        weight = (rng.standard_normal((k, n)) * 0.05).astype(np.float32)
        sessions = _sessions(weight, rng.standard_normal(n).astype(np.float32))
        cells = []
        for m in ROWS:
            x = rng.standard_normal((m, k)).astype(np.float32)
            times = best_microseconds(sessions, {"x": x}, max(50, 2000 // m), rounds=3)
            fp32 = times["fp32"]
            cells.append(" / ".join(f"{times[form]:.0f}" for form in FORMS))
            cells.append(" / ".join(f"{fp32 / times[form]:.2f}×" for form in FORMS[1:]))
        rows.append([f"{k}×{n}", *cells])
    header = ["W (K×N)"] + [h for m in ROWS
                            for h in (f"M = {m}: µs fp32 / row / row u8", f"M = {m}: row / row u8 vs fp32")]
    text = "\n".join(["## int8 matmul forms against MatMul (fp32), one Dense layer each", "",
                      f"`python -m experiments.int8_matmul`, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
                      f"CPU: {cpu_model()}, 1 thread. µs per run: fp32 / row int8 (7-bit int8 weights) / row int8 "
                      "with uint8 weights; then each int8 form's speed-up over fp32.", "",
                      markdown_table(header, rows)])
    print_and_save(text, args.out, append=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
