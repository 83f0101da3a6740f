"""The TensorFlow-free commands of `keras-transformer`: `translate` and `serve`.

    keras-transformer translate BUNDLE "How are you?" "Good night."   one line out per TEXT
    keras-transformer translate BUNDLE < in.txt > out.txt              stdin lines (blank -> blank)
    keras-transformer translate BUNDLE --input in.txt --output out.txt progress on stderr
    keras-transformer serve BUNDLE [--host 127.0.0.1] [--port 8000]    HTTP (needs the [http] extra)

Handlers raise ValueError/OSError/RuntimeError/TypeError for the user's mistakes; `main()` in
keras_transformer_cli.py prints them as one line and exits with code 2.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

from serve.atomic_files import atomic_write_text

HTTP_EXTRA_HINT = "pip install 'keras-transformer[http]'"


def add_serve_commands(commands) -> None:
    """Adds `translate` and `serve` to the argparse subparsers object `commands`."""
    _add_translate_parser(commands)
    _add_serve_parser(commands)


# --- translate ----------------------------------------------------------------------------------


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


def _add_translate_parser(commands):
    p = commands.add_parser("translate", help="translate text with a bundle (onnxruntime only)",
                            description="Translate TEXT arguments, stdin lines, or an --input file.")
    p.__class__ = _IntermixedArgumentParser  # subparsers are built by the parent's parser class
    p.add_argument("bundle", metavar="BUNDLE", help="bundle directory written by `export`")
    p.add_argument("texts", metavar="TEXT", nargs="*", help="texts to translate (default: stdin lines)")
    p.add_argument("--input", metavar="FILE", help="translate the lines of FILE (UTF-8), with a progress line")
    p.add_argument("--output", metavar="FILE", help="write the translations to FILE (atomically), not stdout")
    p.add_argument("--beam-size", type=int, metavar="N", default=1,
                   help="1 = greedy (default), N = beam search with N beams")
    p.add_argument("--max-length", type=int, metavar="N",
                   help="most target tokens per sentence (default and cap: the bundle's max_target_length)")
    p.add_argument("--length-penalty", type=float, metavar="ALPHA", default=1.0,
                   help="beam search length penalty alpha (default 1.0)")
    p.add_argument("--batch-size", type=int, metavar="N", default=32, help="sentences per batch (default 32)")
    p.add_argument("--threads", type=int, metavar="N", help="onnxruntime intra-op threads per session (default: 1, fastest for decoding steps)")
    p.set_defaults(handler=_translate)


def _translate(args) -> int:
    try:
        return _run_translate(args)
    except BrokenPipeError:  # `... | head -1`: the reader left; stop quietly, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at interpreter exit
        return 1


def _run_translate(args) -> int:
    from serve.translator import Translator

    if args.input and args.texts:
        raise ValueError("expected TEXT arguments or --input FILE, got both")
    translator = Translator(args.bundle, threads=args.threads)
    options = dict(beam_size=args.beam_size, max_length=args.max_length, batch_size=args.batch_size,
                   length_penalty=args.length_penalty)
    translator.translate([], **options)  # checks the options before any input is read
    if args.input:
        lines = _read_lines(args.input)
        started = time.perf_counter()
        bar = ProgressLine(len(lines), label=Path(args.input).name)
        translations = _translate_quietly(translator, lines, progress=bar.advance, **options)
        bar.close(f"translated {len(lines)} lines in {time.perf_counter() - started:.1f}s")
    elif args.texts:
        translations = _translate_quietly(translator, args.texts, **options)
    elif args.output:
        translations = _translate_quietly(translator, list(_stdin_lines()), **options)
    else:  # stream: translate stdin in chunks, one line per line, flushed as it goes
        for chunk in _chunks(_stdin_lines(), args.batch_size, flush_each=sys.stdin.isatty()):
            for translation in _translate_quietly(translator, chunk, **options):
                print(_one_line(translation), flush=True)
        return 0
    if args.output:
        _write_atomically(args.output, "".join(_one_line(t) + "\n" for t in translations))
    else:
        for translation in translations:
            print(_one_line(translation))
    return 0


def _translate_quietly(translator, texts, **options):
    """`translator.translate`, with its warnings printed as one stderr line each instead of a source excerpt."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        translations = translator.translate(texts, **options)
    for warning in caught:
        print(f"keras-transformer translate: warning: {warning.message}", file=sys.stderr)
    return translations


def _one_line(text: str) -> str:
    """Keeps one translation per output line whatever the detokenizer produced."""
    return text.replace("\r", " ").replace("\n", " ")


def _read_lines(path) -> list[str]:
    """The lines of UTF-8 file `path`, without line ends ("\\n" or "\\r\\n"); a final newline adds no line."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"--input {path}: expected a text file, got a directory")
    if not path.exists():
        raise FileNotFoundError(f"--input {path}: no such file")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[:error.start].count(b"\n") + 1
        raise ValueError(f"--input {path}: expected UTF-8 text, got an undecodable byte on line {line}") from None
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def _stdin_lines():
    """Lines of stdin as str, decoded as UTF-8 (whatever the locale), without line ends."""
    for number, raw in enumerate(sys.stdin.buffer, start=1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError(f"stdin line {number}: expected UTF-8 text, got an undecodable byte") from None
        yield line.rstrip("\n").removesuffix("\r")


def _chunks(lines, size, flush_each=False):
    """Lists of up to `size` lines (one line per list when `flush_each`, for interactive use)."""
    chunk = []
    for line in lines:
        chunk.append(line)
        if flush_each or len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _write_atomically(path, text: str) -> None:
    """Writes `text` to a temporary file beside `path`, then renames it into place."""
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"--output {path}: directory {path.parent} does not exist")
    if path.is_dir():
        raise IsADirectoryError(f"--output {path}: expected a file path, got a directory")
    atomic_write_text(path, text)


class ProgressLine:
    """A one-line progress display on stderr: `label  37% 370/1000 lines  12.3 lines/s`.

    Redrawn in place (at most every 0.1 s) when stderr is a terminal; silent otherwise, except for
    the closing line `close` prints.
    """

    def __init__(self, total: int, label: str = "", stream=None):
        self.total, self.label, self.done = total, label, 0
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty()
        self.started = self.drawn = time.perf_counter()

    def advance(self, count: int) -> None:
        self.done += count
        now = time.perf_counter()
        if self.live and (now - self.drawn >= 0.1 or self.done >= self.total):
            self.drawn = now
            percent = 100 * self.done // max(self.total, 1)
            rate = self.done / max(now - self.started, 1e-9)
            self.stream.write(f"\r{self.label}  {percent:3d}% {self.done}/{self.total} lines  {rate:.1f} lines/s")
            self.stream.flush()

    def close(self, message: str) -> None:
        if self.live:
            self.stream.write("\r\033[K")
        print(message, file=self.stream)


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

        from serve import http_server
    except ImportError as error:
        missing = getattr(error, "name", None) or "starlette"
        raise RuntimeError(f"the serve command needs the HTTP extra ({missing} is not installed): "
                           f"{HTTP_EXTRA_HINT}") from None
    if not 0 <= args.port <= 65535:
        raise ValueError(f"--port: expected 0..65535, got {args.port}")
    from serve.translator import Translator

    translator = Translator(args.bundle, threads=args.threads)
    http_server.run_server(translator, host=args.host, port=args.port, workers=args.workers,
                           max_queue=args.max_queue)
    return 0
