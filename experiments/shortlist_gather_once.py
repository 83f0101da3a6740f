"""The shortlist decoder step with its candidates' rows gathered inside the step (every token) against
gathered once per batch (candidates.onnx, export/hoisting.py), float32 and int8, in one run.

    python -m experiments.shortlist_gather_once --run RUN [--sizes 1:323 32:2300 1:0] [--repeats 200]
                                                [--rounds 7] [--out FILE]

RUN's model (trained weights; the step's cost does not depend on them) as the shortlist decoder step
(`convert_fused_decoder_step(shortlist=True)`, and int8-quantized as the export does), then split by
`split_per_batch`. For each B:C (batch rows, candidates; C 0 = the shortlist off) the same random ids,
cache (10 past tokens) and source (14 tokens) go to both forms, which must give the same logits to the
bit; each round times `--repeats` steps of each form in turn, 1 thread, and the best round counts. The
per-batch graph (candidates.onnx) is timed too: it runs once per batch, the step once per token.
Results: bench/RESULTS-edge.md.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np


def _feeds(bundle_shape, batch, rng, source_length=14, past=10):
    heads, head_dim, layers = bundle_shape
    feeds = {"token_ids": np.full((batch, 1), 5, np.int32), "position": np.array(past, np.int32),
             "source_mask": np.ones((batch, source_length), bool)}
    for i in range(layers):
        for name, length in ((f"cross_key_{i}", source_length), (f"cross_value_{i}", source_length),
                             (f"past_key_{i}", past), (f"past_value_{i}", past)):
            feeds[name] = rng.standard_normal((batch, heads, length, head_dim)).astype(np.float32)
    return feeds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", required=True)
    parser.add_argument("--sizes", nargs="+", default=["1:323", "32:2300", "1:0"], metavar="B:C")
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    import onnx

    from bench.common import machine_description, markdown_table
    from experiments.common import print_and_save
    from keras_transformer.export.fused_graphs import convert_fused_decoder_step
    from keras_transformer.export.hoisting import split_per_batch
    from keras_transformer.export.quantize import quantize_int8
    from keras_transformer.run_dir import RunDir
    from keras_transformer.serve import bundle_format as fmt
    from keras_transformer.serve.sessions import inference_session, session_options

    run = RunDir(args.run)
    config = run.transformer_config()
    model = run.load_model()
    shape = (config.num_heads, config.hidden_dim // config.num_heads, config.decoder_layers)
    rng = np.random.default_rng(0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        fp32, int8 = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        onnx.save(convert_fused_decoder_step(model, plain_cross_attention=True, shortlist=True), fp32)
        quantize_int8(fp32, int8)
        for precision, path in (("fp32", fp32), ("int8", int8)):
            whole = onnx.load(path)
            candidates, step, operands = split_per_batch(whole, [fmt.VOCAB_IDS])
            options = session_options(1)
            files = [Path(tmp) / f"{precision}-{name}.onnx" for name in ("whole", "candidates", "step")]
            for proto, file in zip((whole, candidates, step), files):
                onnx.save(proto, file)
            in_step, prelude, split = (inference_session(file, options) for file in files)
            for size in args.sizes:
                batch, count = map(int, size.split(":"))
                ids = np.sort(rng.choice(config.target_vocab_size, count, replace=False)).astype(np.int32)
                feeds = _feeds(shape, batch, rng)
                given = dict(zip(operands, prelude.run(operands, {fmt.VOCAB_IDS: ids})))
                expected = in_step.run([fmt.LOGITS], {**feeds, fmt.VOCAB_IDS: ids})[0]
                got = split.run([fmt.LOGITS], {**feeds, **given})[0]
                if not np.array_equal(expected, got):
                    raise SystemExit(f"{precision} B={batch} C={count}: the split step's logits differ")
                timed = {"in step": lambda: in_step.run([fmt.LOGITS], {**feeds, fmt.VOCAB_IDS: ids}),
                         "once per batch": lambda: split.run([fmt.LOGITS], {**feeds, **given}),
                         "candidates.onnx": lambda: prelude.run(operands, {fmt.VOCAB_IDS: ids})}
                best = {}
                for _ in range(args.rounds):
                    for name, call in timed.items():
                        started = time.perf_counter()
                        for _ in range(args.repeats):
                            call()
                        took = (time.perf_counter() - started) / args.repeats * 1e6
                        best[name] = min(best.get(name, took), took)
                rows.append([precision, batch, count or "0 (off)", f"{best['in step']:.1f}",
                             f"{best['once per batch']:.1f}", f"{best['in step'] / best['once per batch']:.2f}",
                             f"{best['candidates.onnx']:.1f}"])
    text = "\n".join([
        f"### The shortlist step: rows gathered at every step against once per batch ({args.run})", "",
        *machine_description(), "",
        f"Decoder step of {config.encoder_layers}+{config.decoder_layers} layers, d {config.hidden_dim}, V "
        f"{config.target_vocab_size}; 1 thread; best of {args.rounds} rounds of {args.repeats} steps; "
        "identical logits checked.", "",
        markdown_table(["precision", "batch", "candidates", "µs a step, gathered in the step",
                        "µs a step, gathered once per batch", "step speed-up", "µs candidates.onnx (once a batch)"],
                       rows)])
    print_and_save(text, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
