"""Where a batch-1 translation's time goes, ours against CTranslate2 on the same weights: the time to the
first tokens (the encoder, and the search's setup) and each further output token (a decoder step).

    python -m experiments.first_token_and_per_token --run RUN --fp32 B --int8 B8 --ct2 CT2_DIR [--vmap]
                                                    [--sentences SPEC] [--count 100] [--passes 3] [--out FILE]

B and B8 are RUN's bundles (fp32 and int8; with a shortlist, CTranslate2 gets `--vmap`: its vocabulary map
from the same shortlist, `bench.edge` writes both); CT2_DIR is RUN converted by `bench.ctranslate2_compare`.
`--before-fp32 / --before-int8 BUNDLE`: an earlier export of RUN (before a graph change), timed in the same
passes; its tokens must equal ours.
Each engine translates the first `--count` sentences one call each, greedy, 1 thread, twice: capped at 2
output tokens, and uncapped. Per sentence, the capped time is the encoder and the first steps; per token,
(uncapped - capped) / (the tokens the cap cut). Engines interleaved pass by pass; the best pass counts.
Results: bench/RESULTS-edge.md.
"""

from __future__ import annotations

import argparse
import os
import time


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", required=True)
    parser.add_argument("--fp32", required=True)
    parser.add_argument("--int8", required=True)
    parser.add_argument("--ct2", required=True, help="the run converted for CTranslate2 (bench.ctranslate2_compare)")
    parser.add_argument("--vmap", action="store_true", help="CTranslate2 with its vocabulary map (use_vmap)")
    parser.add_argument("--before-fp32", help="an earlier fp32 export of RUN, timed beside ours")
    parser.add_argument("--before-int8", help="an earlier int8 export of RUN, timed beside ours")
    parser.add_argument("--sentences", default="../shared/data/en-de-multi30k/test2016.tsv")
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    from bench.common import machine_description, markdown_table
    from bench.ctranslate2_compare import Ct2Engine
    from experiments.common import print_and_save
    from keras_transformer.corpus import read_parallel_corpus
    from keras_transformer.run_dir import RunDir
    from keras_transformer.serve import Translator

    run = RunDir(args.run)
    config, (source_tokenizer, target_tokenizer) = run.transformer_config(), run.load_tokenizers()
    texts = [source for source, _ in read_parallel_corpus(args.sentences)[0]][:args.count]
    engines = {}
    for precision, bundle, compute_type in (("fp32", args.fp32, "float32"), ("int8", args.int8, "int8")):
        engines["ours", precision] = Translator(bundle, threads=1)
        if getattr(args, f"before_{precision}"):
            engines["ours before", precision] = Translator(getattr(args, f"before_{precision}"), threads=1)
        engines["CTranslate2", precision] = Ct2Engine(args.ct2, source_tokenizer, target_tokenizer,
                                                      config.max_source_length, config.max_target_length,
                                                      compute_type, 1, args.vmap)

    outputs = {}

    def translate_all(key, cap):  # -> (seconds, output tokens)
        engine, tokens, found = engines[key], 0, []
        started = time.perf_counter()
        for text in texts:
            if key[0].startswith("ours"):
                found.append(engine.translate_batch([text], max_length=cap)[0].target_ids)
                tokens += len(found[-1])
            else:
                engine.max_target_length = cap
                tokens += len(engine.translate_batch([text])[1][0])
        seconds = time.perf_counter() - started
        outputs[key, cap] = found
        return seconds, tokens

    caps = (2, config.max_target_length)
    best = {}
    for number in range(args.passes):
        keys = list(engines) if number % 2 == 0 else list(engines)[::-1]
        for key in keys:
            for cap in caps:
                seconds, tokens = translate_all(key, cap)
                if seconds < best.get((key, cap), (float("inf"), 0))[0]:
                    best[key, cap] = (seconds, tokens)
    for precision in ("fp32", "int8"):
        if ("ours before", precision) in engines and outputs[("ours", precision), caps[1]] != outputs[
                ("ours before", precision), caps[1]]:
            raise SystemExit(f"{precision}: the earlier export's tokens differ from ours")
    rows = []
    for key in engines:
        (capped, capped_tokens), (whole, tokens) = best[key, caps[0]], best[key, caps[1]]
        rows.append([key[0], key[1], f"{capped / len(texts) * 1e3:.2f}", f"{whole / len(texts) * 1e3:.2f}", tokens,
                     f"{(whole - capped) / max(tokens - capped_tokens, 1) * 1e6:.0f}"])
    text = "\n".join([
        f"### Batch 1, where the time goes: ours against CTranslate2 ({args.run}{', use_vmap' if args.vmap else ''})",
        "", *machine_description(), "",
        f"The first {len(texts)} sentences of {args.sentences}, one call each, greedy, 1 thread, text in and text "
        f"out; best of {args.passes} interleaved passes. Ours: {args.fp32}, {args.int8}"
        + "".join(f"; before: {b}" for b in (args.before_fp32, args.before_int8) if b) + ".", "",
        markdown_table(["engine", "precision", "ms a sentence, capped at 2 tokens", "ms a sentence", "output tokens",
                        "µs a further token"], rows)])
    print_and_save(text, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
