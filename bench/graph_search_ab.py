"""A/B of the search: the numpy decoding loop against generate.onnx (onnxruntime's BeamSearch operator).

    python -m bench.graph_search_ab --run RUN [--sentences SPEC] [--max-pairs 100] [--passes 5] [--out FILE]

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

import argparse
import sys
import tempfile
import time
from pathlib import Path

from bench.common import cpu_model, interleaved_ab, markdown_table


def main(argv=None) -> int:
    from keras_transformer.corpus import read_parallel_corpus
    from keras_transformer.export.exporter import export_bundle
    from keras_transformer.run_dir import RunDir
    from keras_transformer.serve import Translator

    parser = argparse.ArgumentParser(prog="python -m bench.graph_search_ab", description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True)
    parser.add_argument("--sentences", help="corpus SPEC whose source side is translated (default: the run's test.tsv)")
    parser.add_argument("--max-pairs", type=int, default=100)
    parser.add_argument("--passes", type=int, default=5)
    parser.add_argument("--work", default=None, help="where the bundles go (default: a temporary directory)")
    parser.add_argument("--out", help="also append the table to this file")
    args = parser.parse_args(argv)

    work = Path(args.work or tempfile.mkdtemp(prefix="graph-search-ab-"))
    sentences = args.sentences or str(RunDir(args.run).test_path)
    texts = [source for source, _ in read_parallel_corpus(sentences, max_pairs=args.max_pairs)[0]]
    translators = {}
    for precision, int8 in (("fp32", False), ("int8", True)):
        out = work / precision
        export_bundle(args.run, out, int8=int8, force=True, log=lambda *a, **k: None)
        translators["graph", precision] = Translator(out, threads=1)
        translators["graph", precision].model.graph_search.max_batch = 1 << 20  # the operator at every batch size
        translators["numpy loop", precision] = Translator(out, threads=1, graph_search=False)
    for translator in translators.values():  # warm-up: first runs allocate
        translator.translate(texts[:3], beam_size=4)

    configs = [(precision, beam, batch) for precision in ("fp32", "int8") for beam in (1, 4) for batch in (1, 32)]
    variants = ("numpy loop", "graph")
    best, outputs = interleaved_ab(translators, variants, configs, texts, args.passes)
    rows = []
    for precision, beam, batch in configs:
        loop, graph = (best[v, precision, beam, batch] for v in variants)
        same = sum(a == b for a, b in zip(*(outputs[v, precision, beam, batch] for v in variants)))
        rows.append([precision, "greedy" if beam == 1 else f"beam {beam}", batch, f"{len(texts) / loop:,.0f}",
                     f"{len(texts) / graph:,.0f}", f"{loop / graph:.2f}×", f"{same}/{len(texts)}"])
    command = "python -m bench.graph_search_ab " + " ".join(argv if argv is not None else sys.argv[1:])
    lines = [f"## The search in numpy against generate.onnx ({Path(args.run).name})", "",
             f"`{command}`, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, CPU: {cpu_model()}.", "",
             f"Run {args.run}, {len(texts)} sentences of {sentences}, 1 thread, best of {args.passes} interleaved "
             f"passes, text in and text out (`Translator`, graph_search False / True).", "",
             markdown_table(["precision", "decoding", "batch", "numpy loop sent/s", "generate.onnx sent/s", "speed-up",
                             "identical outputs"], rows)]
    text = "\n".join(lines)
    print(text)
    if args.out:  # appended: one file collects the runs of several models
        with open(args.out, "a", encoding="utf-8") as out:
            out.write(text + "\n\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
