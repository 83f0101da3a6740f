"""Why Add & Norm stays unfused: onnxruntime's SkipLayerNormalization against Add, Add,
LayerNormalization on CPU, one node and a whole decoder step.

    python -m experiments.layer_norm_fusion [--bundle BUNDLE ...] [--out FILE]

Part 1, one Add & Norm, LN(x + b + skip) over rows x D: the fused contrib operator against the three
standard ones with onnxruntime's `SkipLayerNormFusion` turned off (with it on, onnxruntime fuses the
three into the first). Part 2, each BUNDLE's decoder.onnx (one cached step, random inputs, past 5
or 15 positions, source 10) in a session with the fusion on and one with it off, as
`serve/sessions.py` loads it. µs per `session.run`, 1 thread, best of 5 interleaved rounds;
outputs are compared (the fused kernel sums in another order: last-bit differences).
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from bench.common import cpu_model, markdown_table
from experiments.common import best_microseconds, bundle_label, decoder_step_feeds, print_and_save

ROWS = (1, 4, 32, 128)


def _session(model_bytes, fused: bool):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    return ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"],
                                disabled_optimizers=[] if fused else ["SkipLayerNormFusion"])


def add_and_norm_rows(hidden_dims=(128, 256)) -> list[list]:
    from onnx import TensorProto, helper, numpy_helper

    rng, rows_out = np.random.default_rng(0), []
    for hidden in hidden_dims:
        constants = [numpy_helper.from_array(rng.standard_normal(hidden).astype(np.float32), name)
                     for name in ("gamma", "beta", "bias")]
        value = lambda name: helper.make_tensor_value_info(name, TensorProto.FLOAT, ["rows", 1, hidden])  # noqa: E731
        graph = helper.make_graph([helper.make_node("Add", ["x", "bias"], ["biased"]),
                                   helper.make_node("Add", ["biased", "skip"], ["summed"]),
                                   helper.make_node("LayerNormalization", ["summed", "gamma", "beta"], ["y"], axis=-1,
                                                    epsilon=1e-6)],
                                  "add_and_norm", [value("x"), value("skip")], [value("y")], constants)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = min(model.ir_version, 10)
        sessions = {"fused": _session(model.SerializeToString(), True),
                    "three": _session(model.SerializeToString(), False)}
        for rows in ROWS:
            feeds = {name: rng.standard_normal((rows, 1, hidden)).astype(np.float32) for name in ("x", "skip")}
            best = best_microseconds(sessions, feeds, 300)
            rows_out.append([hidden, rows, f"{best['fused']:.1f}", f"{best['three']:.1f}",
                             f"{best['fused'] / best['three']:.2f}×"])
    return rows_out


def decoder_rows(bundle) -> list[list]:
    from pathlib import Path

    path = Path(bundle) / "decoder.onnx"
    data = path.read_bytes()
    sessions = {"fused": _session(data, True), "three": _session(data, False)}
    rows_out = []
    for rows, past in [(r, 5) for r in ROWS] + [(128, 15)]:
        feeds = decoder_step_feeds(sessions["fused"], rows, past, source_length=10)
        best = best_microseconds(sessions, feeds, max(20, 2000 // rows))
        fused, three = (sessions[name].run(None, feeds)[0] for name in ("fused", "three"))
        rows_out.append([bundle_label(bundle), rows, past, f"{best['fused']:.0f}", f"{best['three']:.0f}",
                         f"{best['fused'] / best['three']:.2f}×", f"{np.abs(fused - three).max():.1e}"])
    return rows_out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.layer_norm_fusion",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", action="append", default=[], help="a bundle whose decoder.onnx is timed too")
    parser.add_argument("--out", help="also append the tables to this file")
    args = parser.parse_args(argv)
    command = "python -m experiments.layer_norm_fusion " + " ".join(argv if argv is not None else sys.argv[1:])
    parts = ["## SkipLayerNormalization against Add, Add, LayerNormalization", "",
             f"`{command}`, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, CPU: {cpu_model()}, 1 thread.", "",
             markdown_table(["D", "rows", "SkipLayerNormalization µs", "Add, Add, LayerNormalization µs",
                             "three ops ÷ fused, speed"], add_and_norm_rows())]
    if args.bundle:
        rows = [row for bundle in args.bundle for row in decoder_rows(bundle)]
        parts += ["", markdown_table(["bundle", "rows", "past", "fusion on µs", "fusion off µs", "speed-up off",
                                      "max |Δ logits|"], rows)]
    text = "\n".join(parts)
    print_and_save(text, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
