"""A/B of the search: the numpy decoding loop against generate.onnx (onnxruntime's BeamSearch operator).

    python -m experiments.graph_search_ab --run RUN [--sentences SPEC] [--max-pairs 100] [--passes 5] [--out FILE]

(`--out` appends the table to FILE: bench/RESULTS-graph-search.md collects the runs.)

Exports RUN once in fp32 and once in int8 (the default export: fused decoder.onnx plus
generate.onnx) and translates the same sentences through `Translator` (text in, text out), 1
thread, with `graph_search=True` (the search inside onnxruntime) and `graph_search=False` (the
numpy loop over decoder.onnx; the operator at every batch size here, while `Translator` sends it
single sentences only, `GraphSearch.max_batch`): greedy and beam 4 (default options: length penalty 1, patience 1),
one call per sentence (batch 1) and one call for all (batch 32), every configuration of both
interleaved in each pass; the best pass counts. Outputs must be identical in every row.
"""

from __future__ import annotations

import sys

from experiments.common import ab_report, ab_setup, interleaved_ab


def main(argv=None) -> int:
    from keras_transformer.export.exporter import export_bundle
    from keras_transformer.serve import Translator

    args, work, sentences, texts = ab_setup("graph_search_ab", __doc__.splitlines()[0], argv)
    translators = {}
    for precision, int8 in (("fp32", False), ("int8", True)):
        out = work / precision
        export_bundle(args.run, out, int8=int8, force=True, log=lambda *a, **k: None)
        translators["graph", precision] = Translator(out, threads=1)
        translators["graph", precision].graph_search.max_batch = 1 << 20  # the operator at every batch size
        translators["numpy loop", precision] = Translator(out, threads=1, graph_search=False)
    for translator in translators.values():  # warm-up: first runs allocate
        translator.translate(texts[:3], beam_size=4)

    configs = [(precision, beam, batch) for precision in ("fp32", "int8") for beam in (1, 4) for batch in (1, 32)]
    variants = ("numpy loop", "graph")
    best, outputs = interleaved_ab(translators, variants, configs, texts, args.passes)
    ab_report("graph_search_ab", argv, args, "The search in numpy against generate.onnx",
              f"Run {args.run}, {len(texts)} sentences of {sentences}, 1 thread, best of {args.passes} interleaved "
              f"passes, text in and text out (`Translator`, graph_search False / True).",
              variants, ("numpy loop", "generate.onnx"), configs, best, outputs, texts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
