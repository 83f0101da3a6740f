"""Minimum Bayes risk (MBR) decoding with chrF++ as the utility, tried on a bundle (no training).

    python -m bench.mbr_decoding --bundle runs/recipes/en-hi-bundle --data ../shared/data/en-hi/valid.tsv \\
        --samples 16 --top-p 0.9

MBR picks, among candidate translations, the one with the highest mean sentence chrF++ against a set
of "evidence" translations drawn from the model (Kumar & Byrne 2004; Freitag et al. 2022 report gains
over beam search, most of all with neural metrics and good models). Here the candidates are the
n-best list of beam search (beam 8, no repeated bigram, length penalty 1.5: the en-hi recipe's
decoding); the evidence is either that n-best list itself or `--samples` sampled translations
(nucleus sampling, one seed per sample, so the samples are reproducible). Prints the corpus chrF++
of beam search's best and of each MBR rule, with sacrebleu's chrF++ (word order 2) throughout.
An experiment, not a decoding option: on the en-hi recipe's bundle it did not reliably beat beam
search (bench/RESULTS-en-hi-notes.md).
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def mbr_choice(candidates: list[str], evidence: list[str], utility) -> str:
    """The candidate with the highest mean `utility(candidate, evidence_text)`; the first on ties."""
    scores = [np.mean([utility(candidate, text) for text in evidence]) for candidate in candidates]
    return candidates[int(np.argmax(scores))]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.mbr_decoding", description=__doc__.split("\n")[0])
    parser.add_argument("--bundle", required=True)
    parser.add_argument("--data", required=True, help="a .tsv with references (source<TAB>target)")
    parser.add_argument("--samples", type=int, default=16, help="sampled translations per sentence (evidence)")
    parser.add_argument("--top-p", type=float, default=0.9)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--beam-size", type=int, default=8)
    args = parser.parse_args(argv)

    from sacrebleu.metrics import CHRF

    from keras_transformer.corpus import read_parallel_corpus
    from keras_transformer.serve.translator import Translator

    pairs, _ = read_parallel_corpus(args.data)
    sources, references = [p[0] for p in pairs], [p[1] for p in pairs]
    translator = Translator(args.bundle)
    chrf = CHRF(word_order=2)
    utility = lambda candidate, text: chrf.sentence_score(candidate, [text]).score  # noqa: E731
    corpus = lambda outputs: round(chrf.corpus_score(outputs, [references]).score, 2)  # noqa: E731

    started = time.perf_counter()
    beam = translator.translate_batch(sources, beam_size=args.beam_size, num_hypotheses=args.beam_size,
                                      no_repeat_ngram_size=2, length_penalty=1.5)
    nbest = [[h.text for h in result.hypotheses] for result in beam]
    samples = [[] for _ in sources]
    for seed in range(args.samples):
        drawn = translator.translate(sources, sampling_topk=0, sampling_topp=args.top_p,
                                     sampling_temperature=args.temperature, seed=seed, no_repeat_ngram_size=2)
        for row, text in zip(samples, drawn):
            row.append(text)
    rules = {f"beam {args.beam_size} (nr2, lp1.5), its best": [result.text for result in beam],
             "one sample (seed 0)": [row[0] for row in samples],
             "MBR: n-best candidates, n-best evidence": [mbr_choice(c, c, utility) for c in nbest]}
    if args.samples:
        rules["MBR: n-best candidates, sampled evidence"] = [
            mbr_choice(c, e, utility) for c, e in zip(nbest, samples)]
        rules["MBR: n-best and samples as candidates and evidence"] = [
            mbr_choice(c + e, c + e, utility) for c, e in zip(nbest, samples)]
    print(f"{args.data}: {len(pairs)} pairs, {args.samples} samples (top-p {args.top_p}, temperature "
          f"{args.temperature}), {time.perf_counter() - started:.0f} s")
    print("| selection | chrF++ |\n|---|---:|")
    for name, outputs in rules.items():
        print(f"| {name} | {corpus(outputs)} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
