"""Why our int8 bundles are not faster: onnxruntime's MatMulNBits (8 bits, our `--int8`) against a
float32 MatMul, one node each, at the shapes of the demo and Multi30k-size models.

    python -m bench.int8_matmul [--out FILE]

Each weight W (K, N) is random, quantized as `export/quantize.py` does (block 64 along K,
accuracy_level 4: activations quantized per row); M = 1, 4 and 32 rows of input (a greedy step at
batch 1, a 4-beam step, a batch-32 step). µs per `session.run`, best of 3 × 2000 runs, 1 thread;
each includes the same Python call overhead of a one-node session, so compare within a row.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from bench.common import cpu_model, markdown_table, print_and_save

SHAPES = [(128, 384), (128, 128), (128, 256), (256, 128), (128, 406),  # demo: QKV, out/cross, FFN, output
          (256, 768), (256, 256), (256, 1024), (1024, 256), (256, 8000)]  # Multi30k-size
ROWS = (1, 4, 32)


def _session(weight: np.ndarray, int8: bool):
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    from keras_transformer.export.quantize import ACCURACY_LEVEL, BITS, BLOCK_SIZE, quantize_weight
    from keras_transformer.serve.onnx_model import session_options

    k, n = weight.shape
    if int8:
        packed, scales = quantize_weight(weight)
        node = helper.make_node("MatMulNBits", ["x", "w", "scales"], ["y"], domain="com.microsoft", K=k, N=n,
                                bits=BITS, block_size=BLOCK_SIZE, accuracy_level=ACCURACY_LEVEL)
        weights = [numpy_helper.from_array(packed, "w"), numpy_helper.from_array(scales.astype(np.float32), "scales")]
    else:
        node = helper.make_node("MatMul", ["x", "w"], ["y"])
        weights = [numpy_helper.from_array(weight, "w")]
    graph = helper.make_graph([node], "matmul", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["M", k])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["M", n])], weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)])
    model.ir_version = 9
    return ort.InferenceSession(model.SerializeToString(), session_options(1), providers=["CPUExecutionProvider"])


def _microseconds(session, x: np.ndarray, runs: int = 2000) -> float:
    for _ in range(50):
        session.run(None, {"x": x})
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for _ in range(runs):
            session.run(None, {"x": x})
        best = min(best, (time.perf_counter() - started) / runs * 1e6)
    return best


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.int8_matmul", description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="also write the table to this file")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    rows = []
    for k, n in SHAPES:
        weight = (rng.standard_normal((k, n)) * 0.05).astype(np.float32)
        fp32, int8 = _session(weight, False), _session(weight, True)
        cells = []
        for m in ROWS:
            x = rng.standard_normal((m, k)).astype(np.float32)
            a, b = _microseconds(fp32, x), _microseconds(int8, x)
            cells += [f"{a:.1f} / {b:.1f}", f"{a / b:.2f}×"]
        rows.append([f"{k}×{n}", *cells])
    header = ["W (K×N)"] + [h for m in ROWS for h in (f"M = {m}: fp32 / int8 µs", f"int8 speed-up, M = {m}")]
    text = "\n".join([f"## MatMulNBits (int8) against MatMul (fp32), one node", "",
                      f"`python -m bench.int8_matmul`, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
                      f"CPU: {cpu_model()}, 1 thread.", "", markdown_table(header, rows)])
    print_and_save(text, args.out, append=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
