"""From text pairs to `tf.data` batches for teacher forcing.

Conventions (same ids in both languages, see serve/bundle_format.py):
    source_ids   = tokens(source) + [EOS]
    target_ids   = [BOS] + tokens(target)      (decoder input)
    labels       = tokens(target) + [EOS]      (what each decoder position must predict)
Pairs whose source or target would exceed the model's maximum length are skipped and counted.
Batches are bucketed by length and sized by tokens, not by a fixed number of sentences, so short
sentences come in big batches and long ones in small batches, with little padding.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from keras_transformer.serve.bundle_format import BOS_ID, EOS_ID, PAD_ID
from keras_transformer.serve.errors import OptionError


@dataclass
class EncodedCorpus:
    """Token ids without specials; `source[i]` and `target[i]` are lists of ints."""
    source: list[list[int]]
    target: list[list[int]]
    skipped_too_long: int = 0

    def __len__(self):
        return len(self.source)

    def num_target_tokens(self) -> int:
        """Label tokens (target + EOS): the unit of training throughput."""
        return sum(len(t) + 1 for t in self.target)


def encode_corpus(pairs, source_tokenizer, target_tokenizer, max_source_length, max_target_length):
    """Tokenize pairs; drop those whose source + EOS or BOS + target exceed the maximum lengths."""
    source = source_tokenizer.encode_batch([s for s, _ in pairs])
    target = target_tokenizer.encode_batch([t for _, t in pairs])
    kept_source, kept_target = [], []
    for s, t in zip(source, target):
        if len(s) + 1 <= max_source_length and len(t) + 1 <= max_target_length:
            kept_source.append(s)
            kept_target.append(t)
    return EncodedCorpus(kept_source, kept_target, skipped_too_long=len(source) - len(kept_source))


def bucket_boundaries(max_length: int) -> list[int]:
    """Upper bounds (exclusive) of the length buckets: 8, 12, 16, 24, 32, 48, 64, ... past max_length."""
    boundaries, size = [], 8
    while size <= max_length:
        boundaries.append(size)
        boundaries.append(size * 3 // 2)
        size *= 2
    return [b for b in boundaries if b <= max_length] + [max_length + 1]


def _flat(rows, prefix=(), suffix=()):
    """Concatenated ids with (start, length) per row: (flat int32 (N,), starts (R,), lengths (R,))."""
    lengths = np.array([len(r) + len(prefix) + len(suffix) for r in rows], dtype=np.int64)
    flat = np.fromiter((i for r in rows for i in (*prefix, *r, *suffix)), dtype=np.int32, count=int(lengths.sum()))
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    return flat, starts, lengths


def make_dataset(corpus: EncodedCorpus, batch_tokens: int, shuffle: bool = True, seed: int = 0,
                 fixed_shapes: bool = False):
    """A `tf.data.Dataset` of ({"source_ids": (B, S), "target_ids": (B, T)}, labels (B, T)), int32,
    padded with PAD_ID; each batch holds at most about `batch_tokens` tokens per side.

    `fixed_shapes` pads every batch of a bucket to the bucket's boundary, so XLA (`--jit-compile`)
    compiles one program per bucket instead of one per distinct batch shape."""
    import tensorflow as tf

    if len(corpus) == 0:
        raise OptionError("expected at least one training pair after filtering, got none")
    columns = [_flat(corpus.source, suffix=(EOS_ID,)), _flat(corpus.target, prefix=(BOS_ID,)),
               _flat(corpus.target, suffix=(EOS_ID,))]
    flats = [tf.constant(flat) for flat, _, _ in columns]
    dataset = tf.data.Dataset.from_tensor_slices(tuple((starts, lengths) for _, starts, lengths in columns))
    if shuffle:
        dataset = dataset.shuffle(len(corpus), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.map(lambda *spans: tuple(  # row i of each column: its slice of the flat ids
        tf.slice(flat, [start], [length]) for flat, (start, length) in zip(flats, spans)))
    longest = max(max(len(s) for s in corpus.source), max(len(t) for t in corpus.target)) + 1
    dataset, boundaries, batch_sizes = _bucketed(dataset, batch_tokens, longest, fixed_shapes)
    # Each bucket flushes its last partial batch, so the number of batches does not depend on the
    # shuffle order: declaring it gives Keras' progress bar its total from the first epoch.
    num_batches = _num_batches(columns, boundaries, batch_sizes)
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(num_batches))
    dataset = dataset.map(lambda s, t, y: ({"source_ids": s, "target_ids": t}, y))
    return dataset.prefetch(tf.data.AUTOTUNE)


def _num_batches(columns, boundaries, batch_sizes) -> int:
    element_lengths = np.maximum(columns[0][2], columns[1][2])
    bucket_sizes = np.bincount(np.searchsorted(boundaries, element_lengths, side="right"),
                               minlength=len(batch_sizes))
    return int(sum(-(-count // size) for count, size in zip(bucket_sizes, batch_sizes)))


def _columns(corpus: EncodedCorpus):
    return [_flat(corpus.source, suffix=(EOS_ID,)), _flat(corpus.target, prefix=(BOS_ID,)),
            _flat(corpus.target, suffix=(EOS_ID,))]


def bucket_plan(batch_tokens: int, longest: int) -> tuple[list[int], list[int]]:
    """(boundaries, batch sizes): the length buckets for rows of at most `longest` tokens, and the
    rows per batch of each bucket (len(boundaries) + 1 of them) for about `batch_tokens` tokens."""
    boundaries = bucket_boundaries(longest)
    return boundaries, [max(1, batch_tokens // b) for b in boundaries] + [max(1, batch_tokens // (longest + 1))]


def _bucketed(dataset, batch_tokens: int, longest: int, fixed_shapes: bool):
    """Rows (source + EOS, BOS + target, target + EOS) -> padded batches of about `batch_tokens`
    tokens per side, bucketed by length; `longest` bounds every row's length."""
    import tensorflow as tf

    boundaries, batch_sizes = bucket_plan(batch_tokens, longest)
    dataset = dataset.bucket_by_sequence_length(
        element_length_func=lambda s, t, y: tf.maximum(tf.shape(s)[0], tf.shape(t)[0]),
        bucket_boundaries=boundaries,
        bucket_batch_sizes=batch_sizes,
        padding_values=(PAD_ID, PAD_ID, PAD_ID),
        pad_to_bucket_boundary=fixed_shapes,
    )
    return dataset, boundaries, batch_sizes


def make_resampled_dataset(encode_pass, batch_tokens: int, longest: int, seed: int = 0,
                           fixed_shapes: bool = False):
    """Batches like `make_dataset`'s from a corpus encoded anew for each pass over the data:
    `encode_pass()` returns a fresh `EncodedCorpus` (e.g. with BPE dropout, a new segmentation of
    every sentence). `longest` bounds the rows' lengths (EOS/BOS included: the model's longer
    maximum length). Rows are shuffled with a generator seeded by (seed, pass number).

    Each pass is bucketed and padded in numpy (`padded_batches`: the buckets and batch sizes of
    `make_dataset`) and handed over one finished batch per element of an endless `range` dataset,
    through `tf.numpy_function`. Not `Dataset.from_generator`: with a dataset built on it, even one
    yielding precomputed batches, each training step ran about 1.7x slower, its time going to page
    faults in the step's own kernels, while this pipeline runs as fast as `make_dataset`
    (`python -m experiments.training_pipeline`, bench/RESULTS-en-hi.md). The dataset holds one position in
    the passes: iterate it once at a time.

    Returns (dataset, steps_per_epoch). The number of batches of a pass varies with the
    segmentation, so the dataset repeats forever and an epoch is `steps_per_epoch` batches (those of
    one segmentation drawn here): no batch is dropped, and epochs match passes on average; give
    `steps_per_epoch` to `model.fit`."""
    import tensorflow as tf

    boundaries, batch_sizes = bucket_plan(batch_tokens, longest)

    def passes():
        for number in itertools.count():
            corpus = encode_pass()
            if len(corpus) == 0:
                raise OptionError("expected at least one training pair after filtering, got none")
            order = np.random.default_rng([seed, number]).permutation(len(corpus))
            yield from padded_batches(corpus, order, boundaries, batch_sizes, fixed_shapes)

    batches = passes()

    def next_batch(index):  # the index only orders the calls; the batches come from `batches`
        source_ids, target_ids, labels = tf.numpy_function(lambda _: next(batches), [index], (tf.int32,) * 3,
                                                           stateful=True)
        for tensor in (source_ids, target_ids, labels):
            tensor.set_shape([None, None])
        return {"source_ids": source_ids, "target_ids": target_ids}, labels

    sample = encode_pass()
    if len(sample) == 0:
        raise OptionError("expected at least one training pair after filtering, got none")
    steps_per_epoch = max(1, _num_batches(_columns(sample), boundaries, batch_sizes))
    dataset = tf.data.Dataset.range(2**62).map(next_batch)
    return dataset.prefetch(tf.data.AUTOTUNE), steps_per_epoch


def padded_batches(corpus: EncodedCorpus, order, boundaries: list[int], batch_sizes: list[int],
                   fixed_shapes: bool = False):
    """Yields (source_ids (B, S), target_ids (B, T), labels (B, T)) int32 batches of the rows in
    `order`, bucketed as `tf.data.Dataset.bucket_by_sequence_length` does in `make_dataset`: a row
    of length L = max(source + EOS, BOS + target) goes to the bucket `searchsorted(boundaries, L,
    "right")`, a bucket is emitted when it holds its batch size, and partial buckets are flushed at
    the end. Padding (PAD_ID) reaches the batch's longest row, or with `fixed_shapes` the bucket's
    boundary - 1."""
    buckets = [[] for _ in batch_sizes]
    for row in order:
        length = max(len(corpus.source[row]), len(corpus.target[row])) + 1
        bucket = int(np.searchsorted(boundaries, length, side="right"))
        buckets[bucket].append(row)
        if len(buckets[bucket]) == batch_sizes[bucket]:
            yield _padded(corpus, buckets[bucket], boundaries, bucket, fixed_shapes)
            buckets[bucket] = []
    for bucket, rows in enumerate(buckets):
        if rows:
            yield _padded(corpus, rows, boundaries, bucket, fixed_shapes)


def _padded(corpus: EncodedCorpus, rows: list[int], boundaries: list[int], bucket: int, fixed_shapes: bool):
    """One batch of `padded_batches`: the corpus rows `rows` of bucket `bucket`, padded."""
    sources = [corpus.source[row] for row in rows]
    targets = [corpus.target[row] for row in rows]
    source_length = max(len(s) for s in sources) + 1
    target_length = max(len(t) for t in targets) + 1
    if fixed_shapes and bucket < len(boundaries):
        source_length = target_length = boundaries[bucket] - 1
    source_ids = np.full((len(rows), source_length), PAD_ID, dtype=np.int32)
    target_ids = np.full((len(rows), target_length), PAD_ID, dtype=np.int32)
    labels = np.full((len(rows), target_length), PAD_ID, dtype=np.int32)
    for i, (s, t) in enumerate(zip(sources, targets)):
        source_ids[i, :len(s) + 1] = (*s, EOS_ID)
        target_ids[i, :len(t) + 1] = (BOS_ID, *t)
        labels[i, :len(t) + 1] = (*t, EOS_ID)
    return source_ids, target_ids, labels
