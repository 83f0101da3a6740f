"""Tests of the parallel-corpus reader: every SPEC form, every error message, normalization."""

import os
import sys
import types
import unicodedata
from pathlib import Path

import pytest

from keras_transformer.corpus import (
    CorpusError,
    CorpusStats,
    read_corpora,
    read_parallel_corpus,
    split_repeat,
    write_tsv,
)

DATA_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def write(path: Path, text: str) -> Path:
    path.write_bytes(text.encode("utf-8"))
    return path


# ---------------------------------------------------------------------------- .tsv


def test_tsv_reads_two_columns_and_ignores_the_rest(tmp_path):
    path = write(tmp_path / "c.tsv", "Hello.\tनमस्ते।\textra\tmore\nHow are you?\tWie geht's?\n")
    pairs, stats = read_parallel_corpus(str(path))
    assert pairs == [("Hello.", "नमस्ते।"), ("How are you?", "Wie geht's?")]
    assert stats == CorpusStats(read=2, kept=2, skipped_empty=0, skipped_too_long=0)


def test_tsv_keeps_quotes_and_commas_literally(tmp_path):
    path = write(tmp_path / "c.tsv", '"Yes," he said.\t"Ja", sagte er.\n')
    assert read_parallel_corpus(str(path))[0] == [('"Yes," he said.', '"Ja", sagte er.')]


def test_tsv_crlf_bom_and_no_final_newline(tmp_path):
    path = tmp_path / "c.tsv"
    path.write_bytes("\ufeffa\tb\r\nc\td".encode("utf-8"))
    assert read_parallel_corpus(str(path))[0] == [("a", "b"), ("c", "d")]


def test_tsv_too_few_fields(tmp_path):
    path = write(tmp_path / "short.tsv", "a\tb\nonly one field\n")
    with pytest.raises(CorpusError, match=r"short\.tsv:2: expected at least 2 tab-separated fields .*, got 1"):
        read_parallel_corpus(str(path))


def test_empty_sides_and_blank_lines_are_skipped_and_counted(tmp_path):
    path = write(tmp_path / "c.tsv", "a\tb\n\t\n  \tx\ny\t \n\nc\td\n")
    pairs, stats = read_parallel_corpus(str(path))
    assert pairs == [("a", "b"), ("c", "d")]
    assert stats == CorpusStats(read=6, kept=2, skipped_empty=4, skipped_too_long=0)


def test_nfc_and_whitespace_normalization(tmp_path):
    decomposed = unicodedata.normalize("NFD", "Straße über Köln")
    assert decomposed != "Straße über Köln"
    path = write(tmp_path / "c.tsv", f"  {decomposed}   again \tहै\u00a0।  \n")
    pairs, _ = read_parallel_corpus(str(path))
    assert pairs == [("Straße über Köln again", "है ।")]
    assert unicodedata.is_normalized("NFC", pairs[0][0])


def test_max_pairs_counts_kept_pairs(tmp_path):
    path = write(tmp_path / "c.tsv", "a\tb\n\tx\nc\td\ne\tf\n")
    pairs, stats = read_parallel_corpus(str(path), max_pairs=2)
    assert pairs == [("a", "b"), ("c", "d")]
    assert (stats.read, stats.kept, stats.skipped_empty) == (3, 2, 1)
    assert read_parallel_corpus(str(path), max_pairs=0)[0] == []


def test_max_pairs_must_be_a_non_negative_integer(tmp_path):
    path = write(tmp_path / "c.tsv", "a\tb\n")
    with pytest.raises(ValueError, match=r"expected max_pairs to be None or an integer >= 0, got -1"):
        read_parallel_corpus(str(path), max_pairs=-1)


def test_non_utf8_names_file_and_line(tmp_path):
    path = tmp_path / "latin1.tsv"
    path.write_bytes("ok\tgut\n".encode() + "café\tKaffee\n".encode("latin-1"))
    with pytest.raises(CorpusError, match=r"latin1\.tsv:2: expected UTF-8 text, got byte 0xe9"):
        read_parallel_corpus(str(path))


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"corpus file not found: .*absent\.tsv"):
        read_parallel_corpus(str(tmp_path / "absent.tsv"))


def test_unknown_form(tmp_path):
    path = write(tmp_path / "c.txt", "a\tb\n")
    with pytest.raises(ValueError, match=r"expected a corpus SPEC \('demo', a \.tsv file, a \.csv file "
                                         r".*SOURCE_FILE,TARGET_FILE\), got '.*c\.txt'"):
        read_parallel_corpus(str(path))


# ---------------------------------------------------------------------------- .csv


def test_csv_with_quoted_commas_and_newlines(tmp_path):
    text = ('id,english,german\n1,"Yes, sir.","Ja, mein Herr."\n'
            '2,"He said ""hi""","Er sagte ""hallo"""\n3,"two\nlines",zwei\n')
    path = write(tmp_path / "c.csv", text)
    pairs, stats = read_parallel_corpus(str(path), source_column="english", target_column="german")
    assert pairs == [("Yes, sir.", "Ja, mein Herr."), ('He said "hi"', 'Er sagte "hallo"'), ("two lines", "zwei")]
    assert stats.read == 3 and stats.kept == 3


def test_csv_column_order_is_free(tmp_path):
    path = write(tmp_path / "c.csv", "hi,en\nनमस्ते,hello\n")
    assert read_parallel_corpus(str(path), source_column="en", target_column="hi")[0] == [("hello", "नमस्ते")]


def test_csv_needs_column_names(tmp_path):
    path = write(tmp_path / "c.csv", "en,de\na,b\n")
    with pytest.raises(ValueError,
                       match=r"expected source_column and target_column for the \.csv SPEC .*got source_column=None"):
        read_parallel_corpus(str(path))


def test_csv_missing_column_lists_available_ones(tmp_path):
    path = write(tmp_path / "c.csv", "english,german\na,b\n")
    with pytest.raises(CorpusError, match=r"c\.csv:1: expected columns \['hindi'\] in the header, "
                                          r"got columns \['english', 'german'\]"):
        read_parallel_corpus(str(path), source_column="english", target_column="hindi")


def test_csv_short_row(tmp_path):
    path = write(tmp_path / "c.csv", "id,en,de\n1,a,b\n2,c\n")
    with pytest.raises(CorpusError, match=r"c\.csv:3: expected at least 3 comma-separated fields .*'de'.*, got 2"):
        read_parallel_corpus(str(path), source_column="en", target_column="de")


def test_csv_empty_file(tmp_path):
    path = write(tmp_path / "empty.csv", "")
    with pytest.raises(CorpusError, match=r"empty\.csv:1: expected a header row naming the columns, got an empty file"):
        read_parallel_corpus(str(path), source_column="en", target_column="de")


def test_csv_non_utf8(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_bytes(b"en,de\na,b\nc,\xff\n")
    with pytest.raises(CorpusError, match=r"bad\.csv:3: expected UTF-8 text, got byte 0xff"):
        read_parallel_corpus(str(path), source_column="en", target_column="de")


def test_columns_are_ignored_for_other_forms(tmp_path):
    path = write(tmp_path / "c.tsv", "a\tb\n")
    assert read_parallel_corpus(str(path), source_column="en", target_column="de")[0] == [("a", "b")]


# ---------------------------------------------------------------------------- SOURCE_FILE,TARGET_FILE


def test_line_aligned_files(tmp_path):
    source = write(tmp_path / "train.en", "Hello.\n\nHow are you?\n")
    target = write(tmp_path / "train.hi", "नमस्ते।\nखाली\nआप कैसे हैं?")
    pairs, stats = read_parallel_corpus(f"{source},{target}")
    assert pairs == [("Hello.", "नमस्ते।"), ("How are you?", "आप कैसे हैं?")]
    assert stats == CorpusStats(read=3, kept=2, skipped_empty=1, skipped_too_long=0)


def test_line_aligned_files_with_different_counts(tmp_path):
    source = write(tmp_path / "a.en", "1\n2\n3\n")
    target = write(tmp_path / "a.de", "1\n2\n")
    with pytest.raises(CorpusError, match=r"a\.en and .*a\.de: expected line-aligned files with equal line counts, "
                                          r"got 3 and 2 lines"):
        read_parallel_corpus(f"{source},{target}", max_pairs=1)


def test_line_aligned_missing_file(tmp_path):
    source = write(tmp_path / "a.en", "1\n")
    with pytest.raises(FileNotFoundError, match=r"corpus file not found: .*gone\.de"):
        read_parallel_corpus(f"{source},{tmp_path / 'gone.de'}")


def test_line_aligned_non_utf8(tmp_path):
    source = write(tmp_path / "a.en", "1\n2\n")
    target = tmp_path / "a.de"
    target.write_bytes(b"eins\nzw\xc3\n")
    with pytest.raises(CorpusError, match=r"a\.de:2: expected UTF-8 text"):
        read_parallel_corpus(f"{source},{target}")


def test_three_files_is_not_a_form(tmp_path):
    with pytest.raises(ValueError, match=r"expected SOURCE_FILE,TARGET_FILE \(exactly one comma\)"):
        read_parallel_corpus("a.en,b.de,c.fr")


def test_a_tsv_whose_name_has_a_comma(tmp_path):
    path = write(tmp_path / "en,de.tsv", "a\tb\n")
    assert read_parallel_corpus(str(path))[0] == [("a", "b")]


# ---------------------------------------------------------------------------- demo


def test_demo_uses_the_demo_corpus_train_split(monkeypatch):
    calls = []

    def generate_demo_corpus(seed=0, max_train_pairs=None, max_test_pairs=1000):
        calls.append(seed)
        return types.SimpleNamespace(train=[("a  b", "c"), ("", "x"), ("d", "e")], test=[("t", "u")])

    fake = types.ModuleType("keras_transformer.demo_corpus")
    fake.generate_demo_corpus = generate_demo_corpus
    monkeypatch.setitem(sys.modules, "keras_transformer.demo_corpus", fake)
    pairs, stats = read_parallel_corpus("demo")
    assert calls == [0]
    assert pairs == [("a b", "c"), ("d", "e")]
    assert stats == CorpusStats(read=3, kept=2, skipped_empty=1, skipped_too_long=0)


# ---------------------------------------------------------------------------- several SPECs, repeats


def test_several_specs_are_concatenated_in_order_and_star_n_repeats_one(tmp_path):
    small = write(tmp_path / "in.tsv", "a\tA\nb\tB\n")
    large = write(tmp_path / "out.tsv", "c\tC\n\td\n")
    pairs, sources = read_corpora([f"{small}*3", str(large)])
    assert pairs == [("a", "A"), ("b", "B")] * 3 + [("c", "C")]
    assert [(name, times, stats.kept, stats.skipped_empty) for name, times, stats in sources] == [
        (str(small), 3, 2, 0), (str(large), 1, 1, 1)]
    assert read_corpora([f"{small}*2"], max_pairs=1)[0] == [("a", "A")] * 2  # max_pairs before repeating


def test_repeat_suffix_forms_and_errors(tmp_path):
    assert split_repeat("a.tsv*12") == ("a.tsv", 12)
    assert split_repeat("a.tsv") == ("a.tsv", 1)
    assert split_repeat("src.txt,tgt.txt*2") == ("src.txt,tgt.txt", 2)
    with pytest.raises(ValueError, match=r"'a.tsv\*0': expected a repeat count of at least 1"):
        split_repeat("a.tsv*0")
    with pytest.raises(ValueError, match="expected a corpus SPEC"):  # not a count: the whole string is the SPEC
        read_corpora(["a.tsv*x"])


# ---------------------------------------------------------------------------- write_tsv


def test_write_tsv_round_trip(tmp_path):
    pairs = [("Hello, world.", "नमस्ते, दुनिया।"), ('"Quoted"', "Straße")]
    path = tmp_path / "test.tsv"
    path.write_text("old content\n", encoding="utf-8")
    write_tsv(pairs, path)
    assert [p.name for p in tmp_path.iterdir()] == ["test.tsv"]  # no temporary left behind
    assert read_parallel_corpus(str(path)) == (pairs, CorpusStats(read=2, kept=2, skipped_empty=0))
    assert oct(os.stat(path).st_mode & 0o777) == oct(0o644)


def test_write_tsv_rejects_tabs_and_newlines(tmp_path):
    with pytest.raises(ValueError, match=r"pair 1: expected no tab or line break in a TSV field"):
        write_tsv([("a", "b"), ("c\td", "e")], tmp_path / "x.tsv")
    assert not any(tmp_path.iterdir())


def test_write_tsv_missing_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"directory .*nowhere does not exist"):
        write_tsv([("a", "b")], tmp_path / "nowhere" / "x.tsv")


# ---------------------------------------------------------------------------- real data


@pytest.mark.parametrize("relative", ["en-hi/valid.tsv", "en-de-multi30k/valid.tsv"])
def test_real_tsv(relative):
    path = DATA_DIR / relative
    if not path.exists():
        pytest.skip(f"real data not found at {path}")
    with open(path, encoding="utf-8") as handle:
        line_count = sum(1 for _ in handle)
    pairs, stats = read_parallel_corpus(str(path))
    assert stats.read == line_count and stats.kept == len(pairs) > 300
    assert all(s and t and "\t" not in s + t for s, t in pairs)
