import numpy as np
import pytest

from keras_transformer.pipeline import EncodedCorpus, make_dataset, make_resampled_dataset
from keras_transformer.serve.bundle_format import BOS_ID, EOS_ID, PAD_ID
from keras_transformer.training_batches import bucket_boundaries


def _corpus(rng, n=300):
    source = [list(rng.integers(4, 50, rng.integers(1, 30))) for _ in range(n)]
    target = [list(rng.integers(4, 50, rng.integers(1, 20))) for _ in range(n)]
    return EncodedCorpus(source, target)


def test_batches_follow_the_teacher_forcing_conventions():
    corpus = _corpus(np.random.default_rng(0))
    seen = 0
    for inputs, labels in make_dataset(corpus, batch_tokens=256, shuffle=False):
        source, target, labels = (np.asarray(x) for x in (inputs["source_ids"], inputs["target_ids"], labels))
        assert source.dtype == target.dtype == labels.dtype == np.int32
        assert target.shape == labels.shape
        assert (target[:, 0] == BOS_ID).all()
        for row in range(len(source)):
            s = source[row][source[row] != PAD_ID]
            y = labels[row][labels[row] != PAD_ID]
            t = target[row][target[row] != PAD_ID]
            assert s[-1] == EOS_ID and y[-1] == EOS_ID
            np.testing.assert_array_equal(t[1:], y[:-1])  # decoder input = [BOS] + y, labels = y + [EOS]
            assert list(s[:-1]) in corpus.source
        seen += len(source)
    assert seen == len(corpus)
    assert int(make_dataset(corpus, batch_tokens=256, shuffle=False).cardinality()) == len(
        list(make_dataset(corpus, batch_tokens=256, shuffle=True, seed=9)))


def test_batches_are_sized_by_tokens():
    corpus = _corpus(np.random.default_rng(1), n=500)
    sizes = []
    for inputs, labels in make_dataset(corpus, batch_tokens=200, shuffle=True, seed=3):
        longest = max(inputs["source_ids"].shape[1], labels.shape[1])
        assert len(labels) * longest <= 200 + longest  # a bucket's batch fits the token budget
        sizes.append(len(labels))
    assert max(sizes) > 2 * min(sizes)  # short sentences come in bigger batches


def test_shuffle_is_deterministic_under_the_seed():
    corpus = _corpus(np.random.default_rng(2))
    first = lambda seed: [np.asarray(y).tolist() for _, y in make_dataset(corpus, 256, True, seed)]  # noqa: E731
    assert first(5) == first(5)
    assert first(5) != first(6)


def test_bucket_boundaries_cover_the_longest_sentence():
    assert bucket_boundaries(40) == [8, 12, 16, 24, 32, 41]
    assert bucket_boundaries(5) == [6]


def test_empty_corpus_is_a_clear_error():
    with pytest.raises(ValueError, match="expected at least one training pair"):
        make_dataset(EncodedCorpus([], []), 100)


def test_fixed_shapes_pad_each_bucket_to_its_boundary():
    corpus = _corpus(np.random.default_rng(4))
    longest = max(max(map(len, corpus.source)), max(map(len, corpus.target))) + 1  # with EOS / BOS
    boundaries = set(bucket_boundaries(longest))
    for inputs, labels in make_dataset(corpus, batch_tokens=256, shuffle=True, fixed_shapes=True):
        length = inputs["source_ids"].shape[1]
        assert inputs["target_ids"].shape[1] == labels.shape[1] == length  # one shape per bucket
        assert length + 1 in boundaries


def test_resampled_dataset_encodes_each_pass_anew_and_counts_one_pass_of_steps():
    base = _corpus(np.random.default_rng(7), n=120)
    calls = []

    def encode_pass():  # each call a new "segmentation": every id shifted by 100 x the call number
        calls.append(None)
        return EncodedCorpus([[i + 100 * len(calls) for i in s] for s in base.source], base.target)

    dataset, steps = make_resampled_dataset(encode_pass, 128, 31, seed=3)
    assert steps == int(make_dataset(base, 128, shuffle=False).cardinality())  # same lengths, same count
    batches = [np.asarray(x["source_ids"]) for x, _ in dataset.take(2 * steps)]
    rows = lambda part: sorted(tuple(row[row != PAD_ID]) for batch in part for row in batch)  # noqa: E731
    expected = lambda shift: sorted((*(i + shift for i in s), EOS_ID) for s in base.source)  # noqa: E731
    assert rows(batches[:steps]) == expected(200)  # call 1 counted the steps; calls 2, 3 are passes 1, 2
    assert rows(batches[steps:]) == expected(300)
    assert [b.shape for b in batches[:steps]] != [b.shape for b in batches[steps:]]  # reshuffled per pass
