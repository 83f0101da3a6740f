"""Reading and writing the text of `keras-transformer translate`: input lines, output files.

Lines are UTF-8 whatever the locale; a final newline adds no line; output keeps one translation per
line. An --input file is read as a stream; its --output is written as translations are done (and
`complete_outputs` finds where an interrupted one stopped); other --output is written to a temporary
file and renamed into place.
"""

from __future__ import annotations

import sys
from pathlib import Path

from keras_transformer.serve.atomic_files import atomic_write_text
from keras_transformer.serve.errors import OptionError


def one_line(text: str) -> str:
    """Keeps one translation per output line whatever the detokenizer produced."""
    return text.replace("\r", " ").replace("\n", " ")


def iter_lines(path):
    """The lines of UTF-8 file `path`, read as a stream, without line ends ("\\n" or "\\r\\n"); a leading BOM
    is dropped and a final newline adds no line."""
    path = _input_file(path)
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError:
                raise OptionError(f"--input {path}: expected UTF-8 text, got an undecodable byte on line "
                                  f"{number}") from None
            yield line.removesuffix("\n").removesuffix("\r")


def count_lines(path) -> int:
    """Lines in `path` (a last line without a newline counts), counted in 1 MiB blocks."""
    count, last = 0, b"\n"
    with open(_input_file(path), "rb") as handle:
        while block := handle.read(1 << 20):
            count += block.count(b"\n")
            last = block[-1:]
    return count + (last != b"\n")


def _input_file(path) -> Path:
    path = Path(path)
    if path.is_dir():
        raise OptionError(f"--input {path}: expected a text file, got a directory")
    if not path.exists():
        raise FileNotFoundError(f"--input {path}: no such file")
    return path


def complete_outputs(path, lines_per_input: int) -> int:
    """How many inputs `path` holds the translations of (`lines_per_input` complete lines each), after
    cutting what an interruption left half-written; 0 when it does not exist."""
    path = Path(path)
    if not path.exists():
        return 0
    lines, keep, offset = 0, 0, 0  # complete lines; bytes up to the last complete input
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            start = 0
            while (end := block.find(b"\n", start)) != -1:
                lines += 1
                if lines % lines_per_input == 0:
                    keep = offset + end + 1
                start = end + 1
            offset += len(block)
    with open(path, "r+b") as handle:
        handle.truncate(keep)
    return lines // lines_per_input


def check_output_path(path) -> None:
    """--output must be a file in an existing directory."""
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"--output {path}: directory {path.parent} does not exist")
    if path.is_dir():
        raise IsADirectoryError(f"--output {path}: expected a file path, got a directory")


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
    check_output_path(path)
    atomic_write_text(path, text)
