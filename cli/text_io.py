"""Reading and writing the text of `keras-transformer translate`: input lines, atomic output, progress.

Lines are UTF-8 whatever the locale; a final newline adds no line; output keeps one translation per
line; `--output` is written to a temporary file and renamed into place.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from keras_transformer.serve.atomic_files import atomic_write_text
from keras_transformer.serve.errors import OptionError


def one_line(text: str) -> str:
    """Keeps one translation per output line whatever the detokenizer produced."""
    return text.replace("\r", " ").replace("\n", " ")


def read_lines(path) -> list[str]:
    """The lines of UTF-8 file `path`, without line ends ("\\n" or "\\r\\n"); a final newline adds no line."""
    path = Path(path)
    if path.is_dir():
        raise OptionError(f"--input {path}: expected a text file, got a directory")
    if not path.exists():
        raise FileNotFoundError(f"--input {path}: no such file")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[:error.start].count(b"\n") + 1
        raise OptionError(f"--input {path}: expected UTF-8 text, got an undecodable byte on line {line}") from None
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def stdin_lines():
    """Lines of stdin as str, decoded as UTF-8 (whatever the locale), without line ends."""
    for number, raw in enumerate(sys.stdin.buffer, start=1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise OptionError(f"stdin line {number}: expected UTF-8 text, got an undecodable byte") from None
        yield line.rstrip("\n").removesuffix("\r")


def chunks(lines, size, flush_each=False):
    """Lists of up to `size` lines (one line per list when `flush_each`, for interactive use)."""
    chunk = []
    for line in lines:
        chunk.append(line)
        if flush_each or len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def write_atomically(path, text: str) -> None:
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
