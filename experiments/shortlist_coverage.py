"""Which shortlist sizes keep a model's own translations: K per source token and N frequent tokens against
the share of outputs they leave unchanged and the candidates a sentence gets.

    python -m experiments.shortlist_coverage --run RUN --bundle B [--test SPEC] [--k 50 100 200]
                                             [--frequent 50 100 300] [--pairs SPEC] [--out FILE]

A greedy output is unchanged by a shortlist exactly when each of its tokens is one of the sentence's
candidates (at every step the full argmax is then among them), so one greedy decode of the test set
without the shortlist (the bundle `B`, exported from RUN, shortlist off) gives the unchanged share of
every (K, N) at once; the same count on the beam-4 outputs is the share whose best hypothesis stays
reachable (beam search may still pick another). IBM Model 1 is estimated once (export/shortlist.py,
from RUN's training pairs, or with `--pairs` from another corpus, e.g. the model's own translations of
its training sources: `distill`'s output), its top K cut for each K. Results: bench/RESULTS-edge.md.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from bench.common import markdown_table


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", required=True)
    parser.add_argument("--bundle", required=True, help="RUN's bundle; its shortlist, if any, is turned off")
    parser.add_argument("--test", default="../shared/data/en-de-multi30k/test2016.tsv")
    parser.add_argument("--k", type=int, nargs="+", default=[25, 50, 100, 200])
    parser.add_argument("--frequent", type=int, nargs="+", default=[50, 100, 300, 500])
    parser.add_argument("--pairs", help="estimate from this corpus SPEC instead of RUN's training pairs")
    parser.add_argument("--out")
    args = parser.parse_args(argv)

    from experiments.common import print_and_save
    from keras_transformer.corpus import read_parallel_corpus
    from keras_transformer.export.shortlist import estimate, training_pairs
    from keras_transformer.run_dir import RunDir
    from keras_transformer.serve import Translator
    from keras_transformer.serve.shortlist import Shortlist

    run = RunDir(args.run)
    config = run.transformer_config()
    texts = [source for source, _ in read_parallel_corpus(args.test)[0]]
    translator = Translator(args.bundle)
    sources = translator.encode(texts)[0].sources
    outputs = {beam: [r.target_ids for r in translator.translate_batch(texts, beam_size=beam, batch_size=32,
                                                                         use_shortlist=False)] for beam in (1, 4)}
    log = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731
    pairs = training_pairs(run, log) if args.pairs is None else _encoded_pairs(args.pairs, run)
    table = estimate(pairs, config.source_vocab_size, config.target_vocab_size, max(args.k), max(args.frequent))
    rows = []
    for k in args.k:
        for frequent in args.frequent:
            shortlist = Shortlist(table.frequent[:frequent], table.table[:, :k], config.target_vocab_size)
            candidates = [set(shortlist.candidates(source).tolist()) for source in sources]
            kept = {beam: np.mean([set(ids) <= allowed for ids, allowed in zip(outputs[beam], candidates)])
                    for beam in (1, 4)}
            rows.append([k, frequent, f"{np.mean([len(c) for c in candidates]):.0f}",
                         f"{max(len(c) for c in candidates)}", f"{kept[1]:.1%}", f"{kept[4]:.1%}"])
    print_and_save("\n".join([
        f"### Shortlist sizes on {args.run} ({len(texts)} sentences of {args.test}; vocabulary "
        f"{config.target_vocab_size:,}; IBM Model 1 on {args.pairs or 'its training pairs'})", "",
        markdown_table(["K per source token", "N frequent", "candidates a sentence (mean)", "most", "greedy unchanged",
                        "beam 4 best reachable"], rows)]), args.out)
    return 0


def _encoded_pairs(spec: str, run):
    """The pairs of corpus `spec` as the run's token ids (no BOS/EOS)."""
    from keras_transformer.corpus import iter_parallel_corpus

    source_tokenizer, target_tokenizer = run.load_tokenizers()
    chunk = []
    for pair in iter_parallel_corpus(spec, None, None, None):
        chunk.append(pair)
        if len(chunk) == 2000:
            yield from _encoded(chunk, source_tokenizer, target_tokenizer)
            chunk = []
    yield from _encoded(chunk, source_tokenizer, target_tokenizer)


def _encoded(pairs, source_tokenizer, target_tokenizer):
    if pairs:
        sources = source_tokenizer.encode_batch([s for s, _ in pairs])
        targets = target_tokenizer.encode_batch([t for _, t in pairs])
        yield from ((np.asarray(s, np.int32), np.asarray(t, np.int32)) for s, t in zip(sources, targets))


if __name__ == "__main__":
    sys.exit(main())
