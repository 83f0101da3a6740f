"""Tests of `prepare`: a DATA_DIR holds exactly what today's in-memory path encodes, and is atomic,
resumable, reusable, and refused when changed. Tiny corpora and vocabularies; no TensorFlow."""

import itertools
import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import keras_transformer.prepare as prepare_module
import keras_transformer.tokenizer_training as tokenizer_training
from keras_transformer.corpus import (CorpusError, CorpusStats, ReadProgress, corpus_files, iter_parallel_corpus,
                                      read_corpora, read_parallel_corpus, write_tsv)
from keras_transformer.pipeline import encode_corpus
from keras_transformer.prepare import PrepareError, prepare
from keras_transformer.prepared_data import PreparedData, PreparedDataError
from keras_transformer.progress_line import ProgressLine
from keras_transformer.reservoir import Reservoir
from keras_transformer.serve.bundle_format import SOURCE_TOKENIZER_FILE, TARGET_TOKENIZER_FILE
from keras_transformer.tokenizer_training import train_tokenizer

ROOT = Path(__file__).resolve().parents[1]
ENGLISH = ("the a cat dog sees runs big small red green house tree river man woman child eats bread water "
           "under over quickly slowly sings reads book garden city street car old young happy").split()
GERMAN = ("der eine Katze Hund sieht läuft groß klein rot grün Haus Baum Fluss Mann Frau Kind isst Brot Wasser "
          "unter über schnell langsam singt liest Buch Garten Stadt Straße Auto alt jung glücklich").split()
SETTINGS = dict(source_vocab_size=120, target_vocab_size=140, max_source_length=14, max_target_length=16,
                progress=False, log=lambda line: None)


def make_pairs(count: int, seed: int) -> list[tuple[str, str]]:
    """Made-up sentence pairs of 1 to 16 words, so that some exceed the test's maximum lengths."""
    rng = random.Random(seed)
    pairs = []
    for _ in range(count):
        words = rng.choices(range(len(ENGLISH)), k=rng.randint(1, 16))
        source = " ".join(ENGLISH[w] for w in words) + rng.choice([".", "?", "!"])
        target = " ".join(GERMAN[w] for w in reversed(words)) + "."
        pairs.append((source, target))
    return pairs


def todays_tokenizers(train_pairs, source_vocab_size, target_vocab_size, shared_vocab):
    """What training.train does today with the full list of (repeated) training pairs."""
    if shared_vocab:
        shared = train_tokenizer(itertools.chain((s for s, _ in train_pairs), (t for _, t in train_pairs)),
                                 source_vocab_size)
        return shared, shared
    return (train_tokenizer((s for s, _ in train_pairs), source_vocab_size),
            train_tokenizer((t for _, t in train_pairs), target_vocab_size))


def split_rows(split, indices=None):
    """[(source ids, target ids)] of a split's pairs, in `indices` order (default: stored order)."""
    indices = range(len(split)) if indices is None else indices
    return [(split.source(i).tolist(), split.target(i).tolist()) for i in indices]


def data_files(path: Path) -> dict[str, bytes]:
    return {str(file.relative_to(path)): file.read_bytes() for file in sorted(path.rglob("*")) if file.is_file()}


@pytest.fixture(scope="module")
def corpora(tmp_path_factory):
    """Two training corpora with an empty side here and there, and a validation corpus."""
    root = tmp_path_factory.mktemp("corpora")
    big, small, valid = make_pairs(300, 1), make_pairs(60, 2), make_pairs(40, 3)
    big[7] = ("   ", "leer")
    small[3] = ("nur Quelle", "")
    for name, pairs in (("big.tsv", big), ("small.tsv", small), ("valid.tsv", valid)):
        write_tsv(pairs, root / name)
    return root


@pytest.fixture(scope="module")
def prepared(corpora, tmp_path_factory):
    """A DATA_DIR of big.tsv + small.tsv*3 with valid.tsv (read-only: copy it to change it)."""
    out = tmp_path_factory.mktemp("data") / "data"
    specs = [str(corpora / "big.tsv"), f"{corpora / 'small.tsv'}*3"]
    return prepare(specs, out, valid=str(corpora / "valid.tsv"), **SETTINGS), specs


# ---------------------------------------------------------------------------- same data as today


def test_ids_equal_todays_encode_corpus_with_upsampling(prepared, corpora):
    data, specs = prepared
    pairs, sources = read_corpora(specs)  # today: every pair, small.tsv's three times
    encoded = encode_corpus(pairs, data.source_tokenizer, data.target_tokenizer, 14, 16)
    assert split_rows(data.train, data.train.indices()) == list(zip(encoded.source, encoded.target))
    assert 0 < encoded.skipped_too_long < len(pairs)  # the length filter did something
    assert sum(item.skipped_too_long * item.repeat for item in data.train.inputs) == encoded.skipped_too_long
    assert [(item.read, item.skipped_empty) for item in data.train.inputs] == [
        (stats.read, stats.skipped_empty) for _, _, stats in sources]
    lengths = [(len(s), len(t)) for s, t in split_rows(data.train)]
    assert lengths == list(zip(data.train.source_lengths.tolist(), data.train.target_lengths.tolist()))

    valid_pairs, _ = read_parallel_corpus(str(corpora / "valid.tsv"))
    valid = encode_corpus(valid_pairs, data.source_tokenizer, data.target_tokenizer, 14, 16)
    assert split_rows(data.valid) == list(zip(valid.source, valid.target))
    assert np.array_equal(data.valid.indices(), np.arange(len(valid.source)))


def test_every_spec_form_and_max_pairs_match_read_corpora(corpora, tmp_path):
    pairs = read_parallel_corpus(str(corpora / "big.tsv"))[0]
    (tmp_path / "src.txt").write_text("".join(f"{s}\n" for s, _ in pairs[:80]), encoding="utf-8")
    (tmp_path / "tgt.txt").write_text("".join(f"{t}\n" for _, t in pairs[:80]), encoding="utf-8")
    (tmp_path / "c.csv").write_text("id,de,en\n" + "".join(f'{i},"{t}","{s}"\n' for i, (s, t) in enumerate(pairs[80:])),
                                    encoding="utf-8")
    specs = [f"{tmp_path / 'src.txt'},{tmp_path / 'tgt.txt'}*2", str(tmp_path / "c.csv")]
    columns = dict(source_column="en", target_column="de", max_pairs=150)
    data = prepare(specs, tmp_path / "data", **SETTINGS, **columns)
    expected, _ = read_corpora(specs, **columns)
    encoded = encode_corpus(expected, data.source_tokenizer, data.target_tokenizer, 14, 16)
    assert split_rows(data.train, data.train.indices()) == list(zip(encoded.source, encoded.target))
    assert [len(item["files"]) for item in data.manifest["inputs"]] == [2, 1]
    assert data.manifest["tokenizer_sample"]["of"] == 80 * 2 + 150  # a SPEC*N weighs N times, as in `train`


@pytest.mark.parametrize("shared_vocab", [False, True])
def test_tokenizers_are_byte_identical_to_todays(corpora, tmp_path, shared_vocab):
    specs = [str(corpora / "big.tsv"), f"{corpora / 'small.tsv'}*3"]  # upsampled: weighed 3 times, as `train` does
    vocab = dict(source_vocab_size=120, target_vocab_size=120 if shared_vocab else 140)
    data = prepare(specs, tmp_path / "data", **{**SETTINGS, **vocab}, shared_vocab=shared_vocab)
    todays_pairs = read_corpora(specs)[0]
    source, target = todays_tokenizers(todays_pairs, vocab["source_vocab_size"], vocab["target_vocab_size"],
                                       shared_vocab)
    source.save(tmp_path / "source.json")
    target.save(tmp_path / "target.json")
    assert (data.path / SOURCE_TOKENIZER_FILE).read_bytes() == (tmp_path / "source.json").read_bytes()
    assert (data.path / TARGET_TOKENIZER_FILE).read_bytes() == (tmp_path / "target.json").read_bytes()
    assert data.manifest["tokenizer_sample"] == {"pairs": len(todays_pairs), "of": len(todays_pairs)}


def test_arrays_are_small_memory_maps(prepared):
    data, _ = prepared
    train = data.train
    for side in ("source", "target"):
        assert isinstance(getattr(train, f"{side}_ids"), np.memmap)
        assert getattr(train, f"{side}_ids").dtype == np.uint16
        assert getattr(train, f"{side}_lengths").dtype == np.uint16
        assert getattr(train, f"{side}_offsets").dtype == np.int64
        assert len(getattr(train, f"{side}_offsets")) == len(train) + 1
    assert train.indices().dtype == np.uint32
    small = train.inputs[1]
    assert small.repeat == 3 and np.array_equal(train.indices()[small.start - train.inputs[0].start:],
                                                np.tile(np.arange(small.start, small.stop), 3))
    arrays = data.manifest["splits"]["train"]["arrays"]
    assert arrays["source_ids"]["dtype"] == "uint16" and len(arrays["source_ids"]["sha256"]) == 64


def test_manifest_records_inputs_counts_and_settings(prepared, corpora):
    data, _ = prepared
    manifest = data.manifest
    big, small, valid = manifest["inputs"]
    assert (big["split"], big["repeat"], small["repeat"], valid["split"]) == ("train", 1, 3, "valid")
    assert big["files"][0]["size"] == (corpora / "big.tsv").stat().st_size
    assert big["read"] == 300 and big["skipped_empty"] == 1 and small["skipped_empty"] == 1
    assert big["kept"] + big["skipped_too_long"] + big["skipped_empty"] == big["read"]
    assert (big["start"], big["stop"], small["start"]) == (0, big["kept"], big["kept"])
    assert manifest["settings"] == {"source_vocab_size": 120, "target_vocab_size": 140, "shared_vocab": False,
                                    "max_source_length": 14, "max_target_length": 16, "tokenizer_sample": 1_000_000,
                                    "seed": 0, "source_column": None, "target_column": None, "max_pairs": None}
    assert manifest["tokenizers"]["target"]["vocab_size"] == data.target_tokenizer.vocab_size


# ---------------------------------------------------------------------------- the tokenizers' sample


def test_reservoir_keeps_a_seeded_sample_in_stream_order():
    def sample(size, count, seed):
        reservoir = Reservoir(size, seed)
        for item in range(count):
            reservoir.add(item)
        return reservoir.sample()

    assert sample(10, 10, 0) == list(range(10)) and sample(10, 4, 0) == [0, 1, 2, 3]
    drawn = sample(50, 1000, 7)
    assert len(drawn) == 50 and drawn == sorted(set(drawn)) and drawn == sample(50, 1000, 7)
    assert drawn != sample(50, 1000, 8)
    counts = np.bincount([i for seed in range(400) for i in sample(5, 20, seed)], minlength=20)
    assert counts.min() > 50 and counts.max() < 150  # each item kept 5/20 of the time: 100 expected


def test_tokenizers_learn_from_at_most_the_sample(corpora, tmp_path, monkeypatch):
    seen = []

    def counting(texts, vocab_size, min_frequency=2):
        texts = list(texts)
        seen.append(len(texts))
        return train_tokenizer(texts, vocab_size, min_frequency)

    monkeypatch.setattr(tokenizer_training, "train_tokenizer", counting)
    first = prepare([str(corpora / "big.tsv")], tmp_path / "a", **SETTINGS, tokenizer_sample=50, seed=3)
    assert seen == [50, 50] and first.manifest["tokenizer_sample"] == {"pairs": 50, "of": 299}
    again = prepare([str(corpora / "big.tsv")], tmp_path / "b", **SETTINGS, tokenizer_sample=50, seed=3)
    assert data_files(first.path) == data_files(again.path)  # seeded: reproducible


def test_tokenizer_training_does_not_depend_on_the_core_count(corpora, tmp_path):
    script = ("import sys, hashlib; from keras_transformer.prepare import prepare; "
              "d = prepare([sys.argv[1]], sys.argv[2], source_vocab_size=300, target_vocab_size=300, "
              "progress=False, log=lambda line: None); "
              "print(hashlib.sha256((d.path / 'source.tokenizer.json').read_bytes() + "
              "(d.path / 'target.tokenizer.json').read_bytes()).hexdigest())")
    rng = random.Random(0)  # many distinct words, so the library's parallel counting has work to split
    pairs = [(f"{source[:-1]} {rng.randrange(2000)}.", f"{rng.randrange(2000)} {target}")
             for source, target in make_pairs(6000, 4)]
    write_tsv(pairs, tmp_path / "varied.tsv")
    digests = []
    for threads in ("1", "2"):
        env = {**os.environ, "RAYON_NUM_THREADS": threads, "RAYON_RS_NUM_CPUS": threads}
        result = subprocess.run([sys.executable, "-c", script, str(tmp_path / "varied.tsv"), str(tmp_path / threads)],
                                cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        digests.append(result.stdout.strip())
    assert digests[0] == digests[1]


# ---------------------------------------------------------------------------- reuse, refusal, damage


def test_a_finished_data_dir_is_reused_without_encoding(prepared, monkeypatch):
    data, specs = prepared
    manifest = data.path / "manifest.json"
    before = manifest.stat().st_mtime_ns
    monkeypatch.setattr(prepare_module, "_encode_side", lambda *args: pytest.fail("encoded again"))
    lines = []
    again = prepare(specs, data.path, valid=data.inputs[-1].spec, **{**SETTINGS, "log": lines.append})
    assert any("already prepared" in line and "reusing" in line for line in lines)
    assert manifest.stat().st_mtime_ns == before and len(again.train) == len(data.train)


def test_other_settings_or_inputs_are_refused_without_force(corpora, tmp_path):
    specs = [str(corpora / "big.tsv")]
    prepare(specs, tmp_path / "data", **SETTINGS)
    with pytest.raises(PrepareError, match=r"data: expected a DATA_DIR prepared from these inputs and settings, "
                                           r"got one with differences in \['settings.max_source_length'\]; "
                                           r"pass --force"):
        prepare(specs, tmp_path / "data", **{**SETTINGS, "max_source_length": 20})
    changed = tmp_path / "big.tsv"
    shutil.copy(corpora / "big.tsv", changed)
    with changed.open("a") as handle:
        handle.write("one more\tnoch eins\n")
    with pytest.raises(PrepareError, match=r"differences in \['inputs'\]"):
        prepare([str(changed)], tmp_path / "data", **SETTINGS)
    data = prepare(specs, tmp_path / "data", **{**SETTINGS, "max_source_length": 20}, force=True)
    assert data.settings["max_source_length"] == 20 and not (tmp_path / ".data.replaced").exists()


def test_a_directory_that_is_not_a_data_dir_is_never_replaced(corpora, tmp_path):
    out = tmp_path / "notes"
    out.mkdir()
    (out / "thesis.txt").write_text("precious")
    for force in (False, True):
        with pytest.raises(PrepareError, match=r"notes: exists and is not a DATA_DIR .*refusing to replace it"):
            prepare([str(corpora / "big.tsv")], out, **SETTINGS, force=force)
    assert (out / "thesis.txt").read_text() == "precious"
    (tmp_path / "file").write_text("x")
    with pytest.raises(PrepareError, match=r"file: expected a directory for the DATA_DIR, got a file"):
        prepare([str(corpora / "big.tsv")], tmp_path / "file", **SETTINGS)


def test_changed_or_truncated_arrays_are_refused_naming_the_file(prepared, corpora, tmp_path):
    data, specs = prepared
    copy = tmp_path / "data"
    shutil.copytree(data.path, copy)
    ids = copy / "train" / "target_ids.npy"
    content = bytearray(ids.read_bytes())
    content[-1] ^= 1
    ids.write_bytes(bytes(content))
    with pytest.raises(PreparedDataError, match=r"data/train/target_ids\.npy: expected sha256 [0-9a-f]{64}, got "
                                                r"[0-9a-f]{64}; the file was changed or truncated; prepare again "
                                                r"with --force"):
        PreparedData.open(copy)
    with pytest.raises(PreparedDataError, match=r"target_ids\.npy: expected sha256"):  # reuse checks too
        prepare(specs, copy, valid=str(corpora / "valid.tsv"), **SETTINGS)
    ids.write_bytes(bytes(content[:-3]))
    with pytest.raises(PreparedDataError, match=r"data/train/target_ids\.npy: expected \d+ bytes, got \d+; the file "
                                                r"was changed or truncated"):
        PreparedData.open(copy, verify_hashes=False)
    (copy / "valid" / "source_offsets.npy").unlink()
    ids.write_bytes(data_files(data.path)["train/target_ids.npy"])
    with pytest.raises(PreparedDataError, match=r"data/valid/source_offsets\.npy: expected a file"):
        PreparedData.open(copy)
    repaired = prepare(specs, copy, valid=str(corpora / "valid.tsv"), **SETTINGS, force=True)
    assert data_files(repaired.path) == data_files(data.path)


def test_a_manifest_that_is_not_ours_or_lacks_a_field_is_refused(prepared, tmp_path):
    data, _ = prepared
    copy = tmp_path / "data"
    shutil.copytree(data.path, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    del manifest["splits"]["valid"]["arrays"]["target_lengths"]["sha256"]
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(PreparedDataError, match=r"manifest\.json: expected splits\.valid\.arrays\.target_lengths with "
                                                r"fields \['file', 'dtype', 'shape', 'sha256'\], got no sha256"):
        PreparedData.open(copy)
    (copy / "manifest.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(PreparedDataError, match=r"expected format 'keras-transformer-prepared-data', got "
                                                r"'something-else'"):
        PreparedData.open(copy)


# ---------------------------------------------------------------------------- atomic and resumable


def test_an_interrupted_prepare_leaves_nothing_and_resumes_to_the_same_result(prepared, corpora, tmp_path,
                                                                             monkeypatch):
    data, specs = prepared
    calls = []
    encode = prepare_module._encode_side

    def failing(tokenizer, texts):
        calls.append(len(texts))
        if len(calls) == 5:  # the 3rd chunk's source side
            raise RuntimeError("interrupted")
        return encode(tokenizer, texts)

    def counting(tokenizer, texts):
        calls.append(len(texts))
        return encode(tokenizer, texts)

    monkeypatch.setattr(prepare_module, "_encode_side", failing)
    out = tmp_path / "data"
    with pytest.raises(RuntimeError, match="interrupted"):
        prepare(specs, out, valid=str(corpora / "valid.tsv"), **SETTINGS, chunk_pairs=40)
    assert not out.exists()
    with pytest.raises(FileNotFoundError):
        PreparedData.open(out)
    with pytest.raises(PreparedDataError, match=r"\.data\.partial/manifest\.json: expected the manifest"):
        PreparedData.open(tmp_path / ".data.partial")

    calls.clear()
    monkeypatch.setattr(prepare_module, "_encode_side", counting)
    lines = []
    resumed = prepare(specs, out, valid=str(corpora / "valid.tsv"), **{**SETTINGS, "log": lines.append},
                      chunk_pairs=40)
    assert any(line.startswith("Resuming") and "80 pairs encoded before" in line for line in lines)
    assert sum(calls) // 2 == 299 + 59 + 40 - 80  # only what was not committed is encoded again
    assert data_files(resumed.path) == data_files(data.path)  # chunked, interrupted: the same bytes
    assert not (tmp_path / ".data.partial").exists()


def test_a_full_disk_leaves_no_data_dir_that_looks_complete(corpora, tmp_path):
    out = tmp_path / "data"
    script = f"""
import errno, resource, signal, sys
from keras_transformer.prepare import prepare
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
resource.setrlimit(resource.RLIMIT_FSIZE, (6000, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
try:
    prepare([{str(corpora / 'big.tsv')!r}], {str(out)!r}, source_vocab_size=60, target_vocab_size=60,
            progress=False, chunk_pairs=50)
except OSError as error:
    print(error)
    sys.exit(3 if error.errno == errno.EFBIG else 4)
"""
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 3, result.stdout + result.stderr
    assert "failed (File too large); the DATA_DIR was not written" in result.stdout
    assert not out.exists()
    with pytest.raises(FileNotFoundError):
        PreparedData.open(out)
    partial = tmp_path / ".data.partial"
    assert (partial / "train" / "source_ids.npy").exists() and not (partial / "manifest.json").exists()
    lines = []
    settings = dict(source_vocab_size=60, target_vocab_size=60, progress=False, chunk_pairs=50)
    resumed = prepare([str(corpora / "big.tsv")], out, **settings, log=lines.append)
    assert any(line.startswith("Resuming") for line in lines)
    fresh = prepare([str(corpora / "big.tsv")], tmp_path / "fresh", **settings, log=lines.append)
    assert data_files(resumed.path) == data_files(fresh.path)


# ---------------------------------------------------------------------------- bad input


def test_a_malformed_line_names_file_and_line(corpora, tmp_path):
    bad = tmp_path / "bad.tsv"
    bad.write_text("a b\tc d\nok\tgut\nno tab here\n")
    with pytest.raises(CorpusError, match=r"bad\.tsv:3: expected at least 2 tab-separated fields"):
        prepare([str(bad)], tmp_path / "data", **SETTINGS)
    with pytest.raises(CorpusError, match=r"bad\.tsv:3: expected at least 2 tab-separated fields"):  # pass 2
        prepare([str(corpora / "big.tsv")], tmp_path / "data", valid=str(bad), **SETTINGS)
    assert not (tmp_path / "data").exists()


def test_a_corpus_without_a_usable_pair_is_a_clear_error(tmp_path):
    empty = tmp_path / "empty.tsv"
    empty.write_text("\t\nx\t \n")
    with pytest.raises(PrepareError, match=r"expected at least one training pair with a non-empty source and target "
                                           r"in \['.*empty\.tsv'\], got none \(2 records read, 2 with an empty side\)"):
        prepare([str(empty)], tmp_path / "data", **SETTINGS)
    long = tmp_path / "long.tsv"
    write_tsv([(" ".join(["word"] * 30), " ".join(["Wort"] * 30))] * 3, long)
    with pytest.raises(PrepareError, match=r"expected at least one training pair of at most 14/16 tokens .*got none "
                                           r"\(3 skipped as longer\)"):
        prepare([str(long)], tmp_path / "data", **SETTINGS)


# ---------------------------------------------------------------------------- streaming reader, progress


def test_the_stream_reads_lazily_and_counts_bytes(tmp_path):
    path = tmp_path / "c.tsv"
    path.write_text("a\tb\n\t\nc\td\nmalformed\n")
    stats, progress = CorpusStats(), ReadProgress()
    pairs = iter_parallel_corpus(str(path), stats=stats, progress=progress)
    assert next(pairs) == ("a", "b") and (stats.read, stats.kept, progress.bytes_read) == (1, 1, 4)
    assert next(pairs) == ("c", "d") and (stats.read, stats.skipped_empty, progress.bytes_read) == (3, 1, 10)
    with pytest.raises(CorpusError, match=r"c\.tsv:4: expected at least 2"):
        next(pairs)
    assert progress.bytes_read == path.stat().st_size
    other = tmp_path / "d.txt"
    other.write_text("x\n")
    assert corpus_files(f"{path},{other}") == [path, other] and corpus_files("demo") == []
    with pytest.raises(FileNotFoundError, match=r"corpus file not found: .*absent\.tsv"):
        iter_parallel_corpus(str(tmp_path / "absent.tsv"))  # checked at the call, before iterating


def test_progress_line_redraws_in_place_at_most_ten_times_a_second():
    class Stream(list):
        write = list.append

        def flush(self):
            pass

    now = [0.0]
    live, log = Stream(), Stream()
    lines = [ProgressLine("Encoding", stream=live, live=True, clock=lambda: now[0]),
             ProgressLine("Encoding", stream=log, live=False, clock=lambda: now[0])]
    for step in range(1, 481):  # 30 s in steps of 1/16 s (exact in binary), 62.5 pairs a step
        now[0] = step / 16
        for line in lines:
            line.update(int(step * 62.5), fraction=step / 640)
    assert len(live) == 240 and all(text.startswith("\rEncoding: ") for text in live)  # every 2nd step
    assert log == ["Encoding: 10,000 pairs, 1,000 pairs/s, 25% done, 30 s left\n",
                   "Encoding: 20,000 pairs, 1,000 pairs/s, 50% done, 20 s left\n",
                   "Encoding: 30,000 pairs, 1,000 pairs/s, 75% done, 10 s left\n"]
    lines[0].close(30_000)
    assert live[-1].startswith("\rEncoding: 30,000 pairs, 1,000 pairs/s, 30 s") and live[-1].endswith("\n")
