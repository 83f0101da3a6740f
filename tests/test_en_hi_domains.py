"""bench/en_hi_domains.py: the en-hi training pairs split by source, Tatoeba and MTurk, every pair
in exactly one part and in its order."""

import pytest

from bench import en_hi_domains
from keras_transformer.corpus import read_parallel_corpus

pytestmark = pytest.mark.skipif(not en_hi_domains.MTURK_RAW.is_dir(), reason="../shared/data/en-hi is not here")


def test_the_split_is_a_partition_by_the_hindi_side(tmp_path):
    paths = en_hi_domains.split_by_domain(en_hi_domains.EN_HI / "train.tsv", tmp_path)
    train, _ = read_parallel_corpus(str(en_hi_domains.EN_HI / "train.tsv"))
    tatoeba, _ = read_parallel_corpus(str(paths["tatoeba"]))
    mturk, _ = read_parallel_corpus(str(paths["mturk"]))
    assert len(tatoeba) + len(mturk) == len(train) and tatoeba and mturk
    assert set(tatoeba) | set(mturk) == set(train)
    known = en_hi_domains.mturk_hindi_sentences()
    assert all(hindi in known for _, hindi in mturk) and not any(hindi in known for _, hindi in tatoeba)
    in_train = iter(train)  # each part keeps the order of train.tsv
    assert all(any(pair == other for other in in_train) for pair in tatoeba[:50])
    # Tatoeba's sentences are the short everyday ones of the valid and test splits
    mean_words = lambda pairs: sum(len(e.split()) for e, _ in pairs) / len(pairs)  # noqa: E731
    assert mean_words(tatoeba) < mean_words(mturk)
