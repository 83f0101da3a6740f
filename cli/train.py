"""`keras-transformer train`: a Transformer trained with model.fit into a run directory.

Options left out stay None and take the defaults of `ModelOptions` (keras_transformer/config.py) and
`TrainingSettings` (keras_transformer/training.py), where they are declared.
"""

from __future__ import annotations

import dataclasses
import shutil

from .options import add_data_options
from .tensorflow_import import import_tensorflow_quietly


def add_parsers(commands) -> None:
    p = commands.add_parser("train", help="train a Transformer with model.fit into a run directory")
    p.add_argument("--data", required=True, action="append",
                   help="training SPEC: demo, FILE.tsv, FILE.csv or SOURCE_FILE,TARGET_FILE; give it more than once "
                        "to combine corpora, and end one with *N (quoted) to repeat its pairs N times an epoch, "
                        "e.g. --data 'in-domain.tsv*3' --data out-of-domain.tsv. The SPECs are prepared into "
                        "RUN/data first (as `prepare` does). Or a DATA_DIR written by `prepare`, alone")
    p.add_argument("--valid", help="validation SPEC (same forms)")
    p.add_argument("--out", required=True, help="run directory to create (or resume)")
    add_data_options(p)
    p.add_argument("--max-pairs", type=int, help="use only the first N training pairs (of each --data)")
    p.add_argument("--tokenizer-sample", type=int, metavar="N",
                   help="learn the tokenizers from a seeded sample of at most N pairs (default 1,000,000)")
    add_training_options(p)
    p.add_argument("--force", action="store_true", help="delete an existing run at --out and start over")
    p.add_argument("--strategy", choices=["default", "mirrored", "multi-worker"],
                   help="tf.distribute strategy (multi-worker reads the cluster from TF_CONFIG)")
    p.add_argument("--workers", type=int, help="start N local multi-worker processes on 127.0.0.1 and wait")
    p.set_defaults(handler=run_train)


def add_training_options(p) -> None:
    """The model and training options. Left out, one stays None and takes its default from `ModelOptions`
    (keras_transformer/config.py) or `TrainingSettings` (keras_transformer/training.py), where they are
    declared (or, for `distill`, the teacher's)."""
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-tokens", type=int, help="tokens per batch (per side)")
    p.add_argument("--num-layers", type=int, help="N, the depth of both the encoder and the decoder")
    p.add_argument("--encoder-layers", type=int, metavar="N", help="the encoder's depth (default: --num-layers)")
    p.add_argument("--decoder-layers", type=int, metavar="M",
                   help="the decoder's depth (default: --num-layers); decoding time grows with it, so small fast "
                        "models keep a deep encoder and a shallow decoder")
    p.add_argument("--hidden-dim", type=int, help="d_model")
    p.add_argument("--num-heads", type=int, help="h")
    p.add_argument("--intermediate-dim", type=int, help="d_ff")
    p.add_argument("--dropout", type=float)
    p.add_argument("--max-source-length", type=int, help="in tokens, EOS included")
    p.add_argument("--max-target-length", type=int, help="in tokens, EOS included")
    p.add_argument("--max-train-length", type=int, metavar="N",
                   help="leave pairs of more than N tokens (either side, EOS included) out of training, while the "
                        "model reads up to --max-source-length (e.g. train on short pairs, translate long "
                        "inputs whole)")
    p.add_argument("--norm-first", action="store_const", const=True, help="pre-norm instead of the paper's post-norm")
    p.add_argument("--activation", choices=["relu", "gelu"])
    p.add_argument("--no-tie-output-embedding", action="store_const", const=False, dest="tie_output_embedding",
                   help="a separate pre-softmax matrix")
    p.add_argument("--label-smoothing", type=float)
    p.add_argument("--warmup-steps", type=int)
    p.add_argument("--learning-rate-scale", type=float,
                   help="multiplies the paper's schedule")
    p.add_argument("--source-vocab-size", type=int)
    p.add_argument("--target-vocab-size", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--jit-compile", action="store_const", const=True, help="compile the train step with XLA")
    p.add_argument("--time-budget-minutes", type=float, metavar="MINUTES",
                   help="stop training (as complete) once this much training time is spent, resumed attempts included")
    p.add_argument("--keep-best", choices=["loss", "bleu", "chrf"],
                   help="model.keras = the epoch with the best validation loss, BLEU or chrF++ (greedy); needs --valid")
    p.add_argument("--patience", type=int, metavar="N",
                   help="with --keep-best: stop after N epochs without a better score")
    p.add_argument("--average-checkpoints", type=int, metavar="N",
                   help="model.keras = the mean weights of the last N epochs (with --keep-best: of the best N)")
    p.add_argument("--score-validation", action="store_const", const=True,
                   help="translate the validation split after each epoch; val_bleu and val_chrf in history.csv")
    p.add_argument("--score-max-pairs", type=int, metavar="N", help="score only the first N validation pairs")
    p.add_argument("--bpe-dropout", type=float, metavar="P",
                   help="BPE-dropout on the training data, a new segmentation each epoch (the saved tokenizers "
                        "stay deterministic)")
    p.add_argument("--shared-vocab", action="store_const", const=True,
                   help="one tokenizer for both sides and one embedding for source, target (and output)")


def run_train(args) -> int:
    if args.workers is not None:
        from keras_transformer.distribution import launch_local_workers

        return launch_local_workers(_without_option(args.argv, "--workers"), args.workers)
    import_tensorflow_quietly()
    from keras_transformer import training
    from keras_transformer.corpus import read_parallel_corpus

    prepared = _prepared_data(args)
    defaults = {}
    if prepared is not None:  # the DATA_DIR's vocabularies, unless others were asked for (then refused)
        defaults = {name: prepared.settings[name] for name in ("source_vocab_size", "target_vocab_size",
                                                               "shared_vocab")}
    model_options, settings = options_from_args(args, defaults)
    columns = dict(source_column=args.source_column, target_column=args.target_column)
    train_data = prepared if prepared is not None else _corpora(args, settings, columns)
    valid_pairs = None
    if args.valid:
        valid_pairs, valid_stats = read_parallel_corpus(args.valid, **columns)
        print(f"Read {args.valid}: {valid_stats.kept} validation pairs")
    # One SPEC is recorded as a string, as runs trained before --data could repeat were.
    data = {"train": args.data[0] if len(args.data) == 1 else args.data, "valid": args.valid,
            "max_pairs": args.max_pairs, **columns}
    if prepared is not None:  # a DATA_DIR prepared again (other content) is another run's data
        data["prepared"] = prepared.manifest_sha256
    if settings.strategy != "multi-worker":
        training.train(args.out, train_data, valid_pairs, model_options, settings, data, force=args.force)
        print(f"Run written to {args.out}")
        return 0
    from keras_transformer.distribution import worker_index, worker_run_dir

    index = worker_index()
    out = args.out if index == 0 else worker_run_dir(args.out, index)  # only the chief writes the run
    training.train(out, train_data, valid_pairs, model_options, settings, data, force=args.force)
    if index == 0:
        print(f"Run written to {args.out}")
    else:
        shutil.rmtree(out, ignore_errors=True)
    return 0


def options_from_args(args, defaults: dict | None = None):
    """(ModelOptions, TrainingSettings) of the options given on the command line, over `defaults` (by
    field name), over the dataclasses' own defaults. --shared-vocab sets share_embeddings too, and a
    vocabulary size given for one side is the shared vocabulary's size."""
    from keras_transformer.config import ModelOptions
    from keras_transformer.training import TrainingSettings

    given = {**(defaults or {}), **{k: v for k, v in vars(args).items() if v is not None}}
    if given.get("shared_vocab"):
        given.setdefault("share_embeddings", True)
        sizes = {args.source_vocab_size, args.target_vocab_size} - {None}
        if len(sizes) == 1:
            given["source_vocab_size"] = given["target_vocab_size"] = sizes.pop()
    model_options = ModelOptions(**{f.name: given[f.name] for f in dataclasses.fields(ModelOptions) if f.name in given})
    settings = TrainingSettings(**{f.name: given[f.name] for f in dataclasses.fields(TrainingSettings)
                                   if f.name in given})
    return model_options, settings


def _prepared_data(args):
    """The DATA_DIR given as --data, opened and checked; None for SPECs."""
    from keras_transformer.prepared_data import PreparedData, is_data_dir
    from keras_transformer.serve.errors import OptionError

    data_dirs = [spec for spec in args.data if is_data_dir(spec)]
    if not data_dirs:
        return None
    if len(args.data) > 1 or args.max_pairs is not None or args.tokenizer_sample is not None:
        raise OptionError(f"--data {data_dirs[0]}: a DATA_DIR is used alone and as prepared: expected no other "
                          "--data, --max-pairs or --tokenizer-sample (prepare again to change it)")
    return PreparedData.open(data_dirs[0])


def _corpora(args, settings, columns):
    """The SPECs of --data: prepared into RUN/data by `train`, or with --bpe-dropout (which re-encodes
    the text each epoch) read into memory, up to `training.BPE_DROPOUT_MAX_PAIRS` pairs."""
    from keras_transformer.corpus import TrainingCorpora, read_corpora
    from keras_transformer.training import BPE_DROPOUT_MAX_PAIRS

    if not settings.bpe_dropout:
        return TrainingCorpora(tuple(args.data), max_pairs=args.max_pairs, **columns)
    pairs, sources = read_corpora(args.data, max_pairs=args.max_pairs, at_most=BPE_DROPOUT_MAX_PAIRS, **columns)
    for name, times, stats in sources:
        repeated = f", each {times} times an epoch" if times > 1 else ""
        print(f"Read {name}: {stats.kept} pairs ({stats.skipped_empty} skipped with an empty side){repeated}")
    return pairs


def _without_option(argv, option):
    """argv without `option VALUE` / `option=VALUE`."""
    out, skip = [], False
    for item in argv:
        if skip:
            skip = False
        elif item == option:
            skip = True
        elif not item.startswith(option + "="):
            out.append(item)
    return out
