"""From token ids to `tf.data` batches for teacher forcing.

Conventions (same ids in both languages, see serve/bundle_format.py):
    source_ids   = tokens(source) + [EOS]
    target_ids   = [BOS] + tokens(target)      (decoder input)
    labels       = tokens(target) + [EOS]      (what each decoder position must predict)
Pairs whose source or target would exceed the model's maximum length are skipped and counted.
Batches are bucketed by length and sized by tokens, not by a fixed number of sentences, so short
sentences come in big batches and long ones in small batches, with little padding
(`training_batches.py` plans them in numpy, from the lengths alone).

The corpus is in memory (`EncodedCorpus`, from pairs of text) or memory-mapped (a prepared DATA_DIR's
`PreparedSplit`): either way tf.data receives one finished batch per step through `tf.numpy_function`
over a `range` dataset, so the input pipeline holds one batch, never the corpus.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

from keras_transformer.training_batches import TrainingBatches


@dataclass
class EncodedCorpus:
    """Token ids without specials, in memory; `source[i]` and `target[i]` are lists of ints.

    It offers what `TrainingBatches` reads of a corpus (the lengths arrays, `pair(i)`, `indices()`),
    as a prepared DATA_DIR's split does."""

    source: list[list[int]]
    target: list[list[int]]
    skipped_too_long: int = 0
    _lengths: dict = field(default_factory=dict, repr=False, compare=False)

    def __len__(self):
        return len(self.source)

    @property
    def source_lengths(self) -> np.ndarray:
        """(N,) tokens per source sentence."""
        if "source" not in self._lengths:
            self._lengths["source"] = np.fromiter(map(len, self.source), dtype=np.int32, count=len(self.source))
        return self._lengths["source"]

    @property
    def target_lengths(self) -> np.ndarray:
        """(N,) tokens per target sentence."""
        if "target" not in self._lengths:
            self._lengths["target"] = np.fromiter(map(len, self.target), dtype=np.int32, count=len(self.target))
        return self._lengths["target"]

    def pair(self, index: int) -> tuple[list[int], list[int]]:
        """Pair `index`'s (source ids, target ids)."""
        return self.source[index], self.target[index]

    def indices(self) -> np.ndarray:
        """The pairs of one epoch: every pair once, in order (upsampling already repeated them)."""
        return np.arange(len(self.source), dtype=np.int64)

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


def training_dataset(batches: TrainingBatches, first_epoch: int = 0, repeat: bool = False):
    """A `tf.data.Dataset` of ({"source_ids": (B, S), "target_ids": (B, T)}, labels (B, T)), int32, padded
    with PAD_ID: epoch `first_epoch`'s batches, or with `repeat` every epoch from it on, endlessly (give
    `model.fit` `steps_per_epoch=batches.num_batches`).

    Batch k comes from `batches.batch(k)` through `tf.numpy_function` over a `range` dataset: one
    finished batch per element, no per-row tf.data work, and a known length for one epoch."""
    import tensorflow as tf

    start = first_epoch * batches.num_batches
    stop = 2**62 if repeat else start + batches.num_batches

    def batch(step):
        source_ids, target_ids, labels = tf.numpy_function(batches.batch, [step], (tf.int32,) * 3, stateful=True)
        for tensor in (source_ids, target_ids, labels):
            tensor.set_shape([None, None])
        return {"source_ids": source_ids, "target_ids": target_ids}, labels

    return tf.data.Dataset.range(start, stop).map(batch).prefetch(tf.data.AUTOTUNE)


def make_dataset(corpus, batch_tokens: int, shuffle: bool = True, seed: int = 0, fixed_shapes: bool = False,
                 first_epoch: int = 0, repeat: bool = False):
    """`training_dataset` of a corpus (`EncodedCorpus` or `PreparedSplit`): each batch holds at most
    about `batch_tokens` tokens per side; `shuffle` draws each epoch's order from (seed, epoch).

    `fixed_shapes` pads every batch of a bucket to the bucket's boundary, so XLA (`--jit-compile`)
    compiles one program per bucket instead of one per distinct batch shape."""
    return training_dataset(TrainingBatches(corpus, batch_tokens, seed, shuffle, fixed_shapes), first_epoch, repeat)


def make_resampled_dataset(encode_pass, batch_tokens: int, longest: int, seed: int = 0,
                           fixed_shapes: bool = False):
    """Batches like `make_dataset`'s from a corpus encoded anew for each pass over the data:
    `encode_pass()` returns a fresh `EncodedCorpus` (e.g. with BPE dropout, a new segmentation of
    every sentence). `longest` bounds the rows' lengths (EOS/BOS included: the model's longer
    maximum length), so every pass shares one bucket plan. Pass p's rows are shuffled with a
    generator seeded by (seed, p).

    The dataset holds one position in the passes: iterate it once at a time. Returns (dataset,
    steps_per_epoch): the number of batches of a pass varies with the segmentation, so the dataset
    repeats forever and an epoch is `steps_per_epoch` batches (those of one segmentation drawn
    here): no batch is dropped, and epochs match passes on average; give `steps_per_epoch` to
    `model.fit`."""
    import tensorflow as tf

    def passes():
        for number in itertools.count():
            batches = TrainingBatches(encode_pass(), batch_tokens, seed, fixed_shapes=fixed_shapes, longest=longest)
            for index in range(batches.num_batches):
                yield batches.batch(number * batches.num_batches + index)

    stream = passes()

    def next_batch(index):  # the index only orders the calls; the batches come from `stream`
        source_ids, target_ids, labels = tf.numpy_function(lambda _: next(stream), [index], (tf.int32,) * 3,
                                                           stateful=True)
        for tensor in (source_ids, target_ids, labels):
            tensor.set_shape([None, None])
        return {"source_ids": source_ids, "target_ids": target_ids}, labels

    steps_per_epoch = TrainingBatches(encode_pass(), batch_tokens, seed, longest=longest).num_batches
    dataset = tf.data.Dataset.range(2**62).map(next_batch)
    return dataset.prefetch(tf.data.AUTOTUNE), steps_per_epoch
