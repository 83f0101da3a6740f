"""A/B of decoder.onnx: tf2onnx's standard-operator graph against the fused one, on the same run.

    python -m bench.decoder_graph_ab --run RUN [--sentences SPEC] [--max-pairs 100] [--passes 5] [--out FILE]

(`--out` appends the table to FILE: bench/RESULTS-decoder-graph.md collects the demo and Multi30k-size runs.)

Exports RUN twice, `export --standard-ops` and the default (export/fused_decoder.py), in fp32 and
int8, and translates the same sentences with each bundle through `Translator` (text in, text out),
1 thread, greedy and beam 4, one call per sentence (batch 1) and one call for all (batch 32),
every configuration of both graphs interleaved in each pass; the best pass counts. Both decode
through the numpy loop (`graph_search=False`): this compares the step graphs alone. Prints a
markdown table of sentences/s, the speed-up and how many outputs are identical (fp32 outputs must
all be: the fused graph is a faster form of the same function, checked against Keras by the export).
Kernels per step: nodes of each decoder graph after onnxruntime's optimizations.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from bench.common import cpu_model, interleaved_ab, markdown_table


def _kernels(decoder_path: Path) -> int:
    """Nodes in the decoder graph after onnxruntime's graph optimizations (what a step launches)."""
    import onnx
    import onnxruntime as ort

    from keras_transformer.serve.onnx_model import session_options

    options = session_options(1)
    with tempfile.TemporaryDirectory() as tmp:
        options.optimized_model_filepath = str(Path(tmp) / "optimized.onnx")
        ort.InferenceSession(str(decoder_path), options, providers=["CPUExecutionProvider"])
        return len(onnx.load(options.optimized_model_filepath).graph.node)


def main(argv=None) -> int:
    from keras_transformer.corpus import read_parallel_corpus
    from keras_transformer.export.exporter import export_bundle
    from keras_transformer.run_dir import RunDir
    from keras_transformer.serve import Translator

    parser = argparse.ArgumentParser(prog="python -m bench.decoder_graph_ab", description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True)
    parser.add_argument("--sentences", help="corpus SPEC whose source side is translated (default: the run's test.tsv)")
    parser.add_argument("--max-pairs", type=int, default=100)
    parser.add_argument("--passes", type=int, default=5)
    parser.add_argument("--work", default=None, help="where the bundles go (default: a temporary directory)")
    parser.add_argument("--out", help="also write the table to this file")
    args = parser.parse_args(argv)

    work = Path(args.work or tempfile.mkdtemp(prefix="decoder-graph-ab-"))
    sentences = args.sentences or str(RunDir(args.run).test_path)
    texts = [source for source, _ in read_parallel_corpus(sentences, max_pairs=args.max_pairs)[0]]
    bundles = {}
    for graph, standard in (("standard", True), ("fused", False)):
        for precision, int8 in (("fp32", False), ("int8", True)):
            out = work / f"{graph}-{precision}"
            export_bundle(args.run, out, int8=int8, force=True, standard_ops=standard, log=lambda *a, **k: None)
            bundles[graph, precision] = out
    translators = {key: Translator(path, threads=1, graph_search=False) for key, path in bundles.items()}
    for translator in translators.values():  # warm-up: first runs allocate
        translator.translate(texts[:3], beam_size=4)

    configs = [(precision, beam, batch) for precision in ("fp32", "int8") for beam in (1, 4) for batch in (1, 32)]
    best, outputs = interleaved_ab(translators, ("standard", "fused"), configs, texts, args.passes)

    rows = []
    for precision, beam, batch in configs:
        standard, fused = (best[g, precision, beam, batch] for g in ("standard", "fused"))
        same = sum(a == b for a, b in zip(outputs["standard", precision, beam, batch],
                                          outputs["fused", precision, beam, batch]))
        rows.append([precision, "greedy" if beam == 1 else f"beam {beam}", batch, f"{len(texts) / standard:,.0f}",
                     f"{len(texts) / fused:,.0f}", f"{standard / fused:.2f}×", f"{same}/{len(texts)}"])
    kernels = {graph: _kernels(bundles[graph, "fp32"] / "decoder.onnx") for graph in ("standard", "fused")}
    command = "python -m bench.decoder_graph_ab " + " ".join(argv if argv is not None else sys.argv[1:])
    lines = [f"## decoder.onnx: tf2onnx's standard operators against the fused graph ({Path(args.run).name})", "",
             f"`{command}`, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, CPU: {cpu_model()}.", "",
             f"Run {args.run}, {len(texts)} sentences of {sentences}, 1 thread, best of {args.passes} interleaved "
             f"passes. Decoder kernels per step (fp32, after onnxruntime's optimizations): standard "
             f"{kernels['standard']}, fused {kernels['fused']}.", "",
             markdown_table(["precision", "decoding", "batch", "standard sent/s", "fused sent/s", "speed-up",
                             "identical outputs"], rows)]
    text = "\n".join(lines)
    print(text)
    if args.out:  # appended: one file collects the runs of several models
        with open(args.out, "a", encoding="utf-8") as out:
            out.write(text + "\n\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
