"""Training batches from a corpus of token ids: length buckets sized in tokens, a seeded order each epoch.

Any corpus with `source_lengths` and `target_lengths` (N,) arrays, `pair(i)` (its source and target
ids) and `indices()` (one epoch's pairs, upsampling included) will do: the in-memory
`pipeline.EncodedCorpus` and a DATA_DIR's memory-mapped `PreparedSplit` give the same batches for the
same pairs, so training reads a corpus of millions of pairs without holding it.

Each epoch's order is a permutation drawn from a generator seeded with (seed, epoch), so epoch k has
the same batches whether training ran straight through or resumed there. Bucketing is tf.data's
`bucket_by_sequence_length`, done in numpy: a pair of length L = max(source + EOS, BOS + target)
goes to bucket `searchsorted(boundaries, L, "right")`; a bucket is emitted when it holds its batch
size; partial buckets are flushed at the end, in bucket order. So the number of batches an epoch has
does not depend on the order, and Keras knows an epoch's length from the start.

    >>> batches = TrainingBatches(corpus, batch_tokens=4096, seed=0)
    >>> source_ids, target_ids, labels = batches.batch(0)     # int32 (B, S), (B, T), (B, T)
"""

from __future__ import annotations

import numpy as np

from keras_transformer.serve.bundle_format import BOS_ID, EOS_ID, PAD_ID
from keras_transformer.serve.errors import OptionError


def bucket_boundaries(max_length: int) -> list[int]:
    """Upper bounds (exclusive) of the length buckets: 8, 12, 16, 24, 32, 48, 64, ... past max_length."""
    boundaries, size = [], 8
    while size <= max_length:
        boundaries.append(size)
        boundaries.append(size * 3 // 2)
        size *= 2
    return [b for b in boundaries if b <= max_length] + [max_length + 1]


def bucket_plan(batch_tokens: int, longest: int) -> tuple[list[int], list[int]]:
    """(boundaries, batch sizes): the length buckets for rows of at most `longest` tokens, and the
    rows per batch of each bucket (len(boundaries) + 1 of them) for about `batch_tokens` tokens."""
    boundaries = bucket_boundaries(longest)
    return boundaries, [max(1, batch_tokens // b) for b in boundaries] + [max(1, batch_tokens // (longest + 1))]


def plan_batches(row_lengths: np.ndarray, order: np.ndarray, boundaries: list[int],
                 batch_sizes: list[int]) -> list[np.ndarray]:
    """The batches `bucket_by_sequence_length` makes of the pairs `order` (M,), in the order it emits them.

    Args:
        row_lengths: (N,) each pair's length L (the longer side with its EOS or BOS).
        order: (M,) pair indices, in the order they are read.
    Returns:
        Arrays of pair indices, one per batch.
    """
    buckets = np.searchsorted(boundaries, row_lengths[order], side="right")  # (M,)
    by_bucket = np.argsort(buckets, kind="stable")  # positions in `order`, bucket by bucket
    starts = np.searchsorted(buckets[by_bucket], np.arange(len(batch_sizes) + 1))
    emitted_at, full, partial = [], [], []
    for bucket, size in enumerate(batch_sizes):
        positions = by_bucket[starts[bucket]:starts[bucket + 1]]  # ascending: stable sort
        complete = len(positions) // size * size
        if complete:
            groups = positions[:complete].reshape(-1, size)  # (batches, size)
            emitted_at.append(groups[:, -1])  # a batch is emitted when its last row arrives
            full.extend(order[groups])
        if complete < len(positions):
            partial.append(order[positions[complete:]])
    if not full:
        return partial
    return [full[i] for i in np.argsort(np.concatenate(emitted_at))] + partial


def pad_rows(corpus, rows, length: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(source_ids (B, S), target_ids (B, T), labels (B, T)) int32 of the pairs `rows`, padded with
    PAD_ID to the longest row, or to `length` (fixed shapes): source + EOS, BOS + target, target + EOS."""
    sources, targets = zip(*(corpus.pair(row) for row in rows))
    source_length = length or max(len(s) for s in sources) + 1
    target_length = length or max(len(t) for t in targets) + 1
    source_ids = np.full((len(rows), source_length), PAD_ID, dtype=np.int32)
    target_ids = np.full((len(rows), target_length), PAD_ID, dtype=np.int32)
    labels = np.full((len(rows), target_length), PAD_ID, dtype=np.int32)
    for i, (s, t) in enumerate(zip(sources, targets)):
        source_ids[i, :len(s)] = s
        source_ids[i, len(s)] = EOS_ID
        target_ids[i, 0] = BOS_ID
        target_ids[i, 1:len(t) + 1] = t
        labels[i, :len(t)] = t
        labels[i, len(t)] = EOS_ID
    return source_ids, target_ids, labels


class TrainingBatches:
    """The batches of every epoch of a corpus, computed one epoch at a time.

    Args:
        corpus: an `EncodedCorpus` or a `PreparedSplit` (see the module docstring).
        batch_tokens: about this many tokens per side in a batch.
        seed: epoch k's order is a permutation drawn with the generator seeded by (seed, k).
        shuffle: False keeps the pairs in corpus order (validation).
        fixed_shapes: pad every batch of a bucket to the bucket's boundary (one XLA program per bucket).
        source_limit, target_limit: leave out pairs longer than this (EOS / BOS included).
        longest: plan the buckets for rows of up to this length (default: the longest pair), so that
            corpora whose lengths vary (BPE-dropout's segmentations) share one plan.

    Raises:
        OptionError: no pair is left after the length filter.
    """

    def __init__(self, corpus, batch_tokens: int, seed: int = 0, shuffle: bool = True, fixed_shapes: bool = False,
                 source_limit: int | None = None, target_limit: int | None = None, longest: int | None = None):
        self.corpus, self.seed, self.shuffle, self.fixed_shapes = corpus, seed, shuffle, fixed_shapes
        source_lengths = np.asarray(corpus.source_lengths, dtype=np.int32) + 1  # (N,) with EOS
        target_lengths = np.asarray(corpus.target_lengths, dtype=np.int32) + 1  # (N,) with BOS
        indices = np.asarray(corpus.indices())  # (M,) one epoch, upsampling included
        if source_limit is not None or target_limit is not None:
            keep = np.ones(len(indices), dtype=bool)
            if source_limit is not None:
                keep &= source_lengths[indices] <= source_limit
            if target_limit is not None:
                keep &= target_lengths[indices] <= target_limit
            indices = indices[keep]
        if len(indices) == 0:
            raise OptionError("expected at least one training pair after filtering, got none")
        self.indices = indices
        self.row_lengths = np.maximum(source_lengths, target_lengths)  # (N,)
        self.longest = longest or int(self.row_lengths[indices].max())
        self.boundaries, self.batch_sizes = bucket_plan(batch_tokens, self.longest)
        counts = np.bincount(np.searchsorted(self.boundaries, self.row_lengths[indices], side="right"),
                             minlength=len(self.batch_sizes))
        self.num_batches = int(sum(-(-count // size) for count, size in zip(counts, self.batch_sizes)))
        self._planned: tuple[int, list[np.ndarray]] | None = None

    def order(self, epoch: int) -> np.ndarray:
        """The pairs of `epoch`, in the order they are read (M,)."""
        if not self.shuffle:
            return self.indices
        return np.random.default_rng([self.seed, epoch]).permutation(self.indices)

    def epoch_batches(self, epoch: int) -> list[np.ndarray]:
        """The pair indices of each batch of `epoch`, in order (the last epoch's plan is kept)."""
        if self._planned is None or self._planned[0] != epoch:
            self._planned = (epoch, plan_batches(self.row_lengths, self.order(epoch), self.boundaries,
                                                 self.batch_sizes))
        return self._planned[1]

    def batch(self, step: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Batch `step` counted from the first batch of epoch 0 (epoch = step // num_batches), padded."""
        epoch, index = divmod(int(step), self.num_batches)
        rows = self.epoch_batches(epoch)[index]
        length = None
        if self.fixed_shapes:
            bucket = int(np.searchsorted(self.boundaries, self.row_lengths[rows].max(), side="right"))
            length = self.boundaries[bucket] - 1 if bucket < len(self.boundaries) else None
        return pad_rows(self.corpus, rows, length)

    def num_target_tokens(self) -> int:
        """Label tokens (target + EOS) in an epoch: the unit of training throughput."""
        return int((np.asarray(self.corpus.target_lengths, dtype=np.int64)[self.indices] + 1).sum())
