"""The shortlist's speed against the same model without one, on each decoding path, in one run.

    python -m experiments.shortlist_speed --plain B --shortlist B2 [--sentences SPEC] [--single 100]
                                          [--passes 3] [--out FILE]

B and B2 are one run exported without and with `--shortlist` (same precision). Greedy, 1 thread, text in
and text out (`Translator.translate_batch`): batch 1 (one call per sentence, the first `--single`
sentences) and batch 32 (all the sentences in one call), for the plain bundle and the shortlist bundle
through onnxruntime's search (generate.onnx, what batch 1 uses) and the numpy loop, and the shortlist
bundle turned off (`use_shortlist=False`). Configurations are interleaved pass by pass; the best pass
counts. Tokens/s counts each configuration's own output tokens (the shortlist may change outputs).
Results: bench/RESULTS-edge.md.
"""

from __future__ import annotations

import argparse
import sys
import time

from bench.common import markdown_table


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--plain", required=True, help="the bundle exported without --shortlist")
    parser.add_argument("--shortlist", required=True, help="the same run exported with --shortlist")
    parser.add_argument("--sentences", default="../shared/data/en-de-multi30k/test2016.tsv")
    parser.add_argument("--single", type=int, default=100, help="sentences timed one per call (batch 1)")
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--out")
    args = parser.parse_args(argv)

    from experiments.common import print_and_save
    from keras_transformer.corpus import read_parallel_corpus
    from keras_transformer.serve import Translator

    texts = [source for source, _ in read_parallel_corpus(args.sentences)[0]]
    variants = {
        "plain, generate.onnx": (Translator(args.plain, threads=1), {}),
        "plain, numpy loop": (Translator(args.plain, threads=1, graph_search=False), {}),
        "shortlist, generate.onnx": (Translator(args.shortlist, threads=1), {}),
        "shortlist, numpy loop": (Translator(args.shortlist, threads=1, graph_search=False), {}),
        "shortlist bundle, turned off": (Translator(args.shortlist, threads=1), {"use_shortlist": False}),
    }
    best = {}
    for number in range(args.passes):
        names = list(variants) if number % 2 == 0 else list(variants)[::-1]
        for name in names:
            translator, options = variants[name]
            for batch in (1, 32):
                if batch == 32 and name.endswith("generate.onnx"):
                    continue  # a batch of 32 always goes through the numpy loop
                started = time.perf_counter()
                if batch == 1:
                    results = [translator.translate_batch([text], **options)[0] for text in texts[:args.single]]
                else:
                    results = translator.translate_batch(texts, batch_size=32, **options)
                seconds = time.perf_counter() - started
                tokens = sum(len(result.target_ids) for result in results)
                if (name, batch) not in best or seconds < best[name, batch][0]:
                    best[name, batch] = (seconds, len(results), tokens)
        print(f"pass {number + 1}/{args.passes}", file=sys.stderr, flush=True)
    rows = []
    for batch in (1, 32):
        base = best["plain, generate.onnx" if batch == 1 else "plain, numpy loop", batch]
        for name in variants:
            if (name, batch) not in best:
                continue
            seconds, sentences, tokens = best[name, batch]
            rows.append([batch, name, f"{sentences / seconds:,.1f}", f"{tokens / seconds:,.0f}",
                         f"{(tokens / seconds) / (base[2] / base[0]):.2f}"])
    print_and_save("\n".join([
        f"### Shortlist speed: {args.plain} against {args.shortlist}", "",
        f"{len(texts)} sentences of {args.sentences}; greedy, 1 thread; batch 1 over the first {args.single}; "
        f"best of {args.passes} interleaved passes.", "",
        markdown_table(["batch", "bundle, path", "sentences/s", "tokens/s", "tokens/s × plain"], rows)]), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
