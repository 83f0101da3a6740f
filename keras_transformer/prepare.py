"""Prepare once: corpora -> tokenizers -> memory-mapped token ids in a DATA_DIR (prepared_data.py).

Two streamed passes over the inputs, so memory does not grow with the corpus:
    1. read every training pair (a `SPEC*N` N times, as `train` weighs it) and keep a seeded sample
       of at most `tokenizer_sample` pairs (reservoir.py: all of them, in order, when there are no
       more), then train the tokenizers on it as `train` does (tokenizer_training.train_tokenizers);
    2. read again, encode chunks of `chunk_pairs` pairs with the tokenizers library's batch encoding
       (on all cores), keep the pairs that fit the maximum lengths as `pipeline.encode_corpus` does,
       and append their ids, offsets and lengths to .npy files (split_writer.py).
Everything goes to a sibling `.NAME.partial/` first, manifest.json last, and is renamed to NAME
when complete: an interrupted or failed prepare leaves nothing that `PreparedData.open` accepts.
After each chunk the partial directory records the pairs consumed per input and the bytes of each
array, so running again resumes from the last chunk. A finished DATA_DIR whose inputs (sizes and
sha256) and settings match is reused at once; other inputs or settings are refused unless `force`,
and a directory that is not a DATA_DIR is never deleted.

Example:
    >>> data = prepare(["big.tsv", "in-domain.tsv*3"], "data/", valid="valid.tsv", shared_vocab=True)
    ...
    train big.tsv: 4,500,000 read, 4,480,112 kept, 312 skipped with an empty side, 19,576 longer than 128/128 tokens
    train in-domain.tsv (x3 an epoch): 20,000 read, 19,990 kept, 0 skipped with an empty side, 10 longer than ...
    valid valid.tsv: 3,000 read, 2,998 kept, 0 skipped with an empty side, 2 longer than 128/128 tokens
    Prepared data: 4,500,102 training pairs (312.4 s)
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import itertools
import json
import os
import shutil
import time
from pathlib import Path
from typing import Callable, Iterable, Iterator, TextIO

from keras_transformer.corpus import CorpusStats, ReadProgress, corpus_files, iter_parallel_corpus, split_repeat
from keras_transformer.prepared_data import (FORMAT_NAME, FORMAT_VERSION, MANIFEST_FILE, SIDES, TOKENIZER_FILES,
                                             PreparedData, is_data_dir, read_manifest, sha256_file)
from keras_transformer.progress_line import ProgressLine
from keras_transformer.reservoir import Reservoir
from keras_transformer.split_writer import SplitWriter
from keras_transformer.serve.atomic_files import atomic_write_text
from keras_transformer.serve.errors import KerasTransformerError, OptionError
from keras_transformer.serve.tokenizer import SubwordTokenizer

# Sentences per side the tokenizers learn from: SentencePiece's default `input_sentence_size` is
# 1M too. Beyond it a BPE's merges barely change, while time and memory keep growing (the sample
# holds its pairs in memory: about 0.5 GB for 1M pairs of 60-character sentences).
DEFAULT_TOKENIZER_SAMPLE = 1_000_000
CHUNK_PAIRS = 20_000  # pairs encoded at a time: big enough for the library's threads, small in memory
STATE_FILE = "prepare-state.json"  # in the partial directory only: the resume point


class PrepareError(KerasTransformerError, ValueError):
    """A DATA_DIR that prepare may not touch as asked, or inputs without a usable pair."""


def prepare(
    specs: str | Iterable[str],
    out: str | os.PathLike,
    valid: str | None = None,
    source_column: str | None = None,
    target_column: str | None = None,
    max_pairs: int | None = None,
    source_vocab_size: int = 8000,
    target_vocab_size: int = 8000,
    shared_vocab: bool = False,
    max_source_length: int = 128,
    max_target_length: int = 128,
    tokenizer_sample: int = DEFAULT_TOKENIZER_SAMPLE,
    seed: int = 0,
    force: bool = False,
    log: Callable[[str], None] = print,
    progress: bool | TextIO = True,
    chunk_pairs: int = CHUNK_PAIRS,
    tokenizers: tuple[SubwordTokenizer, SubwordTokenizer] | None = None,
) -> PreparedData:
    """Tokenizes training corpora (and a validation SPEC) once into the DATA_DIR `out`.

    Args:
        specs: training SPECs (corpus.py), each optionally `SPEC*N` (stored once, repeated N times by
            `PreparedSplit.indices()`).
        out: the DATA_DIR to write; its parent directories are created.
        valid: a validation SPEC (no `*N`), stored as the "valid" split with the same tokenizers.
        source_column, target_column: the columns of a `.csv` SPEC.
        max_pairs: read at most this many pairs of each SPEC (before its repeat), as `read_corpora`.
        source_vocab_size, target_vocab_size, shared_vocab: the tokenizers, as `train`'s options.
        max_source_length, max_target_length: a pair is kept when its source + EOS and BOS + target
            fit (`len + 1 <= max`); others are counted as skipped.
        tokenizer_sample: the tokenizers learn from a seeded uniform sample of at most this many
            pairs (1,000,000 by default: that many sentences per side); all pairs when the corpus
            has no more. Repeats of `SPEC*N` count once.
        seed: seeds the sample.
        force: replace an existing DATA_DIR prepared from other inputs or settings.
        log: receives one line per step and one summary line per input.
        progress: a live line (terminal) or a line every 10 s (log) on stderr; False: none; a stream.
        chunk_pairs: pairs encoded and committed at a time (the resume granularity).
        tokenizers: (source, target) tokenizers to encode with instead of learning them (a distilled
            student keeps its teacher's); the vocabulary sizes are theirs, and no sample is read.

    Returns:
        The opened `PreparedData`.

    Raises:
        PrepareError: `out` is a file, not a DATA_DIR, or a DATA_DIR of other inputs or settings
            (without `force`); no training pair is usable.
        CorpusError, FileNotFoundError, OptionError: as `corpus.iter_parallel_corpus`, for bad input or options.
        OSError: writing failed (e.g. a full disk); `out` is left as it was, and running again resumes.
    """
    specs = [specs] if isinstance(specs, str) else list(specs)
    if tokenizers is not None:
        source_vocab_size, target_vocab_size = tokenizers[0].vocab_size, tokenizers[1].vocab_size
        shared_vocab = tokenizers[0].to_str() == tokenizers[1].to_str()
    settings = _settings(specs, valid, source_vocab_size, target_vocab_size, shared_vocab, max_source_length,
                         max_target_length, tokenizer_sample, seed, source_column, target_column, max_pairs)
    if tokenizers is not None:  # part of the fingerprint: other tokenizers, another DATA_DIR
        settings["given_tokenizers"] = {side: hashlib.sha256(tokenizer.to_str().encode()).hexdigest()
                                        for side, tokenizer in zip(SIDES, tokenizers)}
    if isinstance(chunk_pairs, bool) or not isinstance(chunk_pairs, int) or chunk_pairs < 1:
        raise OptionError(f"expected chunk_pairs to be an integer >= 1, got {chunk_pairs!r}")
    started = time.perf_counter()
    inputs = [_describe_input("train", spec, source_column, target_column) for spec in specs]
    if valid is not None:
        inputs.append(_describe_input("valid", valid, source_column, target_column))
    fingerprint = _fingerprint(settings, inputs)
    files = [file for item in inputs for file in item["files"]]
    log(f"Hashed {len(files)} input file(s), {sum(file['size'] for file in files) / 1e6:,.1f} MB "
        f"({time.perf_counter() - started:.1f} s)")

    out = Path(out)
    if out.absolute() == Path.cwd().absolute():
        raise PrepareError(f"expected --out to name the DATA_DIR's own directory, got the current directory {out}")
    reused = _check_out(out, fingerprint, force, log)
    if reused is not None:
        return reused
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.absolute().parent / f".{out.absolute().name}.partial"  # a sibling, on the same filesystem
    with _locked_dir(partial):
        job = _Job(partial, settings, inputs, fingerprint, log, progress, chunk_pairs, tokenizers)
        manifest = job.run()
        _install(partial, out)
    for line in _summary(manifest):
        log(line)
    log(f"Prepared {out}: {manifest['splits']['train']['pairs']:,} training pairs "
        f"({time.perf_counter() - started:.1f} s)")
    return PreparedData.open(out, verify_hashes=False)  # just hashed while writing


# ---------------------------------------------------------------------------- settings and inputs


def _settings(specs, valid, source_vocab_size, target_vocab_size, shared_vocab, max_source_length,
              max_target_length, tokenizer_sample, seed, source_column, target_column, max_pairs) -> dict:
    """The settings recorded in the manifest, checked."""
    if not specs or not all(isinstance(spec, str) and spec.strip() for spec in specs):
        raise OptionError(f"expected at least one training SPEC, got {specs!r}")
    if valid is not None and split_repeat(valid)[1] != 1:
        raise OptionError(f"valid: expected one SPEC without a *N suffix, got {valid!r}")
    positive = {"source_vocab_size": (source_vocab_size, 5), "target_vocab_size": (target_vocab_size, 5),
                "max_source_length": (max_source_length, 2), "max_target_length": (max_target_length, 2),
                "tokenizer_sample": (tokenizer_sample, 1)}
    for name, (value, least) in positive.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise OptionError(f"expected {name} to be an integer >= {least}, got {value!r}")
    if max_pairs is not None and (isinstance(max_pairs, bool) or not isinstance(max_pairs, int) or max_pairs < 0):
        raise OptionError(f"expected max_pairs to be None or an integer >= 0, got {max_pairs!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise OptionError(f"expected seed to be an integer, got {seed!r}")
    if shared_vocab and source_vocab_size != target_vocab_size:
        raise OptionError(f"shared_vocab: expected one vocabulary size, got source_vocab_size={source_vocab_size} "
                         f"and target_vocab_size={target_vocab_size}")
    return {"source_vocab_size": source_vocab_size, "target_vocab_size": target_vocab_size,
            "shared_vocab": bool(shared_vocab), "max_source_length": max_source_length,
            "max_target_length": max_target_length, "tokenizer_sample": tokenizer_sample, "seed": seed,
            "source_column": source_column, "target_column": target_column, "max_pairs": max_pairs}


def _describe_input(split: str, spec: str, source_column, target_column) -> dict:
    """{"split", "spec", "repeat", "files": [{"path", "size", "sha256"}]}; hashing checks the SPEC too."""
    name, times = split_repeat(spec)
    name = name.strip()
    files = [{"path": str(path), "size": path.stat().st_size, "sha256": sha256_file(path)}
             for path in corpus_files(name, source_column, target_column)]
    return {"split": split, "spec": name, "repeat": times, "files": files}


def _fingerprint(settings: dict, inputs: list[dict]) -> dict:
    """What makes two prepares the same: settings and input contents (not their paths)."""
    contents = [{"split": item["split"], "repeat": item["repeat"], "demo": item["spec"] == "demo",
                 "files": [[file["size"], file["sha256"]] for file in item["files"]]} for item in inputs]
    return {"format_version": FORMAT_VERSION, "settings": settings, "inputs": contents}


def _differences(old: dict, new: dict) -> list[str]:
    names = [f"settings.{key}" for key in sorted(set(old["settings"]) | set(new["settings"]))
             if old["settings"].get(key) != new["settings"].get(key)]
    names += [key for key in ("format_version", "inputs") if old.get(key) != new.get(key)]
    return names


def _check_out(out: Path, fingerprint: dict, force: bool, log) -> PreparedData | None:
    """The DATA_DIR to reuse, or None to write `out`; refuses what must not be replaced."""
    if not out.exists():
        return None
    if not out.is_dir():
        raise PrepareError(f"{out}: expected a directory for the DATA_DIR, got a file; choose another --out")
    if not any(out.iterdir()):
        return None
    if not is_data_dir(out):
        raise PrepareError(f"{out}: exists and is not a DATA_DIR (no {MANIFEST_FILE} of {FORMAT_NAME!r}); refusing "
                           f"to replace it{' even with --force' if force else ''}; choose another --out")
    if force:
        log(f"{out}: will be replaced (--force) once the new data is complete")
        return None
    manifest = read_manifest(out)
    differences = _differences(_fingerprint(manifest["settings"], manifest["inputs"]), fingerprint)
    if differences:
        raise PrepareError(f"{out}: expected a DATA_DIR prepared from these inputs and settings, got one with "
                           f"differences in {differences}; pass --force (force=True) to replace it or choose "
                           "another --out")
    data = PreparedData.open(out)
    log(f"{out}: already prepared from these inputs and settings; reusing it")
    for line in _summary(manifest):
        log(line)
    return data


@contextlib.contextmanager
def _locked_dir(path: Path):
    """Creates `path` and holds an exclusive lock on it, so two prepares never write one DATA_DIR;
    removes it again if it is left empty (a prepare that failed before writing anything)."""
    path.mkdir(exist_ok=True)
    handle = os.open(path, os.O_RDONLY)
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise PrepareError(f"{path}: expected no other prepare writing it, got one holding its lock; wait for "
                               "it to finish") from None
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                path.rmdir()  # only when empty
    finally:
        os.close(handle)


def _install(partial: Path, out: Path) -> None:
    """Renames the finished `partial` to `out`; an existing DATA_DIR (force) is swapped out, then deleted."""
    if out.is_dir() and not any(out.iterdir()):
        out.rmdir()
    if not out.exists():
        os.rename(partial, out)
        return
    old = out.absolute().parent / f".{out.absolute().name}.replaced"
    if old.exists():
        shutil.rmtree(old)
    os.rename(out, old)
    os.rename(partial, out)
    shutil.rmtree(old)


def _summary(manifest: dict) -> list[str]:
    """One line per input: read, kept and skipped by reason."""
    limits = f"{manifest['settings']['max_source_length']}/{manifest['settings']['max_target_length']}"
    lines = []
    for item in manifest["inputs"]:
        repeat = f" (x{item['repeat']} an epoch)" if item["repeat"] > 1 else ""
        lines.append(f"{item['split']} {item['spec']}{repeat}: {item['read']:,} read, {item['kept']:,} kept, "
                     f"{item['skipped_empty']:,} skipped with an empty side, {item['skipped_too_long']:,} "
                     f"longer than {limits} tokens")
    return lines


# ---------------------------------------------------------------------------- writing


@contextlib.contextmanager
def _writing(partial: Path):
    """Rephrases a failed write (a full disk, EFBIG) so the user knows nothing was published."""
    try:
        yield
    except OSError as error:
        raise OSError(error.errno, f"writing {partial} failed ({error.strerror or error}); the DATA_DIR was not "
                                   "written; free some space and run prepare again to resume") from error


def _encode_side(tokenizer: SubwordTokenizer, texts: list[str]) -> list[list[int]]:
    """Ids of each text, without BOS/EOS: `Tokenizer.encode_batch`, which encodes the batch on all
    cores (rayon) with the GIL released. (`encode_batch_fast`, without character offsets, measured
    no faster here.)"""
    return tokenizer.encode_batch(texts)


def _chunks(pairs: Iterable[tuple[str, str]], size: int) -> Iterator[list[tuple[str, str]]]:
    iterator = iter(pairs)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


class _Job:
    """One prepare into the partial directory: resume point, the two passes, the manifest."""

    def __init__(self, partial: Path, settings: dict, inputs: list[dict], fingerprint: dict, log,
                 progress: bool | TextIO, chunk_pairs: int, tokenizers=None):
        self.partial, self.settings, self.inputs, self.fingerprint = partial, settings, inputs, fingerprint
        self.given_tokenizers = tokenizers
        self.log, self.progress, self.chunk_pairs = log, progress, chunk_pairs
        self.columns = dict(source_column=settings["source_column"], target_column=settings["target_column"])

    # ---------------------------------------------------------------- resume point

    def _load_state(self) -> dict | None:
        """The partial directory's state when it belongs to this prepare, else None (and it is emptied)."""
        state_file = self.partial / STATE_FILE
        state = None
        if state_file.is_file():
            try:
                state = json.loads(state_file.read_text(encoding="utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                state = None
        if state is not None and state.get("fingerprint") == self.fingerprint and self._files_intact(state):
            return state
        entries = list(self.partial.iterdir())
        if entries:
            ours = {MANIFEST_FILE, STATE_FILE, *TOKENIZER_FILES.values(), "train", "valid"}
            if not all(entry.name in ours or entry.name.startswith(f".{STATE_FILE}.") for entry in entries):
                raise PrepareError(f"{self.partial}: expected the partial directory of an earlier prepare, got a "
                                   "directory with other files; remove it or choose another --out")
            self.log(f"{self.partial}: left by an earlier prepare of other inputs or settings; starting over")
            for entry in entries:
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
        return None

    def _files_intact(self, state: dict) -> bool:
        for side, digest in state.get("tokenizers", {}).items():
            file = self.partial / TOKENIZER_FILES[side]
            if not file.is_file() or sha256_file(file) != digest:
                return False
        return all((self.partial / file).is_file() and (self.partial / file).stat().st_size >= size
                   for file, size in state.get("arrays", {}).items())

    def _commit(self, state: dict) -> None:
        with _writing(self.partial):
            atomic_write_text(self.partial / STATE_FILE, json.dumps(state, indent=1) + "\n")

    def _progress_line(self, label: str) -> ProgressLine | None:
        if self.progress is False:
            return None
        return ProgressLine(label, stream=None if self.progress is True else self.progress)

    def _total_bytes(self, splits: tuple[str, ...]) -> int:
        return sum(file["size"] for item in self.inputs if item["split"] in splits for file in item["files"])

    # ---------------------------------------------------------------- passes

    def run(self) -> dict:
        state = self._load_state()
        if state is None:
            state = {"fingerprint": self.fingerprint, "inputs": [], "arrays": {}}
            self._train_tokenizers(state)
        else:
            self.log(f"Resuming {self.partial}: tokenizers trained, "
                     f"{sum(item['consumed'] for item in state['inputs']):,} pairs encoded before")
        tokenizers = {side: SubwordTokenizer.from_file(self.partial / TOKENIZER_FILES[side]) for side in SIDES}
        if self.settings["shared_vocab"]:
            tokenizers["target"] = tokenizers["source"]
        splits = [split for split in ("train", "valid") if any(item["split"] == split for item in self.inputs)]
        vocab_sizes = {side: tokenizers[side].vocab_size for side in SIDES}
        with _writing(self.partial):
            writers = {split: SplitWriter(self.partial, split, self.settings, vocab_sizes,
                                           state["arrays"] or None) for split in splits}
        try:
            self._encode(state, tokenizers, writers)
            with _writing(self.partial):
                entries = {split: writer.finish() for split, writer in writers.items()}
        finally:
            for writer in writers.values():
                writer.close()
        return self._write_manifest(state, tokenizers, entries)

    def _train_tokenizers(self, state: dict) -> None:
        """Pass 1: a seeded sample of the training pairs, a `SPEC*N` read N times (as `train` reads
        the corpora: its tokenizers weigh an upsampled corpus N times), and the tokenizers. Given
        tokenizers are saved as they are, and nothing is read."""
        from keras_transformer.tokenizer_training import train_tokenizers

        if self.given_tokenizers is not None:
            with _writing(self.partial):
                for side, tokenizer in zip(SIDES, self.given_tokenizers):
                    tokenizer.save(self.partial / TOKENIZER_FILES[side])
            state["tokenizers"] = {side: sha256_file(self.partial / TOKENIZER_FILES[side]) for side in SIDES}
            state["sample"] = {"pairs": 0, "of": 0}
            self._commit(state)
            self.log("Tokenizers: given, not learned")
            return
        started = time.perf_counter()
        reservoir = Reservoir(self.settings["tokenizer_sample"], self.settings["seed"])
        read = ReadProgress()
        total = sum(file["size"] * item["repeat"] for item in self.inputs if item["split"] == "train"
                    for file in item["files"])
        line = self._progress_line("Reading for the tokenizers")
        stats = []
        for item in self.inputs:
            if item["split"] != "train":
                continue
            for _ in range(item["repeat"]):
                stats.append(CorpusStats())
                for pair in iter_parallel_corpus(item["spec"], **self.columns, max_pairs=self.settings["max_pairs"],
                                                 stats=stats[-1], progress=read):
                    reservoir.add(pair)
                    if line is not None and reservoir.seen % 1024 == 0:
                        line.update(reservoir.seen, read.bytes_read / total if total else None)
        if line is not None:
            line.close(reservoir.seen)
        if reservoir.seen == 0:
            specs = [item["spec"] for item in self.inputs if item["split"] == "train"]
            raise PrepareError(f"expected at least one training pair with a non-empty source and target in {specs}, "
                               f"got none ({sum(s.read for s in stats)} records read, "
                               f"{sum(s.skipped_empty for s in stats)} with an empty side)")
        sample = reservoir.sample()
        source, target = train_tokenizers(sample, self.settings["source_vocab_size"],
                                          self.settings["target_vocab_size"], self.settings["shared_vocab"])
        del sample, reservoir
        with _writing(self.partial):
            for side, tokenizer in zip(SIDES, (source, target)):
                tokenizer.save(self.partial / TOKENIZER_FILES[side])
        state["tokenizers"] = {side: sha256_file(self.partial / TOKENIZER_FILES[side]) for side in SIDES}
        state["sample"] = {"pairs": min(read_pairs := sum(s.kept for s in stats), self.settings["tokenizer_sample"]),
                           "of": read_pairs}
        self._commit(state)
        sizes = (f"one shared vocabulary of {source.vocab_size}" if self.settings["shared_vocab"]
                 else f"source {source.vocab_size} and target {target.vocab_size}")
        self.log(f"Tokenizers: {sizes} subwords, learned from {state['sample']['pairs']:,} of "
                 f"{read_pairs:,} pairs ({time.perf_counter() - started:.1f} s)")

    def _encode(self, state: dict, tokenizers: dict, writers: dict) -> None:
        """Pass 2: every input in chunks, committed one chunk at a time."""
        started = time.perf_counter()
        read, total = ReadProgress(), self._total_bytes(("train", "valid"))
        line = self._progress_line("Encoding")
        done = sum(item["consumed"] for item in state["inputs"] if item.get("done"))
        for index, item in enumerate(self.inputs):
            writer = writers[item["split"]]
            if index == len(state["inputs"]):
                state["inputs"].append({"start": writer.pairs, "consumed": 0, "kept": 0, "skipped_too_long": 0,
                                        "done": False})
            record = state["inputs"][index]
            if record["done"]:
                continue
            stats = CorpusStats()
            pairs = iter_parallel_corpus(item["spec"], **self.columns, stats=stats, progress=read,
                                         max_pairs=self.settings["max_pairs"] if item["split"] == "train" else None)
            for _ in itertools.islice(pairs, record["consumed"]):  # encoded before an interruption
                pass
            done += record["consumed"]
            for chunk in _chunks(pairs, self.chunk_pairs):
                source_ids = _encode_side(tokenizers["source"], [source for source, _ in chunk])
                target_ids = _encode_side(tokenizers["target"], [target for _, target in chunk])
                with _writing(self.partial):
                    kept = writer.append(source_ids, target_ids)
                    state["arrays"] = {name: size for each in writers.values() for name, size in each.sizes().items()}
                record["consumed"] += len(chunk)
                record["kept"] += kept
                record["skipped_too_long"] += len(chunk) - kept
                self._commit(state)
                done += len(chunk)
                if line is not None:
                    line.update(done, read.bytes_read / total if total else None)
            record.update(done=True, stop=writer.pairs, read=stats.read, skipped_empty=stats.skipped_empty)
            self._commit(state)
        if line is not None:
            line.close(done)
        seconds = time.perf_counter() - started
        self.log(f"Encoded {done:,} pairs ({seconds:.1f} s, {done / max(seconds, 1e-9):,.0f} pairs/s)")
        train_pairs = writers["train"].pairs
        if train_pairs == 0:
            too_long = sum(record["skipped_too_long"] for record, item in zip(state["inputs"], self.inputs)
                           if item["split"] == "train")
            raise PrepareError(f"expected at least one training pair of at most {self.settings['max_source_length']}"
                               f"/{self.settings['max_target_length']} tokens (with EOS/BOS), got none "
                               f"({too_long} skipped as longer)")

    def _write_manifest(self, state: dict, tokenizers: dict, splits: dict) -> dict:
        inputs = []
        for item, record in zip(self.inputs, state["inputs"]):
            inputs.append({**item, "start": record["start"], "stop": record["stop"], "read": record["read"],
                           "kept": record["kept"], "skipped_empty": record["skipped_empty"],
                           "skipped_too_long": record["skipped_too_long"]})
        manifest = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "settings": self.settings,
            "inputs": inputs,
            "tokenizer_sample": state["sample"],
            "tokenizers": {side: {"file": TOKENIZER_FILES[side], "sha256": state["tokenizers"][side],
                                  "vocab_size": tokenizers[side].vocab_size} for side in SIDES},
            "splits": splits,
        }
        with _writing(self.partial):
            (self.partial / STATE_FILE).unlink()
            with open(self.partial / MANIFEST_FILE, "w", encoding="utf-8") as handle:  # last: marks it complete
                handle.write(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
        return manifest
