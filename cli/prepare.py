"""`keras-transformer prepare --data SPEC [...] --out DATA_DIR`: corpora tokenized once into memory-mapped arrays.

Streamed (memory does not grow with the corpus), atomic, resumable and reused: see
keras_transformer/prepare.py. `train --data DATA_DIR` then reads the arrays.
"""

from __future__ import annotations

from .options import add_data_options


def add_parsers(commands) -> None:
    p = commands.add_parser("prepare", help="tokenize corpora once into a DATA_DIR of memory-mapped token ids",
                            description="Reads the corpora as a stream, learns the tokenizers from a seeded sample, "
                                        "encodes on all cores and writes memory-mapped token ids and a manifest. "
                                        "Atomic; run again with the same inputs it resumes or reuses the result.")
    p.add_argument("--data", required=True, action="append",
                   help="training SPEC: demo, FILE.tsv, FILE.csv or SOURCE_FILE,TARGET_FILE; repeatable; end one "
                        "with *N (quoted) to repeat its pairs N times an epoch (stored once)")
    p.add_argument("--valid", help="validation SPEC, prepared as the DATA_DIR's valid split")
    p.add_argument("--out", required=True, help="the DATA_DIR to write (or resume, or reuse)")
    add_data_options(p)
    p.add_argument("--max-pairs", type=int, help="use only the first N pairs of each --data")
    p.add_argument("--source-vocab-size", type=int, help="source subwords (default 8000)")
    p.add_argument("--target-vocab-size", type=int, help="target subwords (default 8000)")
    p.add_argument("--shared-vocab", action="store_true", help="one tokenizer for both sides (one size)")
    p.add_argument("--max-source-length", type=int, help="keep pairs of at most this many source tokens, EOS "
                                                         "included (default 128, the model's default)")
    p.add_argument("--max-target-length", type=int, help="the same for the target side (default 128)")
    p.add_argument("--tokenizer-sample", type=int, metavar="N",
                   help="learn the tokenizers from a seeded sample of at most N pairs (default 1,000,000)")
    p.add_argument("--seed", type=int, help="seed of the sample (default 0)")
    p.add_argument("--force", action="store_true", help="replace a DATA_DIR prepared from other inputs or settings")
    p.set_defaults(handler=run_prepare)


def run_prepare(args) -> int:
    from keras_transformer.prepare import prepare

    sizes = {"source_vocab_size": args.source_vocab_size, "target_vocab_size": args.target_vocab_size}
    if args.shared_vocab:  # one vocabulary: a size given for one side is the size of both
        given = set(sizes.values()) - {None}
        if len(given) == 1:
            sizes = dict.fromkeys(sizes, given.pop())
    options = {name: value for name, value in {
        **sizes, "max_source_length": args.max_source_length, "max_target_length": args.max_target_length,
        "tokenizer_sample": args.tokenizer_sample, "seed": args.seed, "max_pairs": args.max_pairs,
    }.items() if value is not None}
    data = prepare(args.data, args.out, valid=args.valid, source_column=args.source_column,
                   target_column=args.target_column, shared_vocab=args.shared_vocab, force=args.force, **options)
    print(f"Prepared data written to {data.path}")
    return 0
