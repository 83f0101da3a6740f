"""`keras-transformer evaluate BUNDLE --data SPEC`: translate a corpus's sources, score against its targets.

Prints sacreBLEU's BLEU and chrF++ with their signatures, the exact-match rate and the speed
(translation alone); `--output` writes the translations, `--json` the scores.
"""

from __future__ import annotations

import json
from pathlib import Path

from .options import add_data_options, add_decoding_options, decoding_options


def add_parsers(commands) -> None:
    p = commands.add_parser("evaluate", help="translate a corpus with a bundle; sacreBLEU BLEU and chrF++")
    p.add_argument("bundle", metavar="BUNDLE", help="bundle directory written by `export`")
    p.add_argument("--data", required=True,
                   help="SPEC with references: demo, FILE.tsv, FILE.csv or SOURCE_FILE,TARGET_FILE")
    add_data_options(p)
    p.add_argument("--max-pairs", type=int, help="evaluate only the first N pairs")
    add_decoding_options(p, leave_out=("num_hypotheses", "return_scores"))  # one output per sentence is scored
    p.add_argument("--output", help="write the translations here, one per line")
    p.add_argument("--json", help="write the scores and their signatures here as JSON")
    p.set_defaults(handler=run_evaluate)


def run_evaluate(args) -> int:
    from keras_transformer.atomic_files import atomic_write_text
    from keras_transformer.corpus import read_parallel_corpus
    from keras_transformer.evaluation import evaluate_bundle
    from keras_transformer.serve.decoding_options import DecodingOptions
    from keras_transformer.serve.errors import OptionError
    from keras_transformer.serve.heap import retain_freed_heap

    options = DecodingOptions(**decoding_options(args))  # checked before anything is read
    for option, path in (("--output", args.output), ("--json", args.json)):
        if path is not None and not Path(path).parent.is_dir():  # fail before translating, not after
            raise FileNotFoundError(f"{option} {path}: directory {Path(path).parent} does not exist")
    pairs, stats = read_parallel_corpus(args.data, source_column=args.source_column,
                                        target_column=args.target_column, max_pairs=args.max_pairs)
    if not pairs:
        raise OptionError(f"{args.data}: expected at least one sentence pair, got none "
                          f"({stats.skipped_empty} skipped with an empty side)")
    retain_freed_heap()
    print(f"Evaluating {args.bundle} on {args.data}: {len(pairs)} pairs", flush=True)
    result = evaluate_bundle(args.bundle, pairs, options)
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
