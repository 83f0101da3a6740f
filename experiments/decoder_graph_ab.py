"""A/B of decoder.onnx: tf2onnx's standard-operator graph against the fused one, on the same run.

    python -m experiments.decoder_graph_ab --run RUN [--sentences SPEC] [--max-pairs 100] [--passes 5] [--out FILE]

(`--out` appends the table to FILE: bench/RESULTS-decoder-graph.md collects the demo and Multi30k-size runs.)

Exports RUN twice, `export --standard-ops` and the default (export/fused_graphs.py), in fp32 and
int8, and translates the same sentences with each bundle through `Translator` (text in, text out),
1 thread, greedy and beam 4, one call per sentence (batch 1) and one call for all (batch 32),
every configuration of both graphs interleaved in each pass; the best pass counts. Both decode
through the numpy loop (`graph_search=False`): this compares the step graphs alone. Prints a
markdown table of sentences/s, the speed-up and how many outputs are identical (fp32 outputs must
all be: the fused graph is a faster form of the same function, checked against Keras by the export).
Kernels per step: nodes of each decoder graph after onnxruntime's optimizations.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from experiments.common import ab_report, ab_setup, interleaved_ab


def _kernels(decoder_path: Path) -> int:
    """Nodes in the decoder graph after onnxruntime's graph optimizations (what a step launches)."""
    import onnx
    import onnxruntime as ort

    from keras_transformer.serve.sessions import session_options

    options = session_options(1)
    with tempfile.TemporaryDirectory() as tmp:
        options.optimized_model_filepath = str(Path(tmp) / "optimized.onnx")
        ort.InferenceSession(str(decoder_path), options, providers=["CPUExecutionProvider"])
        return len(onnx.load(options.optimized_model_filepath).graph.node)


def main(argv=None) -> int:
    from keras_transformer.export.exporter import export_bundle
    from keras_transformer.serve import Translator

    args, work, sentences, texts = ab_setup("decoder_graph_ab", __doc__.splitlines()[0], argv)
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

    kernels = {graph: _kernels(bundles[graph, "fp32"] / "decoder.onnx") for graph in ("standard", "fused")}
    ab_report("decoder_graph_ab", argv, args, "decoder.onnx: tf2onnx's standard operators against the fused graph",
              f"Run {args.run}, {len(texts)} sentences of {sentences}, 1 thread, best of {args.passes} interleaved "
              f"passes. Decoder kernels per step (fp32, after onnxruntime's optimizations): standard "
              f"{kernels['standard']}, fused {kernels['fused']}.",
              ("standard", "fused"), ("standard", "fused"), configs, best, outputs, texts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
