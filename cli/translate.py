"""`keras-transformer translate BUNDLE|RUN [TEXT ...]`: text in, text out, from arguments, stdin or a file.

A bundle runs on onnxruntime alone; a run directory runs the Keras model (training extras needed),
through the same `Translator` front end and options.
"""

from __future__ import annotations

import itertools
import os
import sys
import warnings
from pathlib import Path

from . import text_io
from .options import (IntermixedArgumentParser, add_decoding_options, add_replica_options, decoding_options,
                      replicas_and_threads)
from .tensorflow_import import import_tensorflow_quietly


def add_parsers(commands) -> None:
    p = commands.add_parser("translate", help="translate text with a bundle (onnxruntime) or a run (Keras)",
                            description="Translate TEXT arguments, stdin lines, or an --input file, with an "
                                        "exported bundle (onnxruntime only) or a run directory (the Keras "
                                        "model; needs the training extras).")
    p.__class__ = IntermixedArgumentParser  # subparsers are built by the parent's parser class
    p.add_argument("bundle", metavar="BUNDLE|RUN", help="bundle directory written by `export`, or run directory "
                                                        "written by `train`")
    p.add_argument("texts", metavar="TEXT", nargs="*", help="texts to translate (default: stdin lines)")
    p.add_argument("--input", metavar="FILE",
                   help="translate the lines of FILE (UTF-8), streamed: a window of lines at a time, sorted by length, "
                        "on every replica, written in input order as it goes, with a progress line")
    p.add_argument("--output", metavar="FILE",
                   help="write the translations to FILE, not stdout (with --input: line by line as they are done; "
                        "otherwise atomically at the end)")
    p.add_argument("--resume", action="store_true",
                   help="with --input and --output: continue after the last complete translation in --output "
                        "(an interrupted run loses at most the window it was writing)")
    add_decoding_options(p)  # --n-best prints N lines per text; --scores prints SCORE<TAB>TEXT
    add_replica_options(p, "with --input: one per core; otherwise 1")
    p.add_argument("--stream", action="store_true",
                   help="print each translation as it is decoded, token by token (greedy or sampling)")
    p.set_defaults(handler=run_translate)


def run_translate(args) -> int:
    try:
        return _run_translate(args)
    except BrokenPipeError:  # `... | head -1`: the reader left; stop quietly, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at interpreter exit
        return 1


def _run_translate(args) -> int:
    from keras_transformer.serve.decoding_options import DecodingOptions
    from keras_transformer.serve.errors import OptionError
    from keras_transformer.serve.heap import retain_freed_heap
    from keras_transformer.serve.translator import TruncationWarning
    from keras_transformer.translation import is_run_dir, load_translator

    if args.input and args.texts:
        raise OptionError("expected TEXT arguments or --input FILE, got both")
    options = DecodingOptions(**decoding_options(args))  # checked before anything is loaded
    if is_run_dir(args.bundle):  # the Keras model itself: needs the training extras
        import_tensorflow_quietly()
    threads, replicas = replicas_and_threads(args, every_core=bool(args.input))
    translator = load_translator(args.bundle, threads=threads, replicas=replicas)
    retain_freed_heap()
    if args.stream:
        if args.output or options.num_hypotheses > 1:
            raise OptionError("--stream prints to stdout one hypothesis at a time: expected no --output and no "
                              "--n-best")
        texts = text_io.iter_lines(args.input) if args.input else args.texts or text_io.stdin_lines()
        for text in texts:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", TruncationWarning)
                for piece in translator.stream(text, options):
                    print(text_io.one_line(piece), end="", flush=True)
            print(flush=True)
            _report(caught)
        return 0
    if args.resume and not (args.input and args.output):
        raise OptionError("--resume continues an --output written from an --input: expected both")
    if args.input:
        return _translate_file(translator, options, args.input, args.output, args.resume)
    if args.texts:
        translations = _translate_quietly(translator, args.texts, options)
    elif args.output:
        translations = _translate_quietly(translator, list(text_io.stdin_lines()), options)
    else:  # translate stdin in chunks, one line per line, flushed as it goes
        for chunk in text_io.chunks(text_io.stdin_lines(), options.batch_size, flush_each=sys.stdin.isatty()):
            for line in _translate_quietly(translator, chunk, options):
                print(line, flush=True)
        return 0
    if args.output:
        text_io.write_atomically(args.output, "".join(line + "\n" for line in translations))
    else:
        for line in translations:
            print(line)
    return 0


def _translate_file(translator, options, path, output, resume: bool) -> int:
    """--input: the file's lines streamed through `translate_iterable`, each result written as it comes
    (to --output, or stdout), with a progress line; memory does not grow with the file."""
    from keras_transformer.progress_line import ProgressLine
    from keras_transformer.serve.translator import TruncationWarning

    total = text_io.count_lines(path)
    per_text = options.num_hypotheses  # output lines per input line
    done = text_io.complete_outputs(output, per_text) if resume else 0
    lines = itertools.islice(text_io.iter_lines(path), done, None)
    line = ProgressLine(f"Translating {Path(path).name}", unit="lines")
    if output is not None:
        text_io.check_output_path(output)
    sink = open(output, "a" if resume else "w", encoding="utf-8", newline="\n") if output else sys.stdout
    count = done

    def progress(finished: int) -> None:
        nonlocal count
        count += finished
        sink.flush()  # each finished window reaches the file: an interruption loses at most the next one
        line.update(count, count / total if total else None)

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", TruncationWarning)
            for result in translator.translate_iterable(lines, options, progress=progress):
                sink.write("".join(f"{text}\n" for text in _output_lines(result, options)))
    finally:
        if sink is not sys.stdout:
            sink.close()
    _report(caught)
    line.close(count)
    return 0


def _output_lines(result, options) -> list[str]:
    """A result's output lines: its best text, or its --n-best texts, each `SCORE\tTEXT` with --scores."""
    hypotheses = result.hypotheses or [None] * options.num_hypotheses  # a blank text: blank lines
    lines = []
    for hypothesis in hypotheses:
        text = text_io.one_line(hypothesis.text) if hypothesis else ""
        lines.append(f"{hypothesis.score:.4f}\t{text}" if options.return_scores and hypothesis else text)
    return lines


def _translate_quietly(translator, texts, options, progress=None) -> list[str]:
    """The output lines for `texts`: one per text, or --n-best per text, each `SCORE\tTEXT` with
    --scores; the translator's warnings are printed as one stderr line each."""
    from keras_transformer.serve.translator import TruncationWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", TruncationWarning)
        results = translator.translate_batch(texts, options, progress=progress)
    _report(caught)
    return [line for result in results for line in _output_lines(result, options)]


def _report(caught) -> None:
    """The Translator's own warnings (texts cut to the source limit) as one stderr line each; any
    other warning that passed the filters as Python would show it."""
    from keras_transformer.serve.translator import TruncationWarning

    for warning in caught:
        if issubclass(warning.category, TruncationWarning):
            print(f"keras-transformer translate: warning: {warning.message}", file=sys.stderr)
        else:
            warnings.showwarning(warning.message, warning.category, warning.filename, warning.lineno)
