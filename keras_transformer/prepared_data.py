"""A prepared DATA_DIR: a corpus tokenized once into memory-mapped arrays, and its reader.

Training memory then does not grow with the corpus (fairseq's binarized datasets): ids stay on disk
and the OS pages them in. `prepare.prepare` writes a DATA_DIR; `PreparedData.open` reads one:

    DATA/manifest.json             written last: its presence, matching the files, marks the DATA_DIR
                                   complete (format, settings, inputs with sizes and sha256, counts,
                                   each input's pair range, tokenizers, every array's dtype/shape/sha256)
    DATA/source.tokenizer.json     DATA/target.tokenizer.json   (serve/bundle_format.py's names)
    DATA/train/source_ids.npy      token ids of every pair, concatenated, no BOS/EOS   (T_s,) uint16|32
    DATA/train/source_offsets.npy  pair i's ids are source_ids[offsets[i]:offsets[i + 1]]  (N + 1,) int64
    DATA/train/source_lengths.npy  tokens of each pair (for bucketing without touching ids)  (N,) uint16|32
    DATA/train/target_*.npy        the same for the target side
    DATA/valid/...                 the same for the validation SPEC, when one was given

Ids use uint16 when the vocabulary has at most 65,536 ids, else uint32. A pair was kept when
`len(source) + 1 <= max_source_length and len(target) + 1 <= max_target_length` (room for EOS/BOS),
as `pipeline.encode_corpus` keeps it. `SPEC*N` is stored once: `PreparedSplit.indices()` repeats its
range of pairs N times, so upsampling never copies ids.

Example:
    >>> data = PreparedData.open("data/")             # checks every file's size and sha256
    >>> train = data.split("train")
    >>> len(train), train.source(0), train.target_lengths[:4]
    (29000, memmap([ 412,   97,   55,   18], dtype=uint16), memmap([12, 14,  9, 11], dtype=uint16))
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from keras_transformer.serve.bundle_format import SOURCE_TOKENIZER_FILE, TARGET_TOKENIZER_FILE
from keras_transformer.serve.errors import KerasTransformerError, OptionError
from keras_transformer.serve.tokenizer import SubwordTokenizer

FORMAT_NAME = "keras-transformer-prepared-data"
FORMAT_VERSION = 1
MANIFEST_FILE = "manifest.json"
SPLITS = ("train", "valid")
SIDES = ("source", "target")
ARRAYS = ("source_ids", "target_ids", "source_offsets", "target_offsets", "source_lengths", "target_lengths")
TOKENIZER_FILES = {"source": SOURCE_TOKENIZER_FILE, "target": TARGET_TOKENIZER_FILE}
PREPARE_AGAIN = "prepare again with --force"


class PreparedDataError(KerasTransformerError, ValueError):
    """A DATA_DIR that is missing, unfinished, changed or truncated; the message names the file."""


def array_file(split: str, name: str) -> str:
    """`train/source_ids.npy`: an array's path inside a DATA_DIR."""
    return f"{split}/{name}.npy"


def id_dtype(vocab_size: int) -> np.dtype:
    """The smallest unsigned type that holds ids 0..vocab_size - 1: uint16 up to 65,536 ids, else uint32."""
    return np.dtype(np.uint16 if vocab_size <= 1 << 16 else np.uint32)


def length_dtype(max_length: int) -> np.dtype:
    """Type of the lengths array: a kept pair has at most max_length - 1 tokens (EOS/BOS take one)."""
    return np.dtype(np.uint16 if max_length - 1 < 1 << 16 else np.uint32)


def index_dtype(num_pairs: int) -> np.dtype:
    """uint32 while every pair index fits, else int64."""
    return np.dtype(np.uint32 if num_pairs < 1 << 32 else np.int64)


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks (memory does not grow with the file)."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def is_data_dir(path: str | os.PathLike) -> bool:
    """True for a directory that `prepare` wrote (finished or with a damaged file): one that holds a
    manifest naming this format, or nothing but the names of the layout. `prepare --force` deletes
    only such a directory."""
    path = Path(path)
    if not path.is_dir():
        return False
    manifest = path / MANIFEST_FILE
    try:
        if manifest.is_file() and FORMAT_NAME in manifest.read_text(encoding="utf-8", errors="replace"):
            return True
    except OSError:
        pass
    layout = {MANIFEST_FILE, *TOKENIZER_FILES.values(), *SPLITS}
    names = {entry.name for entry in path.iterdir()}
    return bool(names) and names <= layout


@dataclass(frozen=True)
class PreparedInput:
    """One input SPEC of a DATA_DIR and what preparing it did.

    Attributes:
        split: "train" or "valid".
        spec: the SPEC without its `*N` suffix, as given.
        repeat: N of `SPEC*N` (1 without a suffix): how often `indices()` repeats its pairs.
        start, stop: its pairs are [start, stop) of the split's arrays.
        read, kept, skipped_empty, skipped_too_long: records read, pairs stored, pairs dropped for an
            empty side, pairs dropped as longer than the maximum lengths.
    """

    split: str
    spec: str
    repeat: int
    start: int
    stop: int
    read: int
    kept: int
    skipped_empty: int
    skipped_too_long: int


class PreparedSplit:
    """The memory-mapped arrays of one split ("train" or "valid"); nothing is read into memory here.

    Attributes:
        source_ids, target_ids: (T,) all pairs' token ids, concatenated, without BOS/EOS.
        source_offsets, target_offsets: (N + 1,) int64; pair i is ids[offsets[i]:offsets[i + 1]].
        source_lengths, target_lengths: (N,) token counts (offsets' differences).
        inputs: the `PreparedInput`s whose pairs this split holds, in order.
    """

    def __init__(self, name: str, arrays: dict[str, np.ndarray], inputs: list[PreparedInput]):
        self.name = name
        self.inputs = inputs
        for key, array in arrays.items():
            setattr(self, key, array)

    def __len__(self) -> int:
        return len(self.source_lengths)

    def source(self, index: int) -> np.ndarray:
        """Pair `index`'s source ids (a view of the memory map), (S,) without EOS."""
        return self.source_ids[self.source_offsets[index]:self.source_offsets[index + 1]]

    def target(self, index: int) -> np.ndarray:
        """Pair `index`'s target ids (a view of the memory map), (T,) without BOS/EOS."""
        return self.target_ids[self.target_offsets[index]:self.target_offsets[index + 1]]

    def pair(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Pair `index`'s (source ids, target ids), views of the memory maps."""
        return self.source(index), self.target(index)

    def indices(self) -> np.ndarray:
        """The pairs of one epoch, (sum of repeat × pairs,): each input's range repeated `repeat` times,
        in input order, as `corpus.read_corpora` repeats its pairs (no ids are copied)."""
        dtype = index_dtype(len(self))
        ranges = [np.tile(np.arange(item.start, item.stop, dtype=dtype), item.repeat) for item in self.inputs]
        return np.concatenate(ranges) if ranges else np.zeros(0, dtype)

    def __repr__(self) -> str:
        return f"PreparedSplit({self.name!r}, pairs={len(self)})"


class PreparedData:
    """A finished DATA_DIR, checked; open it with `PreparedData.open(path)`.

    Attributes:
        path: the DATA_DIR.
        manifest: manifest.json's content.
        settings: the settings it was prepared with (vocab sizes, shared vocab, max lengths, ...).
        source_tokenizer, target_tokenizer: `SubwordTokenizer`s (the same object with a shared vocabulary).
        splits: {"train": PreparedSplit, "valid": PreparedSplit (when prepared with one)}.
    """

    def __init__(self, path: Path, manifest: dict, splits: dict[str, PreparedSplit],
                 source_tokenizer: SubwordTokenizer, target_tokenizer: SubwordTokenizer):
        self.path, self.manifest, self.splits = path, manifest, splits
        self.settings = manifest["settings"]
        self.source_tokenizer, self.target_tokenizer = source_tokenizer, target_tokenizer

    @classmethod
    def open(cls, path: str | os.PathLike, verify_hashes: bool = True) -> "PreparedData":
        """Opens a DATA_DIR after checking it against its manifest.

        Checks the manifest's format and fields, the tokenizer files' sha256, and for every array:
        that it exists, its .npy header (dtype, shape), its size in bytes, and (`verify_hashes`) its
        sha256; hashing reads each file once (about 1 s per GB) without holding it in memory.

        Raises:
            FileNotFoundError: `path` does not exist.
            PreparedDataError: not a finished DATA_DIR, or a file that was changed or truncated; the
                message names the file and says what to do.
        """
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"DATA_DIR not found: {path}")
        if not path.is_dir():
            raise PreparedDataError(f"{path}: expected a DATA_DIR written by `prepare`, got a file")
        manifest = read_manifest(path)
        tokenizers = {}
        for side, entry in manifest["tokenizers"].items():
            file = path / entry["file"]
            _check_hash(file, entry["sha256"])
            tokenizers[side] = SubwordTokenizer.from_file(file)
            if tokenizers[side].vocab_size != entry["vocab_size"]:
                raise PreparedDataError(f"{file}: expected vocab_size {entry['vocab_size']} (manifest), "
                                        f"got {tokenizers[side].vocab_size}; {PREPARE_AGAIN}")
        if manifest["settings"].get("shared_vocab"):
            tokenizers["target"] = tokenizers["source"]
        inputs = [PreparedInput(**{key: item[key] for key in PreparedInput.__dataclass_fields__})
                  for item in manifest["inputs"]]
        splits = {}
        for split, entry in manifest["splits"].items():
            arrays = {name: _open_array(path, array_file(split, name), entry["arrays"][name], verify_hashes)
                      for name in ARRAYS}
            splits[split] = PreparedSplit(split, arrays, [item for item in inputs if item.split == split])
            _check_split(path, splits[split], entry["pairs"])
        return cls(path, manifest, splits, tokenizers["source"], tokenizers["target"])

    def split(self, name: str) -> PreparedSplit:
        """The "train" or "valid" split."""
        if name not in self.splits:
            raise OptionError(f"{self.path}: expected a split in {sorted(self.splits)}, got {name!r}")
        return self.splits[name]

    @property
    def train(self) -> PreparedSplit:
        return self.splits["train"]

    @property
    def valid(self) -> PreparedSplit | None:
        """The validation split, or None when prepared without one."""
        return self.splits.get("valid")

    @property
    def inputs(self) -> list[PreparedInput]:
        return [item for split in self.splits.values() for item in split.inputs]

    @property
    def manifest_sha256(self) -> str:
        """The manifest file's sha256: what a DATA_DIR holds, in one string (runs record it)."""
        return sha256_file(self.path / MANIFEST_FILE)

    def __repr__(self) -> str:
        sizes = ", ".join(f"{name}={len(split)}" for name, split in self.splits.items())
        return f"PreparedData({str(self.path)!r}, {sizes})"


# ---------------------------------------------------------------------------- checks


def read_manifest(path: str | os.PathLike) -> dict:
    """DATA/manifest.json, with its format and the fields `PreparedData` reads checked."""
    file = Path(path) / MANIFEST_FILE
    if not file.is_file():
        raise PreparedDataError(f"{file}: expected the manifest of a finished DATA_DIR, got none (an interrupted "
                                f"`prepare`, or not a DATA_DIR); run prepare again")
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise PreparedDataError(f"{file}: expected JSON, got {error}; {PREPARE_AGAIN}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        found = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
        raise PreparedDataError(f"{file}: expected format {FORMAT_NAME!r}, got {found!r}")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise PreparedDataError(f"{file}: expected format_version {FORMAT_VERSION}, got "
                                f"{manifest.get('format_version')!r}; {PREPARE_AGAIN}")
    expected = {"settings": dict, "inputs": list, "tokenizers": dict, "splits": dict}
    for key, kind in expected.items():
        if not isinstance(manifest.get(key), kind):
            raise PreparedDataError(f"{file}: expected field {key!r} to be a {kind.__name__}, "
                                    f"got {type(manifest.get(key)).__name__}; {PREPARE_AGAIN}")
    if set(manifest["tokenizers"]) != set(SIDES) or "train" not in manifest["splits"]:
        raise PreparedDataError(f"{file}: expected tokenizers {list(SIDES)} and a 'train' split, got tokenizers "
                                f"{sorted(manifest['tokenizers'])} and splits {sorted(manifest['splits'])}")
    for split in manifest["splits"]:
        if split not in SPLITS:
            raise PreparedDataError(f"{file}: expected splits in {list(SPLITS)}, got {split!r}; {PREPARE_AGAIN}")
    entries = [(f"inputs[{index}]", item, tuple(PreparedInput.__dataclass_fields__))
               for index, item in enumerate(manifest["inputs"])]
    entries += [(f"tokenizers.{side}", entry, ("file", "sha256", "vocab_size"))
                for side, entry in manifest["tokenizers"].items()]
    entries += [(f"splits.{split}", entry, ("pairs", "arrays")) for split, entry in manifest["splits"].items()]
    entries += [(f"splits.{split}.arrays.{name}", entry.get("arrays", {}).get(name),
                 ("file", "dtype", "shape", "sha256"))
                for split, entry in manifest["splits"].items() if isinstance(entry, dict) for name in ARRAYS]
    for where, entry, fields in entries:
        missing = [name for name in fields if not isinstance(entry, dict) or name not in entry]
        if missing:
            raise PreparedDataError(f"{file}: expected {where} with fields {list(fields)}, got "
                                    f"{'none' if entry is None else 'no ' + ', '.join(missing)}; {PREPARE_AGAIN}")
    return manifest


def _check_hash(file: Path, expected: str) -> None:
    if not file.is_file():
        raise PreparedDataError(f"{file}: expected a file (listed in {MANIFEST_FILE}), got none; {PREPARE_AGAIN}")
    found = sha256_file(file)
    if found != expected:
        raise PreparedDataError(f"{file}: expected sha256 {expected}, got {found}; the file was changed or "
                                f"truncated; {PREPARE_AGAIN}")


def _open_array(path: Path, name: str, entry: dict, verify_hash: bool) -> np.ndarray:
    """The memory map of one array, after checking its header, size and (optionally) sha256."""
    file = path / name
    if not file.is_file():
        raise PreparedDataError(f"{file}: expected a file (listed in {MANIFEST_FILE}), got none; {PREPARE_AGAIN}")
    dtype, shape = np.dtype(entry["dtype"]), tuple(entry["shape"])
    try:
        with open(file, "rb") as handle:
            version = np.lib.format.read_magic(handle)
            if version != (1, 0):
                raise ValueError(f"version {version}, not (1, 0)")
            found_shape, _, found_dtype = np.lib.format.read_array_header_1_0(handle)
            header_bytes = handle.tell()
    except ValueError as error:
        raise PreparedDataError(f"{file}: expected a .npy header, got {error}; the file was changed or truncated; "
                                f"{PREPARE_AGAIN}") from None
    if (found_dtype, found_shape) != (dtype, shape):
        raise PreparedDataError(f"{file}: expected dtype {dtype} and shape {shape}, got {found_dtype} and "
                                f"{found_shape}; the file was changed; {PREPARE_AGAIN}")
    size, expected_size = file.stat().st_size, header_bytes + int(np.prod(shape)) * dtype.itemsize
    if size != expected_size:
        raise PreparedDataError(f"{file}: expected {expected_size} bytes, got {size}; the file was changed or "
                                f"truncated; {PREPARE_AGAIN}")
    if verify_hash:
        _check_hash(file, entry["sha256"])
    if int(np.prod(shape)) == 0:  # numpy cannot memory-map an empty file region
        return np.zeros(shape, dtype)
    return np.load(file, mmap_mode="r")


def _check_split(path: Path, split: PreparedSplit, pairs: int) -> None:
    """Shapes agree with each other and with the manifest's pair count (reads two offsets per side)."""
    for side in SIDES:
        offsets, ids, lengths = (getattr(split, f"{side}_{kind}") for kind in ("offsets", "ids", "lengths"))
        if len(lengths) != pairs or len(offsets) != pairs + 1 or int(offsets[-1]) != len(ids) or (
                pairs and int(offsets[0]) != 0):
            raise PreparedDataError(f"{path / array_file(split.name, side + '_offsets')}: expected {pairs + 1} "
                                    f"offsets from 0 to {len(ids)} for {pairs} pairs, got {len(offsets)} offsets "
                                    f"and {len(lengths)} lengths; {PREPARE_AGAIN}")
    for item in split.inputs:
        if not 0 <= item.start <= item.stop <= pairs:
            raise PreparedDataError(f"{path / MANIFEST_FILE}: expected input {item.spec!r}'s range within 0..{pairs}, "
                                    f"got [{item.start}, {item.stop}); {PREPARE_AGAIN}")
