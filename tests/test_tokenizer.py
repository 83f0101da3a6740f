"""Tests of the subword tokenizer: training (keras_transformer) and the wrapper (serve)."""

import json
import unicodedata
from pathlib import Path

import numpy as np
import pytest

from keras_transformer.tokenizer_training import train_tokenizer
from keras_transformer.serve.bundle_format import BOS_ID, EOS_ID, PAD_ID, SPECIAL_TOKENS, UNK_ID
from keras_transformer.serve.tokenizer import SubwordTokenizer

DATA_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data"

SENTENCES = {
    "en": [
        "How are you?",
        "I'm fine, thanks! And you?",
        "The cat (a black one) sat on the mat.",
        "It costs 25 dollars, not 3.50.",
        "She said: \"Don't go there.\"",
    ],
    "de": [
        "Wie geht es dir?",
        "Ein Mann mit einem orangefarbenen Hut, der etwas anstarrt.",
        "Die Straße ist größer als übermorgen.",
        "Zwei junge, weiße Männer sind im Freien.",
    ],
    "hi": [
        "वह मेगुरो में एक कंपनी चलाता है।",
        "आप कैसे हैं?",
        "मैं ठीक हूँ, धन्यवाद।",
        "उसने 25 रुपये दिए।",
        "टॉम और मैरी बहुत भूखे हैं।",
    ],
}
ALL_SENTENCES = [s for sentences in SENTENCES.values() for s in sentences]


@pytest.fixture(scope="module")
def tokenizer() -> SubwordTokenizer:
    return train_tokenizer(ALL_SENTENCES * 3, vocab_size=300)


# ---------------------------------------------------------------------------- training


def test_special_tokens_have_ids_0_to_3(tokenizer):
    assert [tokenizer.tokenizer.id_to_token(i) for i in range(4)] == SPECIAL_TOKENS
    assert (PAD_ID, BOS_ID, EOS_ID, UNK_ID) == (0, 1, 2, 3)
    assert tokenizer.tokenizer.token_to_id("[UNK]") == UNK_ID


def test_vocab_size_counts_every_id(tokenizer):
    assert tokenizer.vocab_size == len(tokenizer.tokenizer.get_vocab())
    assert 4 < tokenizer.vocab_size <= 300


def test_encode_adds_no_special_tokens(tokenizer):
    ids = tokenizer.encode("How are you?")
    assert ids and not set(ids) & {PAD_ID, BOS_ID, EOS_ID, UNK_ID}


def test_special_token_text_is_ordinary_text(tokenizer):
    # A user typing "[EOS]" must not produce the EOS id.
    ids = tokenizer.encode("you [EOS] are")
    assert EOS_ID not in ids


@pytest.mark.parametrize("language", sorted(SENTENCES))
def test_decode_round_trip(tokenizer, language):
    for sentence in SENTENCES[language]:
        assert tokenizer.decode(tokenizer.encode(sentence)) == sentence


def test_round_trip_of_unseen_combinations(tokenizer):
    # New word orders of known characters still detokenize exactly.
    sentence = "Mann, you are fine? (25) है। नहीं"
    assert tokenizer.decode(tokenizer.encode(sentence)) == sentence


def test_normalizer_applies_nfc_and_collapses_whitespace(tokenizer):
    decomposed = unicodedata.normalize("NFD", "Die Straße ist größer.")
    assert decomposed != "Die Straße ist größer."
    assert tokenizer.encode(decomposed) == tokenizer.encode("Die Straße ist größer.")
    assert tokenizer.decode(tokenizer.encode("  How   are\tyou?  ")) == "How are you?"


def test_unknown_characters_map_to_unk(tokenizer):
    ids = tokenizer.encode("How ☃ are you€")
    assert ids.count(UNK_ID) == 2
    assert tokenizer.decode(ids) == "How [UNK] are you[UNK]"


def test_no_byte_fallback(tokenizer):
    assert not any(token.startswith("<0x") for token in tokenizer.tokenizer.get_vocab())


def test_tokens_are_subword_strings(tokenizer):
    tokens = tokenizer.tokens("How are you?")
    assert "".join(tokens).replace("▁", " ").strip() == "How are you?"
    assert len(tokens) == len(tokenizer.encode("How are you?"))


def test_training_is_deterministic():
    first = train_tokenizer(iter(ALL_SENTENCES * 2), vocab_size=200).to_str()
    second = train_tokenizer(list(ALL_SENTENCES * 2), vocab_size=200).to_str()
    assert first == second


def test_punctuation_is_split_from_words(tokenizer):
    # Hindi danda and English punctuation never merge into a word, so "है" and "है।" share ids.
    assert tokenizer.encode("है।")[-1] == tokenizer.encode("।")[-1]
    assert tokenizer.tokens("you?")[-1] == "?"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"texts": ["a b"], "vocab_size": 4}, r"expected vocab_size to be an integer > 4, got 4"),
        ({"texts": ["a b"], "vocab_size": 100, "min_frequency": 0}, r"expected min_frequency .* got 0"),
        ({"texts": ["", "  "], "vocab_size": 100}, r"expected at least one non-empty sentence"),
        ({"texts": "a single string", "vocab_size": 100}, r"expected an iterable of sentences, got a single str"),
        ({"texts": ["ok", 5], "vocab_size": 100}, r"expected str sentences, got int"),
    ],
)
def test_training_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        train_tokenizer(**kwargs)


# ---------------------------------------------------------------------------- decoding


def test_decode_stops_at_first_eos_and_skips_pad_and_bos(tokenizer):
    ids = tokenizer.encode("How are you?")
    text = tokenizer.decode([BOS_ID] + ids + [EOS_ID] + tokenizer.encode("Wie geht") + [PAD_ID, PAD_ID])
    assert text == "How are you?"


def test_decode_accepts_numpy(tokenizer):
    ids = np.array([BOS_ID, *tokenizer.encode("आप कैसे हैं?"), EOS_ID, PAD_ID], dtype=np.int32)
    assert tokenizer.decode(ids) == "आप कैसे हैं?"


def test_batch_matches_single(tokenizer):
    assert tokenizer.encode_batch(ALL_SENTENCES) == [tokenizer.encode(s) for s in ALL_SENTENCES]
    batch = [[BOS_ID, *tokenizer.encode(s), EOS_ID] for s in ALL_SENTENCES]
    assert tokenizer.decode_batch(batch) == ALL_SENTENCES
    padded = np.zeros((2, 20), dtype=np.int64)  # (B, T), PAD_ID = 0 pads
    for row, sentence in enumerate(SENTENCES["de"][:2]):
        ids = tokenizer.encode(sentence) + [EOS_ID]
        padded[row, : len(ids)] = ids
    assert tokenizer.decode_batch(padded) == SENTENCES["de"][:2]


def test_decode_rejects_out_of_range_ids(tokenizer):
    with pytest.raises(ValueError,
                       match=rf"expected token ids in 0\.\.{tokenizer.vocab_size - 1}, got {tokenizer.vocab_size}"):
        tokenizer.decode([5, tokenizer.vocab_size])


# ---------------------------------------------------------------------------- files


def test_save_and_from_file_round_trip(tokenizer, tmp_path):
    path = tmp_path / "source.tokenizer.json"
    tokenizer.save(path)
    assert [p.name for p in tmp_path.iterdir()] == ["source.tokenizer.json"]  # no temporary left
    loaded = SubwordTokenizer.from_file(path)
    assert loaded.to_str() == tokenizer.to_str()
    assert loaded.vocab_size == tokenizer.vocab_size
    for sentence in ALL_SENTENCES:
        assert loaded.encode(sentence) == tokenizer.encode(sentence)
    assert loaded.encode("[EOS]").count(EOS_ID) == 0  # the setting survives loading
    assert SubwordTokenizer.from_str(path.read_text(encoding="utf-8")).to_str() == tokenizer.to_str()


def test_save_overwrites_atomically(tokenizer, tmp_path):
    path = tmp_path / "t.json"
    path.write_text("old", encoding="utf-8")
    tokenizer.save(path)
    assert SubwordTokenizer.from_file(path).vocab_size == tokenizer.vocab_size


def test_save_into_missing_directory(tokenizer, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"directory .*missing does not exist"):
        tokenizer.save(tmp_path / "missing" / "t.json")


def test_from_file_missing(tmp_path):
    path = tmp_path / "nope.json"
    with pytest.raises(FileNotFoundError, match=r"tokenizer file not found: .*nope\.json"):
        SubwordTokenizer.from_file(path)


def test_from_file_directory(tmp_path):
    with pytest.raises(ValueError, match=r"expected a tokenizer JSON file, got a directory"):
        SubwordTokenizer.from_file(tmp_path)


def test_from_file_not_json(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match=r"broken\.json: expected a tokenizers-library JSON file, got invalid JSON"):
        SubwordTokenizer.from_file(path)


def test_from_file_not_utf8(tmp_path):
    path = tmp_path / "latin1.json"
    path.write_bytes(b'{"a": "\xe9"}')
    with pytest.raises(ValueError, match=r"latin1\.json: expected a UTF-8 tokenizer JSON file"):
        SubwordTokenizer.from_file(path)


def test_from_file_json_but_not_a_tokenizer(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"hidden_dim": 16}), encoding="utf-8")
    with pytest.raises(ValueError,
                       match=r"config\.json: expected a tokenizers-library tokenizer, got JSON it cannot load"):
        SubwordTokenizer.from_file(path)


def test_from_file_wrong_special_ids(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    other = Tokenizer(models.BPE(unk_token="<unk>"))
    other.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.BpeTrainer(vocab_size=50, special_tokens=["<unk>", "<s>", "</s>", "<pad>"], show_progress=False)
    other.train_from_iterator(["hello world"] * 3, trainer=trainer)
    path = tmp_path / "other.json"
    other.save(str(path))
    with pytest.raises(ValueError,
                       match=r"other\.json: expected special tokens \['\[PAD\]', .* at ids 0\.\.3, got \['<unk>'"):
        SubwordTokenizer.from_file(path)


# ---------------------------------------------------------------------------- real data


def _real_lines(relative: str, column: int, count: int) -> list[str]:
    path = DATA_DIR / relative
    if not path.exists():
        pytest.skip(f"real data not found at {path}")
    lines = []
    with open(path, encoding="utf-8") as handle:
        for line, _ in zip(handle, range(count)):
            lines.append(" ".join(unicodedata.normalize("NFC", line.rstrip("\n").split("\t")[column]).split()))
    return lines


@pytest.mark.parametrize(
    ("relative", "column"),
    [("en-hi/train.tsv", 0), ("en-hi/train.tsv", 1), ("en-de-multi30k/train.tsv", 1)],
)
def test_real_data_round_trips(relative, column):
    lines = _real_lines(relative, column, 1000)
    tokenizer = train_tokenizer(lines, vocab_size=2000)
    decoded = tokenizer.decode_batch(tokenizer.encode_batch(lines))
    failures = [(a, b) for a, b in zip(lines, decoded) if a != b]
    assert failures == []
