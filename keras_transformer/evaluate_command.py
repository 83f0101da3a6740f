"""`keras-transformer evaluate`: translate the source side of a corpus with a bundle and score it.

Scores are sacreBLEU's corpus BLEU and chrF++ (`keras_transformer.evaluation`), each printed with its
signature so a number can be compared only with numbers computed the same way, plus the exact-match
rate and the speed in sentences per second, timed over translation alone (not loading the bundle,
reading the corpus or scoring).

Example:
    >>> pairs, _ = read_parallel_corpus("runs/demo/test.tsv")
    >>> result = evaluate_bundle("bundle/", pairs, beam_size=4)
    >>> result["bleu"], result["bleu_signature"]
    (61.2, 'nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.5.1')
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

from keras_transformer.atomic_files import atomic_write_text


def evaluate_bundle(bundle, pairs, beam_size=1, batch_size=32, max_length=None, **options) -> dict:
    """Translates the sources of `pairs` with a bundle and scores them against the targets.

    Args:
        bundle: a bundle directory, or a `serve.Translator` already loaded (bench scripts reuse one).
        pairs: (source, target) sentence pairs, e.g. from `read_parallel_corpus`.
        beam_size: 1 for greedy decoding, K > 1 for beam search.
        batch_size: sentences per decoding batch.
        max_length: most target tokens per sentence (None: the bundle's maximum).
        options: other `DecodingOptions` fields (length_penalty, patience, no_repeat_ngram_size,
            repetition_penalty, ...), as `Translator.translate` takes them.

    Returns:
        A JSON-serializable dict: bleu, chrf (chrF++), exact_match (a share in [0, 1]),
        bleu_signature, chrf_signature, sentences, translation_seconds, sentences_per_second,
        beam_size, batch_size, decoding (the other options that differ from `DecodingOptions`'
        defaults), and hypotheses (one per pair, in order).

    Raises:
        ValueError: no pairs, or a bad option (the Translator's messages); BundleError for a bad bundle.
    """
    from keras_transformer.evaluation import score_translations
    from keras_transformer.serve import Translator
    from keras_transformer.serve.decoding_options import DecodingOptions

    pairs = list(pairs)
    if not pairs:
        raise ValueError("expected at least one (source, target) pair to evaluate, got none")
    translator = bundle if isinstance(bundle, Translator) else Translator(bundle)
    sources = [source for source, _ in pairs]
    references = [target for _, target in pairs]
    started = time.perf_counter()
    decoding = DecodingOptions(beam_size=beam_size, max_length=max_length, batch_size=batch_size, **options)
    hypotheses = translator.translate(sources, **dataclasses.asdict(decoding))
    seconds = time.perf_counter() - started
    scores = score_translations(hypotheses, references)
    return {
        "bleu": scores.bleu,
        "chrf": scores.chrf,
        "exact_match": scores.exact_match,
        "bleu_signature": scores.bleu_signature,
        "chrf_signature": scores.chrf_signature,
        "sentences": scores.sentences,
        "translation_seconds": seconds,
        "sentences_per_second": len(pairs) / seconds if seconds > 0 else float("inf"),
        "beam_size": beam_size,
        "batch_size": batch_size,
        "decoding": _changed_options(decoding),
        "hypotheses": hypotheses,
    }


def _changed_options(options) -> dict:
    """The fields of a `DecodingOptions` that differ from the defaults, beam and batch size aside."""
    defaults = type(options)()
    return {field.name: getattr(options, field.name) for field in dataclasses.fields(options)
            if field.name not in ("beam_size", "batch_size") and getattr(options, field.name) != getattr(defaults, field.name)}


def format_report(result: dict) -> str:
    """The lines `evaluate` prints for a result of `evaluate_bundle`."""
    exact = round(result["exact_match"] * result["sentences"])
    return "\n".join([
        f"BLEU    {result['bleu']:6.2f}   {result['bleu_signature']}",
        f"chrF++  {result['chrf']:6.2f}   {result['chrf_signature']}",
        f"exact match  {result['exact_match']:.1%} ({exact}/{result['sentences']})",
        f"speed   {result['sentences_per_second']:.1f} sentences/s ({result['sentences']} sentences "
        f"translated in {result['translation_seconds']:.2f}s, beam {result['beam_size']}, "
        f"batch {result['batch_size']}"
        + "".join(f", {name} {value}" for name, value in result.get("decoding", {}).items()) + ")",
    ])


def run_evaluate(args, options: dict) -> int:
    """The `evaluate` command: read --data, translate with the decoding `options` (`DecodingOptions`
    keywords), score, print; write --output and --json."""
    from keras_transformer.corpus import read_parallel_corpus

    for option, path in (("--output", args.output), ("--json", args.json)):
        if path is not None and not Path(path).parent.is_dir():  # fail before translating, not after
            raise FileNotFoundError(f"{option} {path}: directory {Path(path).parent} does not exist")
    pairs, stats = read_parallel_corpus(args.data, source_column=args.source_column,
                                        target_column=args.target_column, max_pairs=args.max_pairs)
    if not pairs:
        raise ValueError(f"{args.data}: expected at least one sentence pair, got none "
                         f"({stats.skipped_empty} skipped with an empty side)")
    print(f"Evaluating {args.bundle} on {args.data}: {len(pairs)} pairs", flush=True)
    result = evaluate_bundle(args.bundle, pairs, **options)
    print(format_report(result))
    if args.output is not None:
        lines = (" ".join(hypothesis.splitlines()) for hypothesis in result["hypotheses"])  # one line each
        atomic_write_text(args.output, "".join(f"{line}\n" for line in lines))
        print(f"Translations written to {args.output}")
    if args.json is not None:
        summary = {key: value for key, value in result.items() if key != "hypotheses"}
        summary.update(bundle=str(args.bundle), data=args.data)
        atomic_write_text(args.json, json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
        print(f"Scores written to {args.json}")
    return 0
