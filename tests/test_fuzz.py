"""Property-based tests (hypothesis): the corpus readers on random files, `Translator.translate` on
random strings. Bounded: few examples, no deadline; the whole file runs in well under a minute.

Corpus property: `read_parallel_corpus` returns pairs whose sides are non-empty, NFC, whitespace-
collapsed str with counts that add up, or raises CorpusError / FileNotFoundError / ValueError whose
message names the file; never another exception. On well-formed files (written by `csv.writer`, or
tab/newline-free fields) it returns exactly the normalized non-empty pairs.

Translator property: any list of str (surrogates, controls, emoji, RTL, combining marks, NUL, very
long strings) gives a list of str of the same length, "" for blank texts, each text translated as
it would be alone.
"""

import csv
import io
import unicodedata
import warnings

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, event, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from keras_transformer.corpus import CorpusError, normalize_text, read_parallel_corpus  # noqa: E402

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                        HealthCheck.too_slow,
                                                                        HealthCheck.data_too_large])

# Separators and line ends that look like (or are) field/line breaks to some reader but not ours.
ODD = ["\t", "\t\t", "\r\n", "\r", "\n", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x1f", "\x85", "\u2028",
       "\u2029", "\x00", "\ufeff", ",", '"', '""', "'", " ", "\u00a0", "\u3000", "e\u0301", "\u0301", "\u202e",
       "שלום", "مرحبا", "\U0001F600", "\U0001F469\u200d\U0001F4BB", "\ufffd", "ﬁ", "Å", "\u212b"]


class Long(str):
    """A very long str whose repr stays short (hypothesis prints failing examples)."""

    def __repr__(self):
        return f"Long({str.__repr__(self[:12])} ... {len(self)} chars)"


LONG = [Long("x" * 100_000), Long("ab \u0301\t" * 25_000), Long("\U0001F600" * 30_000), Long(" " * 100_000)]
LONG_CLEAN = [Long("x" * 100_000), Long("ab \u0301 " * 20_000)]  # no tab, no line break
LINE_ENDS = ["\n", "\r\n", "\r", "\x0b", "\x1c", "\u2028", "\x85", ""]

# Any code point that UTF-8 can hold (lone surrogates cannot be written as UTF-8).
unicode_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=30)
piece = st.one_of(unicode_text, st.sampled_from(ODD))
field = st.lists(piece, max_size=4).map("".join)
long_field = st.one_of(field, field, field, field, field, field, field, st.sampled_from(LONG))


quoted_field = long_field.map(lambda text: '"' + text.replace('"', '""') + '"')  # CSV-quoted


@st.composite
def text_lines(draw, separators=("\t", "\t\t", ",", ";", "\x1f", ""), fields=long_field, line_ends=LINE_ENDS):
    """Lines of 0-4 fields joined by an odd separator, each with its own line end."""
    lines = []
    for _ in range(draw(st.integers(0, 6))):
        separator = draw(st.sampled_from(separators))
        values = draw(st.lists(fields, max_size=4))
        lines.append(separator.join(values) + draw(st.sampled_from(line_ends)))
    return "".join(lines)


csv_lines = text_lines(separators=(",", ",", ",", ";", "\t"),
                       fields=st.one_of(st.text(max_size=12), st.text(max_size=12), quoted_field, long_field),
                       line_ends=("\n", "\n", "\r\n", "\r", "\u2028", ""))


file_bytes = st.one_of(
    text_lines().map(lambda text: text.encode("utf-8")),
    text_lines().map(lambda text: text.encode("utf-8")),
    st.binary(max_size=200),  # raw bytes: mostly not UTF-8
    st.tuples(text_lines(), st.binary(max_size=8), text_lines()).map(  # valid text with a bad byte inside
        lambda parts: parts[0].encode("utf-8") + parts[1] + parts[2].encode("utf-8")),
    text_lines().map(lambda text: b"\xef\xbb\xbf" + text.encode("utf-8")),  # UTF-8 BOM
    text_lines().map(lambda text: text.encode("utf-16")),
)


def write(path, data: bytes):
    path.write_bytes(data)
    return path


def check_result(result, max_pairs=None):
    """The success half of the property: clean pairs, counts that add up."""
    pairs, stats = result
    assert isinstance(pairs, list)
    for pair in pairs:
        assert isinstance(pair, tuple) and len(pair) == 2
        for side in pair:
            assert isinstance(side, str) and side
            assert unicodedata.is_normalized("NFC", side), ascii(side[:80])
            assert side == normalize_text(side) and side == side.strip()
            assert not any(ch in side for ch in "\t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\u2028\u2029")
    assert stats.kept == len(pairs)
    assert stats.read == stats.kept + stats.skipped_empty
    assert stats.skipped_too_long == 0
    if max_pairs is not None:
        assert len(pairs) <= max_pairs


def read_or_error(spec, names, max_pairs=None, **columns):
    """Reads `spec`; returns the result, or None after checking that the error is an allowed one
    whose message names one of `names` (file paths)."""
    try:
        result = read_parallel_corpus(spec, max_pairs=max_pairs, **columns)
    except (CorpusError, FileNotFoundError, ValueError) as error:
        event(f"raised {type(error).__name__}")
        message = str(error)
        assert any(str(name) in message for name in names), message[:300]
        return None
    check_result(result, max_pairs)
    event(f"read {'no' if not result[0] else 'some'} pairs")
    return result


# --- any bytes in, pairs or a named error out ------------------------------------------------------


@FUZZ
@given(data=file_bytes, max_pairs=st.one_of(st.none(), st.integers(0, 3)))
def test_tsv_any_bytes(tmp_path, data, max_pairs):
    path = write(tmp_path / "corpus.tsv", data)
    read_or_error(str(path), [path], max_pairs=max_pairs)


@FUZZ
@given(data=st.one_of(file_bytes, csv_lines.map(lambda text: text.encode("utf-8"))),
       header=st.sampled_from([b"src,tgt\n", b"tgt,x,src\r\n", b'"src","tgt"\n', b"src\n", b""]),
       max_pairs=st.one_of(st.none(), st.integers(0, 3)))
def test_csv_any_bytes(tmp_path, data, header, max_pairs):
    path = write(tmp_path / "corpus.csv", header + data)
    read_or_error(str(path), [path], max_pairs=max_pairs, source_column="src", target_column="tgt")


@FUZZ
@given(source=file_bytes, target=file_bytes, missing=st.sampled_from([None] * 8 + ["source", "target"]))
def test_line_aligned_any_bytes(tmp_path, source, target, missing):
    source_path = write(tmp_path / "train.en", source)
    target_path = write(tmp_path / "train.hi", target)
    if missing == "source":
        source_path.unlink()
    elif missing == "target":
        target_path.unlink()
    result = read_or_error(f"{source_path},{target_path}", [source_path, target_path])
    if missing:
        assert result is None


# --- well-formed files: exactly the normalized pairs -----------------------------------------------

# No NUL (csv rejects it), no BOM (stripped from the first line by design), no surrogates.
clean_char = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\ufeff")
short_clean_field = st.one_of(
    st.text(alphabet=clean_char, max_size=20),
    st.lists(st.sampled_from([p for p in ODD if p not in ("\x00", "\ufeff")]), max_size=4).map("".join))
clean_field = st.one_of(short_clean_field, short_clean_field, st.sampled_from(LONG_CLEAN))


def expected_pairs(rows):
    out = []
    for source, target in rows:
        source, target = normalize_text(source), normalize_text(target)
        if source and target:
            out.append((source, target))
    return out


@FUZZ
@given(rows=st.lists(st.tuples(clean_field, clean_field, clean_field), max_size=6),
       dialect=st.sampled_from([("\r\n", csv.QUOTE_MINIMAL), ("\n", csv.QUOTE_ALL), ("\r\n", csv.QUOTE_ALL)]))
def test_csv_written_by_csv_writer_round_trips(tmp_path, rows, dialect):
    # Not ("\n", QUOTE_MINIMAL): csv.writer then leaves a "\r" inside a field unquoted, which no
    # CSV reader (Python's included) reads back as written.
    line_end, quoting = dialect
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator=line_end, quoting=quoting)
    writer.writerow(["id", "tgt", "src"])
    writer.writerows([(extra, target, source) for source, target, extra in rows])
    path = write(tmp_path / "corpus.csv", buffer.getvalue().encode("utf-8"))
    try:
        pairs, stats = read_parallel_corpus(str(path), source_column="src", target_column="tgt")
    except CorpusError as error:
        # The one documented refusal of well-formed CSV: a field over csv's field size limit.
        assert "field larger than field limit" in str(error) and str(path) in str(error)
        assert any(len(value) > csv.field_size_limit() for row in rows for value in row)
        return
    check_result((pairs, stats))
    assert pairs == expected_pairs([(s, t) for s, t, _ in rows])
    assert stats.read == len(rows)


tsv_field = st.one_of(short_clean_field.map(lambda text: text.replace("\t", " ").replace("\n", " ")),
                      short_clean_field.map(lambda text: text.replace("\t", " ").replace("\n", " ")),
                      st.sampled_from(LONG_CLEAN))


@FUZZ
@given(rows=st.lists(st.tuples(tsv_field, tsv_field, tsv_field), max_size=6),
       line_end=st.sampled_from(["\n", "\r\n"]), final_newline=st.booleans())
def test_tsv_and_line_aligned_clean_files_round_trip(tmp_path, rows, line_end, final_newline):
    def lines(values):
        return (line_end.join(values) + (line_end if final_newline and values else "")).encode("utf-8")

    tsv = write(tmp_path / "corpus.tsv", lines([f"{s}\t{t}\t{x}" for s, t, x in rows]))
    pairs, stats = read_parallel_corpus(str(tsv))
    check_result((pairs, stats))
    assert pairs == expected_pairs([(s, t) for s, t, _ in rows])

    # Every line ended here: a file's unterminated empty last line is no line at all.
    source = write(tmp_path / "src.txt", "".join(s + line_end for s, _, _ in rows).encode("utf-8"))
    target = write(tmp_path / "tgt.txt", "".join(t + line_end for _, t, _ in rows).encode("utf-8"))
    aligned, aligned_stats = read_parallel_corpus(f"{source},{target}")
    check_result((aligned, aligned_stats))
    assert aligned == pairs


# --- Translator.translate on any strings -----------------------------------------------------------


@pytest.fixture(scope="module")
def fuzz_translator(tiny_bundle):
    from keras_transformer.serve import Translator

    return Translator(tiny_bundle, threads=1)


any_char = st.characters(blacklist_categories=())  # every category, lone surrogates included
SPECIAL_TEXTS = ["", " ", "\x00", "\ud800", "\udfff lone", "a\ud83d", "\U0001F600\U0001F469\u200d\U0001F4BB",
                 "שלום עולם", "مرحبا بالعالم", "\u202eI sit.", "e\u0301\u0301\u0301", "Z\u0336\u0335\u0334",
                 "I sit. " * 500, "x" * 20_000, "\t\n\r\x0b\x1c\u2028", "[UNK] <pad> </s>", "I sit."]
translator_text = st.one_of(st.text(alphabet=any_char, max_size=40), st.text(max_size=10),
                            st.sampled_from(SPECIAL_TEXTS))


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts=st.lists(translator_text, max_size=8), beam_size=st.sampled_from([1, 1, 2]))
def test_translate_any_strings(fuzz_translator, texts, beam_size):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = fuzz_translator.translate(texts, beam_size=beam_size, max_length=8)
        alone = [fuzz_translator.translate([text], beam_size=beam_size, max_length=8)[0] for text in texts]
    assert isinstance(out, list) and len(out) == len(texts)
    assert all(isinstance(text, str) for text in out)
    for text, translation in zip(texts, out):
        if not text.strip():
            assert translation == ""
        translation.encode("utf-8")  # valid Unicode: no surrogates leak out
    assert out == alone  # a sentence's translation does not depend on its batch
