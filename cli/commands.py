"""The `keras-transformer` command: every subcommand's parser and handler, in one module.

    keras-transformer demo | train | export | evaluate | attention | curves | translate | serve | web

This module imports neither TensorFlow nor Keras at the top: `translate BUNDLE`, `evaluate`, `serve`
and `web` run in the slim install (onnxruntime, numpy, tokenizers); the training commands, and
`translate RUN`, import TensorFlow lazily (quietly: see `_import_tensorflow_quietly`). Handlers
raise ValueError/OSError/RuntimeError/TypeError for the user's mistakes; `main` prints them as one
line and exits with code 2 (KERAS_TRANSFORMER_DEBUG=1 shows the traceback instead).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ logging: warnings and errors only
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

from keras_transformer.cli import text_io  # noqa: E402  (after the environment is set)

HTTP_EXTRA_HINT = "pip install 'keras-transformer-nmt[http]'"
TRAINING_MODULES = {"tensorflow", "keras", "tf2onnx", "onnx", "matplotlib", "sacrebleu"}
TENSORFLOW_COMMANDS = {"demo", "train", "export", "attention"}
# What TensorFlow 2.21 writes to stderr at import whatever TF_CPP_MIN_LOG_LEVEL says (absl, before its
# logging is initialised).
TENSORFLOW_IMPORT_CHATTER = ("All log messages before absl::InitializeLog() is called",
                             "oneDNN custom operations are on")
DESCRIPTION = ("The Transformer of 'Attention Is All You Need' in Keras 3: train with model.fit, export to "
               "ONNX, translate on a CPU (onnxruntime) or in a browser (onnxruntime-web).")
DEBUG_ENV = "KERAS_TRANSFORMER_DEBUG"  # set to 1 to see full tracebacks


def _add_data_options(parser):
    parser.add_argument("--source-column", help="source column of a .csv SPEC")
    parser.add_argument("--target-column", help="target column of a .csv SPEC")


def _add_train_parser(commands):
    # Options left out stay None and take the defaults of ModelOptions (= TransformerConfig's,
    # keras_transformer/config.py) and TrainingSettings (keras_transformer/training.py).
    p = commands.add_parser("train", help="train a Transformer with model.fit into a run directory")
    p.add_argument("--data", required=True, action="append",
                   help="training SPEC: demo, FILE.tsv, FILE.csv or SOURCE_FILE,TARGET_FILE; give it more than once "
                        "to combine corpora, and end one with *N (quoted) to repeat its pairs N times an epoch, "
                        "e.g. --data 'in-domain.tsv*3' --data out-of-domain.tsv")
    p.add_argument("--valid", help="validation SPEC (same forms)")
    p.add_argument("--out", required=True, help="run directory to create (or resume)")
    _add_data_options(p)
    p.add_argument("--max-pairs", type=int, help="use only the first N training pairs (of each --data)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-tokens", type=int, help="tokens per batch (per side)")
    p.add_argument("--num-layers", type=int, help="N")
    p.add_argument("--hidden-dim", type=int, help="d_model")
    p.add_argument("--num-heads", type=int, help="h")
    p.add_argument("--intermediate-dim", type=int, help="d_ff")
    p.add_argument("--dropout", type=float)
    p.add_argument("--max-source-length", type=int, help="in tokens, EOS included")
    p.add_argument("--max-target-length", type=int, help="in tokens, EOS included")
    p.add_argument("--max-train-length", type=int, metavar="N",
                   help="leave pairs of more than N tokens (either side, EOS included) out of training, while the "
                        "model reads up to --max-source-length (e.g. train on short pairs, translate long inputs whole)")
    p.add_argument("--norm-first", action="store_true", help="pre-norm instead of the paper's post-norm")
    p.add_argument("--activation", choices=["relu", "gelu"])
    p.add_argument("--no-tie-output-embedding", action="store_true", help="a separate pre-softmax matrix")
    p.add_argument("--label-smoothing", type=float)
    p.add_argument("--warmup-steps", type=int)
    p.add_argument("--learning-rate-scale", type=float,
                   help="multiplies the paper's schedule")
    p.add_argument("--source-vocab-size", type=int)
    p.add_argument("--target-vocab-size", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--jit-compile", action="store_true", help="compile the train step with XLA")
    p.add_argument("--time-budget-minutes", type=float, metavar="MINUTES",
                   help="stop training (as complete) once this much training time is spent, resumed attempts included")
    p.add_argument("--keep-best", choices=["loss", "bleu", "chrf"],
                   help="model.keras = the epoch with the best validation loss, BLEU or chrF++ (greedy); needs --valid")
    p.add_argument("--patience", type=int, metavar="N",
                   help="with --keep-best: stop after N epochs without a better score")
    p.add_argument("--average-checkpoints", type=int, metavar="N",
                   help="model.keras = the mean weights of the last N epochs (with --keep-best: of the best N)")
    p.add_argument("--score-validation", action="store_true",
                   help="translate the validation split after each epoch; val_bleu and val_chrf in history.csv")
    p.add_argument("--score-max-pairs", type=int, metavar="N", help="score only the first N validation pairs")
    p.add_argument("--bpe-dropout", type=float, metavar="P",
                   help="BPE-dropout on the training data, a new segmentation each epoch (the saved tokenizers "
                        "stay deterministic)")
    p.add_argument("--shared-vocab", action="store_true",
                   help="one tokenizer for both sides and one embedding for source, target (and output)")
    p.add_argument("--force", action="store_true", help="delete an existing run at --out and start over")
    p.add_argument("--strategy", choices=["default", "mirrored", "multi-worker"],
                   help="tf.distribute strategy (multi-worker reads the cluster from TF_CONFIG)")
    p.add_argument("--workers", type=int, help="start N local multi-worker processes on 127.0.0.1 and wait")
    p.set_defaults(handler=_train)


def _train(args):
    if args.workers is not None:
        from keras_transformer.distribution import launch_local_workers

        return launch_local_workers(_without_option(args.argv, "--workers"), args.workers)
    from keras_transformer.corpus import read_corpora, read_parallel_corpus
    from keras_transformer.config import ModelOptions
    from keras_transformer.training import TrainingSettings, train

    given = {k: v for k, v in vars(args).items() if v is not None}
    given["tie_output_embedding"] = not args.no_tie_output_embedding
    given["score_validation"] = args.score_validation
    given["shared_vocab"] = given["share_embeddings"] = args.shared_vocab
    if args.shared_vocab:  # one vocabulary: a size given for one side is the size of both
        sizes = {args.source_vocab_size, args.target_vocab_size} - {None}
        if len(sizes) == 1:
            given["source_vocab_size"] = given["target_vocab_size"] = sizes.pop()
    model_options = ModelOptions(**{f.name: given[f.name] for f in dataclasses.fields(ModelOptions) if f.name in given})
    settings = TrainingSettings(
        **{f.name: given[f.name] for f in dataclasses.fields(TrainingSettings) if f.name in given})
    columns = dict(source_column=args.source_column, target_column=args.target_column)
    train_pairs, sources = read_corpora(args.data, max_pairs=args.max_pairs, **columns)
    for name, times, stats in sources:
        repeated = f", each {times} times an epoch" if times > 1 else ""
        print(f"Read {name}: {stats.kept} pairs ({stats.skipped_empty} skipped with an empty side){repeated}")
    valid_pairs = None
    if args.valid:
        valid_pairs, valid_stats = read_parallel_corpus(args.valid, **columns)
        print(f"Read {args.valid}: {valid_stats.kept} validation pairs")
    # One SPEC is recorded as a string, as runs trained before --data could repeat were.
    data = {"train": args.data[0] if len(args.data) == 1 else args.data, "valid": args.valid,
            "max_pairs": args.max_pairs, **columns}
    if settings.strategy != "multi-worker":
        train(args.out, train_pairs, valid_pairs, model_options, settings, data, force=args.force)
        print(f"Run written to {args.out}")
        return 0
    from keras_transformer.distribution import worker_index, worker_run_dir

    index = worker_index()
    out = args.out if index == 0 else worker_run_dir(args.out, index)  # only the chief writes the run
    train(out, train_pairs, valid_pairs, model_options, settings, data, force=args.force)
    if index == 0:
        print(f"Run written to {args.out}")
    else:
        shutil.rmtree(out, ignore_errors=True)
    return 0


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


def _add_demo_parser(commands):
    p = commands.add_parser("demo", help="built-in English→Hindi corpus: train, export, translate, score")
    p.add_argument("--out", default="runs/demo", help="directory for the run (default: runs/demo)")
    p.set_defaults(handler=lambda args: __import__("keras_transformer.cli.demo", fromlist=["run_demo"]).run_demo(args.out))


def _add_export_parser(commands):
    p = commands.add_parser("export", help="convert a run to an ONNX bundle (checked against Keras)")
    p.add_argument("run", metavar="RUN", help="run directory written by `train`")
    p.add_argument("--out", required=True, help="bundle directory to write")
    p.add_argument("--int8", action="store_true", help="int8 weights for the MatMuls of 256x512 elements and more, activations quantized per row (onnxruntime MatMulIntegerToFloat; a translation never depends on its batch); smaller weights stay float32")
    p.add_argument("--opset", type=int, help="ONNX opset, 17 or later (default: export.onnx_graphs.OPSET = 17)")
    p.add_argument("--standard-ops", action="store_true",
                   help="decoder.onnx of standard ONNX operators only (converted by tf2onnx), for runtimes other "
                        "than onnxruntime; the default uses onnxruntime's fused attention and layer-norm operators")
    p.add_argument("--force", action="store_true", help="replace an existing bundle at --out")
    p.set_defaults(handler=_export)


def _export(args):
    from keras_transformer.export.exporter import export_bundle
    from keras_transformer.export.onnx_graphs import OPSET

    export_bundle(args.run, args.out, int8=args.int8, opset=args.opset or OPSET, force=args.force,
                  standard_ops=args.standard_ops)


def _add_evaluate_parser(commands):
    p = commands.add_parser("evaluate", help="translate a corpus with a bundle; sacreBLEU BLEU and chrF++")
    p.add_argument("bundle", metavar="BUNDLE", help="bundle directory written by `export`")
    p.add_argument("--data", required=True, help="SPEC with references: demo, FILE.tsv, FILE.csv or SOURCE_FILE,TARGET_FILE")
    _add_data_options(p)
    p.add_argument("--max-pairs", type=int, help="evaluate only the first N pairs")
    _add_search_options(p)
    p.add_argument("--output", help="write the translations here, one per line")
    p.add_argument("--json", help="write the scores and their signatures here as JSON")
    p.set_defaults(handler=lambda args: __import__("keras_transformer.evaluate_command", fromlist=["run_evaluate"])
                   .run_evaluate(args, _search_options(args)))


def _add_attention_parser(commands):
    p = commands.add_parser("attention", help="draw one sentence's attention maps (encoder, decoder, cross)")
    p.add_argument("run", metavar="RUN", help="run directory written by `train`")
    p.add_argument("text", metavar="TEXT", help="the source sentence")
    p.add_argument("--out", required=True,
                   help="file to write: .svg or .html (a browser draws it, fonts embedded: any script), or .png "
                        "(scripts that need shaping, e.g. Hindi, are rendered by headless Chromium if installed)")
    p.add_argument("--max-length", type=int, help="most generated tokens, EOS included")
    p.add_argument("--beam-size", type=int, metavar="N", default=1, help="1 = greedy (default), N = beam search")
    p.set_defaults(handler=lambda args: __import__("keras_transformer.attention_maps",
                                                   fromlist=["run_attention"]).run_attention(args))


def _add_curves_parser(commands):
    p = commands.add_parser("curves", help="draw a run's learning curves (loss, validation score per epoch) as PNG")
    p.add_argument("run", metavar="RUN", help="run directory written by `train` (or its history.csv)")
    p.add_argument("--out", required=True, help="PNG file to write")
    p.add_argument("--title", help="title above the two panels")
    p.set_defaults(handler=lambda args: __import__("keras_transformer.learning_curves",
                                                   fromlist=["run_curves"]).run_curves(args))


class _IntermixedArgumentParser(argparse.ArgumentParser):
    """Lets options stand between positionals, as in `translate BUNDLE --beam-size 4 TEXT`: plain
    argparse fills the nargs="*" TEXT with nothing at the first option and then rejects TEXT
    (bpo-14191). `parse_known_intermixed_args` calls `parse_known_args` itself, hence the flag."""

    _intermixing = False

    def parse_known_args(self, args=None, namespace=None):
        if self._intermixing:
            return super().parse_known_args(args, namespace)
        self._intermixing = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._intermixing = False


def _add_search_options(p):
    """The decoding options that `translate` and `evaluate` share (see `DecodingOptions`): how the
    search runs, not what it prints."""
    p.add_argument("--beam-size", type=int, metavar="N", default=1,
                   help="1 = greedy (default), N = beam search with N beams")
    p.add_argument("--max-length", type=int, metavar="N",
                   help="most target tokens per sentence (default and cap: the bundle's max_target_length)")
    p.add_argument("--length-penalty", type=float, metavar="ALPHA", default=1.0,
                   help="beam search length penalty alpha (default 1.0)")
    p.add_argument("--batch-size", type=int, metavar="N", default=32, help="sentences per batch (default 32)")
    p.add_argument("--patience", type=float, metavar="P", default=1.0,
                   help="beam search stops a sentence after round(N x P) finished hypotheses (default 1, as "
                        "CTranslate2; inf: only when no live beam can win)")
    p.add_argument("--no-repeat-ngram-size", type=int, metavar="N", default=0,
                   help="never repeat an n-gram of this size in an output (default 0: off)")
    p.add_argument("--repetition-penalty", type=float, metavar="P", default=1.0,
                   help="penalize tokens already generated (> 1; default 1: off)")


def _search_options(args) -> dict:
    """The `_add_search_options` values of parsed `args`, as `DecodingOptions` keywords."""
    return dict(beam_size=args.beam_size, max_length=args.max_length, batch_size=args.batch_size,
                length_penalty=args.length_penalty, patience=args.patience,
                no_repeat_ngram_size=args.no_repeat_ngram_size, repetition_penalty=args.repetition_penalty)


def _add_translate_parser(commands):
    p = commands.add_parser("translate", help="translate text with a bundle (onnxruntime) or a run (Keras)",
                            description="Translate TEXT arguments, stdin lines, or an --input file, with an "
                                        "exported bundle (onnxruntime only) or a run directory (the Keras "
                                        "model; needs the training extras).")
    p.__class__ = _IntermixedArgumentParser  # subparsers are built by the parent's parser class
    p.add_argument("bundle", metavar="BUNDLE|RUN", help="bundle directory written by `export`, or run directory "
                                                        "written by `train`")
    p.add_argument("texts", metavar="TEXT", nargs="*", help="texts to translate (default: stdin lines)")
    p.add_argument("--input", metavar="FILE", help="translate the lines of FILE (UTF-8), with a progress line")
    p.add_argument("--output", metavar="FILE", help="write the translations to FILE (atomically), not stdout")
    _add_search_options(p)
    p.add_argument("--threads", type=int, metavar="N", help="onnxruntime intra-op threads per session (default: 1, fastest for decoding steps)")
    p.add_argument("--n-best", type=int, metavar="N", default=1, dest="num_hypotheses",
                   help="print the N best hypotheses per text, N lines each (N <= --beam-size)")
    p.add_argument("--scores", action="store_true",
                   help="print each hypothesis as SCORE<TAB>TEXT (length-normalized log-probability)")
    p.add_argument("--sampling-topk", type=int, metavar="K", default=1,
                   help="1 = most likely token (default); K > 1 = sample among the K most likely; 0 = all")
    p.add_argument("--sampling-topp", type=float, metavar="P", default=1.0, help="nucleus sampling: top-p mass (default 1)")
    p.add_argument("--sampling-temperature", type=float, metavar="T", default=1.0, help="sampling temperature (default 1)")
    p.add_argument("--seed", type=int, metavar="S", help="seed for reproducible sampling")
    p.add_argument("--stream", action="store_true",
                   help="print each translation as it is decoded, token by token (greedy or sampling)")
    p.set_defaults(handler=_translate)


def _translate(args) -> int:
    try:
        return _run_translate(args)
    except BrokenPipeError:  # `... | head -1`: the reader left; stop quietly, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at interpreter exit
        return 1


def _run_translate(args) -> int:
    from keras_transformer.serve.decoding_options import DecodingOptions
    from keras_transformer.serve.translator import TruncationWarning
    from keras_transformer.translation import is_run_dir, load_translator

    if args.input and args.texts:
        raise ValueError("expected TEXT arguments or --input FILE, got both")
    DecodingOptions(**_decoding_options(args))  # checks the options before loading anything
    if is_run_dir(args.bundle):  # the Keras model itself: needs the training extras
        _import_tensorflow_quietly()
    translator = load_translator(args.bundle, threads=args.threads)
    options = _decoding_options(args)
    if args.stream:
        if args.output or args.num_hypotheses > 1:
            raise ValueError("--stream prints to stdout one hypothesis at a time: expected no --output and no --n-best")
        texts = text_io.read_lines(args.input) if args.input else args.texts or text_io.stdin_lines()
        for text in texts:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", TruncationWarning)
                for piece in translator.stream(text, **options):
                    print(text_io.one_line(piece), end="", flush=True)
            print(flush=True)
            _report(caught)
        return 0
    if args.input:
        lines = text_io.read_lines(args.input)
        started = time.perf_counter()
        bar = text_io.ProgressLine(len(lines), label=Path(args.input).name)
        translations = _translate_quietly(translator, lines, args, progress=bar.advance, **options)
        bar.close(f"translated {len(lines)} lines in {time.perf_counter() - started:.1f}s")
    elif args.texts:
        translations = _translate_quietly(translator, args.texts, args, **options)
    elif args.output:
        translations = _translate_quietly(translator, list(text_io.stdin_lines()), args, **options)
    else:  # translate stdin in chunks, one line per line, flushed as it goes
        for chunk in text_io.chunks(text_io.stdin_lines(), args.batch_size, flush_each=sys.stdin.isatty()):
            for line in _translate_quietly(translator, chunk, args, **options):
                print(line, flush=True)
        return 0
    if args.output:
        text_io.write_atomically(args.output, "".join(line + "\n" for line in translations))
    else:
        for line in translations:
            print(line)
    return 0


def _decoding_options(args) -> dict:
    """The `DecodingOptions` fields given on the command line (validated by `DecodingOptions`)."""
    return dict(_search_options(args), num_hypotheses=args.num_hypotheses, return_scores=args.scores,
                sampling_topk=args.sampling_topk, sampling_topp=args.sampling_topp,
                sampling_temperature=args.sampling_temperature, seed=args.seed)


def _translate_quietly(translator, texts, args, progress=None, **options) -> list[str]:
    """The output lines for `texts`: one per text, or --n-best per text, each `SCORE\tTEXT` with
    --scores; the translator's warnings are printed as one stderr line each."""
    from keras_transformer.serve.decoding_options import DecodingOptions
    from keras_transformer.serve.translator import TruncationWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", TruncationWarning)
        results = translator.translate_batch(texts, DecodingOptions(**options), progress=progress)
    _report(caught)
    lines = []
    for result in results:
        hypotheses = result.hypotheses or [None] * args.num_hypotheses  # a blank text: blank lines
        for hypothesis in hypotheses:
            text = text_io.one_line(hypothesis.text) if hypothesis else ""
            lines.append(f"{hypothesis.score:.4f}\t{text}" if args.scores and hypothesis else text)
    return lines


def _report(caught) -> None:
    """The Translator's own warnings (texts cut to the source limit) as one stderr line each; any
    other warning that passed the filters as Python would show it."""
    from keras_transformer.serve.translator import TruncationWarning

    for warning in caught:
        if issubclass(warning.category, TruncationWarning):
            print(f"keras-transformer translate: warning: {warning.message}", file=sys.stderr)
        else:
            warnings.showwarning(warning.message, warning.category, warning.filename, warning.lineno)


# --- serve --------------------------------------------------------------------------------------


def _add_serve_parser(commands):
    p = commands.add_parser("serve", help="HTTP translation server (needs the [http] extra)",
                            description="POST /translate {\"texts\": [...], \"beam_size\": 1}; GET /health.")
    p.add_argument("bundle", metavar="BUNDLE", help="bundle directory written by `export`")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, metavar="PORT", default=8000, help="TCP port (default 8000)")
    p.add_argument("--threads", type=int, metavar="N", help="onnxruntime intra-op threads per session (default: 1, fastest for decoding steps)")
    p.add_argument("--workers", type=int, metavar="N", default=1,
                   help="translations run at once, each in a worker thread (default 1)")
    p.add_argument("--max-queue", type=int, metavar="N",
                   help="requests that may wait for a worker; beyond, 503 (default 2 x workers + 8)")
    p.set_defaults(handler=_serve)


def _serve(args) -> int:
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401

        from keras_transformer.serve import http_server
    except ImportError as error:
        missing = getattr(error, "name", None) or "starlette"
        raise RuntimeError(f"the serve command needs the HTTP extra ({missing} is not installed): "
                           f"{HTTP_EXTRA_HINT}") from None
    if not 0 <= args.port <= 65535:
        raise ValueError(f"--port: expected 0..65535, got {args.port}")
    from keras_transformer.serve.translator import Translator

    translator = Translator(args.bundle, threads=args.threads)
    http_server.run_server(translator, host=args.host, port=args.port, workers=args.workers,
                           max_queue=args.max_queue)
    return 0


def _add_web_parser(commands):
    p = commands.add_parser("web", help="serve the browser page that translates with the bundle (onnxruntime-web)",
                            description="Serves a static page and the bundle's files (read-only); the page "
                                        "translates in the browser with onnxruntime-web.")
    p.add_argument("bundle", metavar="BUNDLE", help="bundle directory written by `export`")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, metavar="PORT", default=8080, help="TCP port (default 8080)")
    p.set_defaults(handler=_web)


def _web(args) -> int:
    from keras_transformer.serve.web_server import run_web_server

    if not 0 <= args.port <= 65535:
        raise ValueError(f"--port: expected 0..65535, got {args.port}")
    run_web_server(args.bundle, host=args.host, port=args.port)
    return 0


def _import_tensorflow_quietly():
    """Imports TensorFlow with its start-up chatter (TENSORFLOW_IMPORT_CHATTER) held back.

    The process-level stderr (file descriptor 2, which TensorFlow's C++ code writes to) goes to a
    temporary file during the import; afterwards every other line is written back, and on failure
    all of it, so nothing that explains an error is lost.
    """
    import tempfile

    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    failed = True
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow  # noqa: F401
            failed = False
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            lines = captured.read().decode("utf-8", "replace").splitlines(keepends=True)
            kept = lines if failed else [line for line in lines
                                         if not any(chatter in line for chatter in TENSORFLOW_IMPORT_CHATTER)]
            sys.stderr.write("".join(kept))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="keras-transformer", description=DESCRIPTION)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_demo_parser(commands)
    _add_train_parser(commands)
    _add_export_parser(commands)
    _add_evaluate_parser(commands)
    _add_attention_parser(commands)
    _add_curves_parser(commands)
    _add_translate_parser(commands)  # translate (bundle), serve and web import no TensorFlow
    _add_serve_parser(commands)
    _add_web_parser(commands)
    return parser


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.argv = argv[1:]  # the command's own arguments, for commands that relaunch themselves
    try:
        if args.command in TENSORFLOW_COMMANDS and getattr(args, "workers", None) is None:
            _import_tensorflow_quietly()
        result = args.handler(args)
    except ModuleNotFoundError as error:
        if error.name and error.name.split(".")[0] in TRAINING_MODULES:
            print(f"keras-transformer {args.command}: error: this command needs the training extras "
                  f"({error.name} is not installed): pip install 'keras-transformer-nmt[train]'", file=sys.stderr)
            return 2
        raise
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, OSError, RuntimeError, TypeError) as error:
        if os.environ.get(DEBUG_ENV):
            raise
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        print(f"keras-transformer {args.command}: error: {message}", file=sys.stderr)
        return 2
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
