"""Reading parallel corpora from a SPEC string (pure Python: no TensorFlow here).

A SPEC is one of:

    demo                      the built-in demo corpus (`keras_transformer.demo_corpus`), train split
    PATH.tsv                  column 1 = source, column 2 = target, further columns ignored; no header
    PATH.csv                  a header row; pass `source_column` and `target_column`; quoted fields work
    SOURCE_FILE,TARGET_FILE   two line-aligned plain-text files, one sentence a line

Training data may combine several SPECs (`read_corpora`), each with an optional `*N` suffix that
repeats its pairs N times in every epoch (`in-domain.tsv*3`): the usual way to give a small in-domain
corpus more weight than a large out-of-domain one (fairseq's upsampling, OpenNMT-tf's data weights).

Every side is NFC-normalized, its whitespace runs collapsed to one space and stripped. A pair with an
empty side (or a blank line) is skipped and counted in `CorpusStats.skipped_empty`, not an error.
Malformed input raises `CorpusError` naming the file, the line and "expected X, got Y".

`iter_parallel_corpus` is the one reader: it streams pairs (memory does not grow with the corpus) and
counts the bytes it reads, for a progress line's time left; `read_parallel_corpus` lists its pairs.

Example:
    >>> pairs, stats = read_parallel_corpus("../shared/data/en-hi/train.tsv", max_pairs=2)
    >>> pairs[0]
    ('He runs a company in Meguro.', 'वह मेगुरो में एक कंपनी चलाता है।')
"""

from __future__ import annotations

import csv
import os
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from keras_transformer.serve.atomic_files import atomic_write_text
from keras_transformer.serve.errors import KerasTransformerError, OptionError

ACCEPTED_FORMS = "'demo', a .tsv file, a .csv file (with source_column and target_column), or SOURCE_FILE,TARGET_FILE"


@dataclass
class CorpusStats:
    """Counts of what reading a corpus did.

    Attributes:
        read: records (lines, rows or line pairs) read.
        kept: pairs returned.
        skipped_empty: pairs dropped because a side was empty after normalization.
        skipped_too_long: pairs dropped for length by a later stage (the tokenizing pipeline);
            always 0 here.
    """

    read: int = 0
    kept: int = 0
    skipped_empty: int = 0
    skipped_too_long: int = 0


class CorpusError(KerasTransformerError, ValueError):
    """Malformed corpus input; the message names the file, the line and what was wrong."""


@dataclass
class ReadProgress:
    """Bytes of the input files read so far; with their total size (`corpus_files`), the fraction done."""

    bytes_read: int = 0


def normalize_text(text: str) -> str:
    """NFC, every whitespace run → one space, stripped."""
    return " ".join(unicodedata.normalize("NFC", text).split())


# ---------------------------------------------------------------------------- low-level reading


def _check_file(path: Path) -> None:
    if not path.exists():
        raise FileNotFoundError(f"corpus file not found: {path}")
    if path.is_dir():
        raise CorpusError(f"{path}: expected a file, got a directory")


def _read_lines(path: Path, progress: ReadProgress | None = None) -> Iterator[tuple[int, str]]:
    """Yields (line number from 1, decoded line with its line ending) of a UTF-8 file.

    Splits on "\\n" only (not on the other Unicode line separators), drops a leading BOM, and
    raises `CorpusError` naming the line of any byte that is not UTF-8. Adds each line's bytes to
    `progress.bytes_read`.
    """
    progress = ReadProgress() if progress is None else progress
    with open(path, "rb") as handle:
        for line_number, raw in enumerate(handle, start=1):
            progress.bytes_read += len(raw)
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                raise CorpusError(
                    f"{path}:{line_number}: expected UTF-8 text, got byte 0x{raw[error.start]:02x} "
                    f"at byte {error.start + 1} of the line"
                ) from None
            if line_number == 1 and line.startswith("\ufeff"):
                line = line[1:]
            yield line_number, line


def _strip_newline(line: str) -> str:
    return line.rstrip("\r\n")


# ---------------------------------------------------------------------------- one reader per form


def _tsv_pairs(path: Path, progress: ReadProgress) -> Iterator[tuple[str, str] | None]:
    """Yields (source, target), or None for a blank line."""
    for line_number, line in _read_lines(path, progress):
        line = _strip_newline(line)
        if not line.strip():
            yield None
            continue
        fields = line.split("\t")
        if len(fields) < 2:
            raise CorpusError(
                f"{path}:{line_number}: expected at least 2 tab-separated fields (source, target), "
                f"got {len(fields)}"
            )
        yield fields[0], fields[1]


def _csv_pairs(path: Path, source_column: str, target_column: str,
               progress: ReadProgress) -> Iterator[tuple[str, str] | None]:
    """Yields (source, target) from the named columns, or None for a blank row."""
    lines = (line for _, line in _read_lines(path, progress))
    reader = csv.reader(lines)
    try:
        header = next(reader, None)
        if header is None:
            raise CorpusError(f"{path}:1: expected a header row naming the columns, got an empty file")
        header = [name.strip() for name in header]
        missing = [name for name in (source_column, target_column) if name not in header]
        if missing:
            raise CorpusError(
                f"{path}:1: expected columns {missing} in the header, got columns {header}"
            )
        source_index = header.index(source_column)
        target_index = header.index(target_column)
        needed = max(source_index, target_index) + 1
        for row in reader:
            if not any(field.strip() for field in row):
                yield None
                continue
            if len(row) < needed:
                raise CorpusError(
                    f"{path}:{reader.line_num}: expected at least {needed} comma-separated fields "
                    f"(up to column {header[needed - 1]!r}), got {len(row)}"
                )
            yield row[source_index], row[target_index]
    except csv.Error as error:
        raise CorpusError(f"{path}:{reader.line_num}: expected well-formed CSV, got {error}") from None


def _count_lines(path: Path) -> int:
    """Lines in a file, a last line without a line ending included."""
    count = 0
    last = b"\n"
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            count += block.count(b"\n")
            last = block[-1:]
    return count + (last != b"\n")


def _line_aligned_pairs(source_path: Path, target_path: Path, progress: ReadProgress) -> Iterator[tuple[str, str]]:
    """Yields (source line, target line); first checks that both files have as many lines."""
    source_count, target_count = _count_lines(source_path), _count_lines(target_path)
    if source_count != target_count:
        raise CorpusError(
            f"{source_path} and {target_path}: expected line-aligned files with equal line counts, "
            f"got {source_count} and {target_count} lines"
        )
    for (_, source), (_, target) in zip(_read_lines(source_path, progress), _read_lines(target_path, progress)):
        yield _strip_newline(source), _strip_newline(target)


def _demo_pairs() -> list[tuple[str, str]]:
    from keras_transformer.demo_corpus import generate_demo_corpus  # lazy: only `demo` needs it

    return list(generate_demo_corpus(seed=0).train)


# ---------------------------------------------------------------------------- public API


def _parse_spec(spec: str, source_column: str | None, target_column: str | None) -> tuple[str, list[Path]]:
    """(form, files) of a SPEC: form is "demo", "aligned", "tsv" or "csv"; checks that the files exist."""
    if not isinstance(spec, str) or not spec.strip():
        raise OptionError(f"expected a corpus SPEC ({ACCEPTED_FORMS}), got {spec!r}")
    spec = spec.strip()
    suffix = Path(spec).suffix.lower()
    if spec == "demo":
        return "demo", []
    if "," in spec and not os.path.exists(spec):
        parts = [part.strip() for part in spec.split(",")]
        if len(parts) != 2 or not all(parts):
            raise OptionError(
                f"expected SOURCE_FILE,TARGET_FILE (exactly one comma) or another form ({ACCEPTED_FORMS}), "
                f"got {spec!r}"
            )
        paths = [Path(parts[0]), Path(parts[1])]
        form = "aligned"
    elif suffix == ".tsv":
        paths, form = [Path(spec)], "tsv"
    elif suffix == ".csv":
        if source_column is None or target_column is None:
            raise OptionError(
                f"expected source_column and target_column for the .csv SPEC {spec!r}, "
                f"got source_column={source_column!r}, target_column={target_column!r}"
            )
        paths, form = [Path(spec)], "csv"
    else:
        raise OptionError(f"expected a corpus SPEC ({ACCEPTED_FORMS}), got {spec!r}")
    for path in paths:
        _check_file(path)
    return form, paths


def corpus_files(spec: str, source_column: str | None = None, target_column: str | None = None) -> list[Path]:
    """The files a SPEC reads (none for `demo`), e.g. to hash them or to sum their sizes for progress.

    Raises what `iter_parallel_corpus` raises for an unrecognized SPEC or a missing file.
    """
    return _parse_spec(spec, source_column, target_column)[1]


def iter_parallel_corpus(
    spec: str,
    source_column: str | None = None,
    target_column: str | None = None,
    max_pairs: int | None = None,
    stats: CorpusStats | None = None,
    progress: ReadProgress | None = None,
) -> Iterator[tuple[str, str]]:
    """Streams (source, target) sentence pairs from a SPEC (see the module docstring), one at a time.

    The SPEC and arguments are checked at the call; the content as it is read. Args as
    `read_parallel_corpus`, and:
        stats: updated as pairs are read (`read`, `kept`, `skipped_empty`), so a caller sees the
            counts of a stream it has not finished.
        progress: `bytes_read` grows by the bytes of the lines read.

    Yields:
        Pairs, normalized, no side empty, in file order.
    """
    if max_pairs is not None and (isinstance(max_pairs, bool) or not isinstance(max_pairs, int) or max_pairs < 0):
        raise OptionError(f"expected max_pairs to be None or an integer >= 0, got {max_pairs!r}")
    form, paths = _parse_spec(spec, source_column, target_column)
    progress = ReadProgress() if progress is None else progress
    records: Iterable[tuple[str, str] | None]
    if form == "demo":
        records = _demo_pairs()
    elif form == "aligned":
        records = _line_aligned_pairs(paths[0], paths[1], progress)
    elif form == "tsv":
        records = _tsv_pairs(paths[0], progress)
    else:
        records = _csv_pairs(paths[0], source_column, target_column, progress)
    return _normalized_pairs(records, max_pairs, CorpusStats() if stats is None else stats)


def _normalized_pairs(records: Iterable[tuple[str, str] | None], max_pairs: int | None,
                      stats: CorpusStats) -> Iterator[tuple[str, str]]:
    if max_pairs == 0:
        return
    kept = 0
    for record in records:
        stats.read += 1
        source, target = ("", "") if record is None else (normalize_text(record[0]), normalize_text(record[1]))
        if not source or not target:
            stats.skipped_empty += 1
            continue
        stats.kept += 1
        kept += 1
        yield source, target
        if max_pairs is not None and kept >= max_pairs:
            return


def read_parallel_corpus(
    spec: str,
    source_column: str | None = None,
    target_column: str | None = None,
    max_pairs: int | None = None,
) -> tuple[list[tuple[str, str]], CorpusStats]:
    """Reads (source, target) sentence pairs from a SPEC (see the module docstring) into a list.

    Args:
        spec: `demo`, `PATH.tsv`, `PATH.csv` or `SOURCE_FILE,TARGET_FILE`.
        source_column: the source column's header name; required for `.csv`, ignored otherwise
            (so one pair of CLI options can serve a `.csv` --data and a `.tsv` --valid).
        target_column: the target column's header name; as `source_column`.
        max_pairs: stop after this many kept pairs (None: read everything).

    Returns:
        The pairs (normalized, none empty) and the counts of what was read and skipped.

    Raises:
        FileNotFoundError: a file of the SPEC does not exist.
        CorpusError: malformed content (too few fields, missing columns, bad UTF-8, line counts
            that differ); the message names the file and line.
        OptionError (a ValueError): an unrecognized SPEC or a bad argument.
    """
    stats = CorpusStats()
    pairs = list(iter_parallel_corpus(spec, source_column, target_column, max_pairs, stats))
    return pairs, stats


REPEAT_SUFFIX = re.compile(r"^(?P<spec>.+)\*(?P<times>[0-9]+)$")


def split_repeat(spec: str) -> tuple[str, int]:
    """`"PATH.tsv*3"` -> `("PATH.tsv", 3)`; a SPEC without a `*N` suffix repeats once."""
    match = REPEAT_SUFFIX.match(spec.strip()) if isinstance(spec, str) else None
    if match is None:
        return spec, 1
    times = int(match["times"])
    if times < 1:
        raise OptionError(f"{spec!r}: expected a repeat count of at least 1 after '*', got {times}")
    return match["spec"], times


def read_corpora(specs: list[str], source_column: str | None = None, target_column: str | None = None,
                 max_pairs: int | None = None, at_most: int | None = None,
                 ) -> tuple[list[tuple[str, str]], list[tuple[str, int, CorpusStats]]]:
    """Reads and concatenates several SPECs into memory, each optionally suffixed `*N` (its pairs N times).

    `max_pairs` applies to each SPEC before it is repeated. `at_most` bounds the pairs held (repeats
    included): reading stops with an OptionError as soon as there would be more. Returns the pairs and,
    per SPEC, its name without the suffix, its repeat count and its `CorpusStats`.
    """
    pairs: list[tuple[str, str]] = []
    sources = []
    for spec in specs:
        name, times = split_repeat(spec)
        stats, read = CorpusStats(), []
        for pair in iter_parallel_corpus(name, source_column, target_column, max_pairs, stats):
            read.append(pair)
            if at_most is not None and len(pairs) + len(read) * times > at_most:
                raise OptionError(f"{name}: expected at most {at_most:,} training pairs in memory, got more")
        pairs.extend(read * times)
        sources.append((name, times, stats))
    return pairs, sources


@dataclass(frozen=True)
class TrainingCorpora:
    """Training SPECs to read, each optionally `SPEC*N`, as `train --data` names them: training prepares
    them into its run directory first (keras_transformer/prepare.py), so memory does not grow with them."""

    specs: tuple[str, ...]
    source_column: str | None = None
    target_column: str | None = None
    max_pairs: int | None = None


def write_tsv(pairs: Iterable[tuple[str, str]], path: str | os.PathLike) -> None:
    """Writes pairs as `source<TAB>target` lines (UTF-8), atomically: a temporary file, then `os.replace`.

    Raises:
        OptionError (a ValueError): a side holds a tab or a line break (the file could not be read back as pairs).
        FileNotFoundError: the directory of `path` does not exist.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"cannot write {path}: directory {path.parent} does not exist")
    lines = []
    for index, pair in enumerate(pairs):
        if len(pair) != 2:
            raise OptionError(f"pair {index}: expected (source, target), got {len(pair)} items")
        for side in pair:
            if "\t" in side or "\n" in side or "\r" in side:
                raise OptionError(f"pair {index}: expected no tab or line break in a TSV field, got {side!r}")
        lines.append(f"{pair[0]}\t{pair[1]}\n")
    atomic_write_text(path, "".join(lines))
