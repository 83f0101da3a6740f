"""Appending encoded chunks to the arrays of one split of a DATA_DIR (layout: prepared_data.py).

Each array is a 1-D .npy file that grows by appending raw values after a header written for length 0;
`finish` rewrites the header with the final length. numpy pads a 1-D header to a fixed size (room for
a 21-digit length), so the data never moves and no array is ever held in memory. `sizes()` gives the
bytes on disk after a chunk: `prepare` records them, and on resume truncates each file back to them.
"""

from __future__ import annotations

import contextlib
import itertools
import os
from pathlib import Path

import numpy as np

from keras_transformer.prepared_data import ARRAYS, SIDES, array_file, id_dtype, length_dtype, sha256_file


class NpyAppender:
    """A 1-D .npy file written by appending: a header for length 0 first, rewritten with the final
    length by `finish` (numpy pads 1-D headers to a fixed size, so the data never moves)."""

    def __init__(self, path: Path, dtype: np.dtype, size: int | None = None):
        self.path, self.dtype = path, np.dtype(dtype)
        if size is None:  # a new file
            self._file = open(path, "wb")
            self._write_header(0)
        else:  # resuming: drop whatever was written after the last commit
            self._file = open(path, "r+b")
            self._file.truncate(size)
            self._file.seek(size)
        self.header_bytes = self._header_size()

    def _header_size(self) -> int:
        with open(self.path, "rb") as handle:
            np.lib.format.read_magic(handle)
            np.lib.format.read_array_header_1_0(handle)
            return handle.tell()

    def _write_header(self, length: int) -> None:
        header = {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False, "shape": (length,)}
        np.lib.format.write_array_header_1_0(self._file, header)
        self._file.flush()

    def append(self, values: np.ndarray) -> None:
        self._file.write(np.ascontiguousarray(values, dtype=self.dtype).tobytes())

    @property
    def size(self) -> int:
        """Bytes written, header included (after `flush`, on disk)."""
        return self._file.tell()

    def flush(self) -> None:
        self._file.flush()

    def finish(self) -> tuple[int]:
        """Writes the final header, syncs and closes the file; returns the array's shape."""
        data_bytes = self.size - self.header_bytes
        assert data_bytes % self.dtype.itemsize == 0, f"{self.path}: {data_bytes} bytes of {self.dtype}"
        shape = (data_bytes // self.dtype.itemsize,)
        self._file.seek(0)
        self._write_header(shape[0])
        assert self._file.tell() == self.header_bytes, f"{self.path}: the .npy header changed size"
        os.fsync(self._file.fileno())
        self._file.close()
        return shape

    def close(self) -> None:
        """Closes the file after a failure (whose error is the one to report, not this flush's)."""
        with contextlib.suppress(OSError):
            self._file.close()


class SplitWriter:
    """The six arrays of one split, growing one encoded chunk at a time; only pairs that fit are kept.

    Args:
        root: the (partial) DATA_DIR; the arrays go to root/split/.
        split: "train" or "valid".
        settings: prepare's settings; max_source_length and max_target_length are the filter.
        vocab_sizes: {"source": V_s, "target": V_t}, which choose the ids' dtype.
        sizes: {array file: bytes} to resume from (each file is truncated to it), or None for new files.
    """

    def __init__(self, root: Path, split: str, settings: dict, vocab_sizes: dict, sizes: dict | None):
        (root / split).mkdir(exist_ok=True)
        self.root, self.split = root, split
        self.limits = {side: settings[f"max_{side}_length"] for side in SIDES}
        dtypes = {}
        for side in SIDES:
            dtypes[f"{side}_ids"] = id_dtype(vocab_sizes[side])
            dtypes[f"{side}_offsets"] = np.dtype(np.int64)
            dtypes[f"{side}_lengths"] = length_dtype(self.limits[side])
        self.files = {name: NpyAppender(root / array_file(split, name), dtypes[name],
                                         None if sizes is None else sizes[array_file(split, name)])
                      for name in ARRAYS}
        if sizes is None:
            for side in SIDES:
                self.files[f"{side}_offsets"].append(np.zeros(1, np.int64))
        self.tokens = {side: self._last_offset(side) for side in SIDES}

    def _last_offset(self, side: str) -> int:
        appender = self.files[f"{side}_offsets"]
        appender.flush()
        with open(appender.path, "rb") as handle:
            handle.seek(appender.size - 8)
            return int(np.frombuffer(handle.read(8), np.int64)[0])

    @property
    def pairs(self) -> int:
        """Pairs written so far."""
        files = self.files["source_lengths"]
        return (files.size - files.header_bytes) // files.dtype.itemsize

    def append(self, source_ids: list[list[int]], target_ids: list[list[int]]) -> int:
        """Appends the pairs whose source + EOS and BOS + target fit, as `pipeline.encode_corpus` keeps
        them (`len + 1 <= max_length`); returns how many were kept.

        Args:
            source_ids, target_ids: one chunk's token ids per pair, without BOS/EOS (B lists each).
        """
        lengths = {side: np.fromiter(map(len, ids), np.int64, len(ids))
                   for side, ids in zip(SIDES, (source_ids, target_ids))}
        keep = (lengths["source"] + 1 <= self.limits["source"]) & (lengths["target"] + 1 <= self.limits["target"])
        for side, ids in zip(SIDES, (source_ids, target_ids)):
            flat = np.fromiter(itertools.chain.from_iterable(ids), self.files[f"{side}_ids"].dtype,
                               int(lengths[side].sum()))
            kept_lengths = lengths[side]
            if not keep.all():
                flat, kept_lengths = flat[np.repeat(keep, kept_lengths)], kept_lengths[keep]
            offsets = self.tokens[side] + np.cumsum(kept_lengths)
            self.tokens[side] += int(kept_lengths.sum())
            self.files[f"{side}_ids"].append(flat)
            self.files[f"{side}_offsets"].append(offsets)
            self.files[f"{side}_lengths"].append(kept_lengths)
        return int(keep.sum())

    def sizes(self) -> dict:
        """{array file: bytes on disk}, after flushing: the resume point."""
        for appender in self.files.values():
            appender.flush()
        return {array_file(self.split, name): appender.size for name, appender in self.files.items()}

    def finish(self) -> dict:
        """The split's manifest entry: pairs and each array's file, dtype, shape and sha256."""
        arrays = {}
        for name, appender in self.files.items():
            shape = appender.finish()
            file = array_file(self.split, name)
            arrays[name] = {"file": file, "dtype": str(appender.dtype), "shape": list(shape),
                            "sha256": sha256_file(self.root / file)}
        return {"pairs": arrays["source_lengths"]["shape"][0],
                "tokens": {side: arrays[f"{side}_ids"]["shape"][0] for side in SIDES}, "arrays": arrays}

    def close(self) -> None:
        for appender in self.files.values():
            appender.close()
