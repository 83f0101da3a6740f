"""The built-in English→Hindi demo corpus: determinism, the held-out split, and the Hindi itself."""

import functools
import unicodedata

import pytest

from keras_transformer import demo_corpus


def nfc(text):
    return unicodedata.normalize("NFC", text)


@functools.lru_cache(maxsize=None)
def splits(seed):
    return demo_corpus._generate_with_triples(seed)


@functools.lru_cache(maxsize=None)
def corpus(seed):
    return demo_corpus.generate_demo_corpus(seed, max_train_pairs=None, max_test_pairs=None)


def all_rows(seed=0):
    train, test = splits(seed)
    return train + test


def words(sentence):
    return sentence.rstrip(".?।").split()


def test_deterministic_under_the_seed_and_different_across_seeds():
    first = demo_corpus.generate_demo_corpus(seed=0)
    again = demo_corpus.generate_demo_corpus(seed=0)
    other = demo_corpus.generate_demo_corpus(seed=1)
    assert first == again
    assert first.train != other.train
    assert first.test != other.test
    held_out = {t for _, _, t in splits(0)[1]}
    assert held_out != {t for _, _, t in splits(1)[1]}


def test_size_and_caps():
    full = corpus(0)
    assert len(full.train) + len(full.test) >= 20_000
    assert len(demo_corpus.generate_demo_corpus(0).test) == min(1000, len(full.test))
    capped = demo_corpus.generate_demo_corpus(0, max_train_pairs=500, max_test_pairs=40)
    assert capped.train == full.train[:500]
    assert capped.test == full.test[:40]


def test_no_duplicates_and_no_english_in_both_splits():
    full = corpus(0)
    assert len(set(full.train)) == len(full.train)
    assert len(set(full.test)) == len(full.test)
    english_train = {en for en, _ in full.train}
    assert len(english_train) == len(full.train)  # one Hindi per English sentence
    assert not english_train & {en for en, _ in full.test}


def test_held_out_triples_never_occur_in_training():
    train, test = splits(0)
    train_triples = {t for _, _, t in train}
    test_triples = {t for _, _, t in test}
    assert test_triples and not train_triples & test_triples
    assert 0.05 <= len(test_triples) / len(train_triples | test_triples) <= 0.10
    # The pairs returned are exactly the rows of the triples.
    assert [(en, hi) for en, hi, _ in test] == corpus(0).test
    assert [(en, hi) for en, hi, _ in train] == corpus(0).train


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_every_held_out_word_occurs_in_training(seed):
    train, test = splits(seed)
    train_words = {w for en, hi, _ in train for w in words(en) + words(hi)}
    missing = {w for en, hi, _ in test for w in words(en) + words(hi)} - train_words
    assert not missing


def test_text_is_nfc_short_and_punctuated():
    for en, hi, _ in all_rows():
        assert nfc(hi) == hi and nfc(en) == en
        assert en.isascii()
        assert len(en.split()) <= 12 and len(hi.split()) <= 12
        if en.endswith("?"):
            assert hi.startswith("क्या ") and hi.endswith("?")
        else:
            assert en.endswith(".") and hi.endswith("।")


def test_covers_every_construction():
    english = [en for en, _, _ in all_rows()]
    hindi = [hi for _, hi, _ in all_rows()]
    for marker in (" है।", " रहा है।", " रही हैं।", "ेगा।", "ेंगी।", "ने ", " को ", " में ",
                   " पर ", " से ", "नहीं", "क्या "):
        assert any(nfc(marker) in hi for hi in hindi), marker
    for marker in (" does not ", " did not ", " will not ", " is not ", "does ", "did ", "will ",
                   " am ", " are ", " ate ", " read ", " went "):
        assert any(marker in en for en in english), marker


HAND_CHECKED = [
    # transitive simple past: ergative subject, verb agrees with the object
    ("the girl ate the apple.", "लड़की ने सेब खाया।"),
    ("the boy read the book.", "लड़के ने किताब पढ़ी।"),
    ("the girls read the books.", "लड़कियों ने किताबें पढ़ीं।"),
    ("they read the book.", "उन्होंने किताब पढ़ी।"),  # ambiguous with the present: past kept
    ("the good boy ate the bananas.", "अच्छे लड़के ने केले खाए।"),
    ("we drank the water.", "हमने पानी पिया।"),
    ("she drank the tea.", "उसने चाय पी।"),
    ("I wrote the letters.", "मैंने चिट्ठियाँ लिखीं।"),
    ("the tall men did not eat the bread.", "लंबे आदमियों ने रोटी नहीं खाई।"),
    # a को object: default masculine singular
    ("the girls called the boys.", "लड़कियों ने लड़कों को बुलाया।"),
    ("the man looked at the good girl.", "आदमी ने अच्छी लड़की को देखा।"),
    # intransitive past agrees with the subject
    ("they went.", "वे गए।"),
    ("did the girl go?", "क्या लड़की गई?"),
    ("the women came from the garden.", "औरतें बगीचे से आईं।"),
    ("I slept in the room.", "मैं कमरे में सोया।"),
    # habitual, with and without negation
    ("I go.", "मैं जाता हूँ।"),
    ("you go.", "तुम जाते हो।"),
    ("she goes to the market.", "वह बाज़ार जाती है।"),
    ("the good boy sits on the roof.", "अच्छा लड़का छत पर बैठता है।"),
    ("the tall girls eat the apples.", "लंबी लड़कियाँ सेब खाती हैं।"),
    ("he does not go.", "वह नहीं जाता।"),
    ("the girls do not go.", "लड़कियाँ नहीं जातीं।"),
    ("does he go?", "क्या वह जाता है?"),
    # progressive
    ("we are going.", "हम जा रहे हैं।"),
    ("the boys are going to the school.", "लड़के स्कूल जा रहे हैं।"),
    ("is the woman making the tea?", "क्या औरत चाय बना रही है?"),
    ("I am not reading the old newspaper.", "मैं पुराना अख़बार नहीं पढ़ रहा हूँ।"),
    # future
    ("she will go.", "वह जाएगी।"),
    ("I will come from the house.", "मैं घर से आऊँगा।"),
    ("you will write the letter.", "तुम चिट्ठी लिखोगे।"),
    ("will you drink the tea?", "क्या तुम चाय पिओगे?"),
    ("the good boys will not drink the milk.", "अच्छे लड़के दूध नहीं पिएँगे।"),
    ("the women will read the new books.", "औरतें नई किताबें पढ़ेंगी।"),
    ("I will not buy the big banana.", "मैं बड़ा केला नहीं ख़रीदूँगा।"),
]


@functools.lru_cache(maxsize=None)
def translation():
    return {en: hi for en, hi, _ in all_rows()}


@pytest.mark.parametrize("english, hindi", HAND_CHECKED)
def test_hand_checked_sentences(english, hindi):
    assert translation()[english] == nfc(hindi)
