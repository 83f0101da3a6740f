"""Training batches: the prepared (memory-mapped) path gives exactly the batches of the in-memory path,
every epoch holds each pair once (upsampled ones N times) in `num_batches` batches, epoch k's batches
do not depend on what ran before, and the numpy bucketing is tf.data's `bucket_by_sequence_length`."""

import numpy as np
import pytest

from keras_transformer.corpus import read_corpora, write_tsv
from keras_transformer.pipeline import EncodedCorpus, encode_corpus
from keras_transformer.prepare import prepare
from keras_transformer.serve.bundle_format import PAD_ID
from keras_transformer.tokenizer_training import train_tokenizers
from keras_transformer.training_batches import TrainingBatches, bucket_plan, plan_batches


@pytest.fixture(scope="module")
def corpora(tmp_path_factory, demo_pairs):
    folder = tmp_path_factory.mktemp("corpora")
    write_tsv(demo_pairs.train[:300], folder / "big.tsv")
    write_tsv(demo_pairs.train[300:360], folder / "small.tsv")
    return [str(folder / "big.tsv"), f"{folder / 'small.tsv'}*3"]


def _all_batches(batches, epochs):
    return [batches.batch(step) for step in range(epochs * batches.num_batches)]


def test_the_prepared_path_gives_the_batches_of_the_in_memory_path(corpora, tmp_path):
    """Today's path: read the pairs, learn the tokenizers, encode in memory. The prepared path:
    `prepare` (streamed, chunked, memory-mapped). Same tokenizers, same ids, same batches."""
    limits = dict(source_limit=20, target_limit=22)  # stricter than the DATA_DIR's: filtered at training
    pairs, _ = read_corpora(corpora)
    source, target = train_tokenizers(pairs, 150, 170)
    in_memory = TrainingBatches(encode_corpus(pairs, source, target, 24, 24), 200, seed=4, **limits)
    data = prepare(corpora, tmp_path / "data", source_vocab_size=150, target_vocab_size=170,
                   max_source_length=24, max_target_length=24, log=lambda *a: None, progress=False, chunk_pairs=64)
    assert data.source_tokenizer.to_str() == source.to_str() and data.target_tokenizer.to_str() == target.to_str()
    prepared = TrainingBatches(data.train, 200, seed=4, **limits)
    assert prepared.num_batches == in_memory.num_batches > 10
    for ours, theirs in zip(_all_batches(prepared, 2), _all_batches(in_memory, 2), strict=True):
        for a, b in zip(ours, theirs):
            assert a.dtype == b.dtype == np.int32
            np.testing.assert_array_equal(a, b)


def _corpus(rng, n=300):
    source = [list(rng.integers(4, 50, rng.integers(1, 30))) for _ in range(n)]
    target = [list(rng.integers(4, 50, rng.integers(1, 20))) for _ in range(n)]
    return EncodedCorpus(source, target)


def test_an_epoch_holds_every_pair_once_in_num_batches_batches():
    corpus = _corpus(np.random.default_rng(0))
    batches = TrainingBatches(corpus, 256, seed=1)
    for epoch in (0, 1, 7):
        planned = batches.epoch_batches(epoch)
        assert len(planned) == batches.num_batches
        assert sorted(np.concatenate(planned).tolist()) == list(range(len(corpus)))
    assert [b.tolist() for b in batches.epoch_batches(0)] != [b.tolist() for b in batches.epoch_batches(1)]


def test_epoch_k_does_not_depend_on_the_epochs_before_it():
    """A resumed run starts at epoch k: a fresh planner gives the batches a long-running one gives."""
    corpus = _corpus(np.random.default_rng(2))
    running = TrainingBatches(corpus, 256, seed=3)
    steps = running.num_batches
    straight = [running.batch(step)[2].tolist() for step in range(3 * steps)]
    resumed = TrainingBatches(corpus, 256, seed=3)
    assert [resumed.batch(step)[2].tolist() for step in range(2 * steps, 3 * steps)] == straight[2 * steps:]


@pytest.mark.parametrize("fixed_shapes", [False, True])
def test_numpy_bucketing_is_tf_datas_bucket_by_sequence_length(fixed_shapes):
    """The rows in one order: `plan_batches` + padding give what tf.data's bucket_by_sequence_length gave
    (today's in-memory pipeline before the corpora were prepared), batch for batch, padding included."""
    import tensorflow as tf

    corpus = _corpus(np.random.default_rng(5), n=400)
    order = np.random.default_rng(6).permutation(len(corpus))
    rows = [(s + [2], [1] + t, t + [2]) for s, t in (corpus.pair(i) for i in order)]
    longest = max(max(len(r[0]), len(r[1])) for r in rows)
    boundaries, batch_sizes = bucket_plan(200, longest)
    reference = tf.data.Dataset.from_generator(
        lambda: iter(rows), output_signature=(tf.TensorSpec([None], tf.int32),) * 3).bucket_by_sequence_length(
        element_length_func=lambda s, t, y: tf.maximum(tf.shape(s)[0], tf.shape(t)[0]),
        bucket_boundaries=boundaries, bucket_batch_sizes=batch_sizes, padding_values=(PAD_ID,) * 3,
        pad_to_bucket_boundary=fixed_shapes)
    batches = TrainingBatches(corpus, 200, shuffle=False, fixed_shapes=fixed_shapes)
    batches.indices = order  # read in this order, as a shuffled epoch would
    ours = [batches.batch(step) for step in range(batches.num_batches)]
    theirs = [tuple(np.asarray(x) for x in batch) for batch in reference]
    assert len(ours) == len(theirs) > 10
    for mine, expected in zip(ours, theirs):
        for a, b in zip(mine, expected):
            np.testing.assert_array_equal(a, b)


def test_plan_batches_emits_a_bucket_when_it_fills_and_flushes_the_rest_in_bucket_order():
    lengths = np.array([5, 20, 6, 21, 7, 5])  # buckets 0 (< 8) and 3 (< 24): sizes 2 and 1
    batches = plan_batches(lengths, np.arange(6), [8, 12, 16, 24], [2, 2, 2, 1, 1])
    assert [b.tolist() for b in batches] == [[1], [0, 2], [3], [4, 5]]
    batches = plan_batches(lengths, np.arange(5), [8, 12, 16, 24], [2, 2, 2, 1, 1])
    assert [b.tolist() for b in batches] == [[1], [0, 2], [3], [4]]  # the partial bucket comes last


def test_the_length_filter_and_an_empty_corpus():
    corpus = EncodedCorpus([[4] * 3, [5] * 9], [[6] * 2, [7] * 2])
    assert TrainingBatches(corpus, 64, source_limit=5).indices.tolist() == [0]
    with pytest.raises(ValueError, match="expected at least one training pair after filtering, got none"):
        TrainingBatches(corpus, 64, source_limit=2)
