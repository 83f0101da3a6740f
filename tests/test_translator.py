"""Tests of `serve.Translator`: batching, decoding options, input handling, bundle checks, threads.

The tiny bundle's model is barely trained (its outputs are mostly "" or one repeated token), so the
batching and ordering logic is also checked with `CopyModel`, a fake step model whose output
depends on each row's source ids: any mix-up between rows or batches shows in the text.
"""

import json
import shutil
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from keras_transformer.serve import Translator
from keras_transformer.serve import bundle_format as fmt
from keras_transformer.serve.bundle import BundleError
from keras_transformer.serve.translator import TruncationWarning

ROOT = Path(__file__).resolve().parents[1]

SENTENCES = [
    "I sit.",
    "you do not call the good girls.",
    "do you call the girl?",
    "are you calling the good woman?",
    "did the woman sit?",
    "the good boys are not calling the girls, and the woman sits.",
    "call!",
    "we sat.",
]


class CopyModel:
    """A fake `StepModel` that "translates" by copying: at position p it emits the row's p-th source
    token (mapped into the target vocabulary), then EOS; with `never_eos`, token 5 forever.
    Records every batch it starts and the positions it steps."""

    def __init__(self, target_vocab_size, never_eos=False):
        self.vocab = target_vocab_size
        self.never_eos = never_eos
        self.started, self.positions = [], []

    def start(self, source_ids):  # (B, S)
        self.started.append(source_ids.copy())
        return {"source_ids": source_ids}

    def step(self, token_ids, position, state):
        self.positions.append(position)
        source = state["source_ids"]  # (B, S)
        logits = np.zeros((len(source), self.vocab), np.float32)  # (B, V)
        for row, ids in enumerate(source):
            real = ids[(ids != fmt.PAD_ID) & (ids != fmt.EOS_ID)]
            if self.never_eos:
                target = 5
            elif position < len(real):
                target = 4 + int(real[position]) % (self.vocab - 4)
            else:
                target = fmt.EOS_ID
            logits[row, target] = 1.0
        return logits, state

    def select(self, state, rows):
        return {"source_ids": state["source_ids"][rows]}


@pytest.fixture(scope="module")
def translator(tiny_bundle):
    return Translator(tiny_bundle)


@pytest.fixture
def copying(tiny_bundle):
    """A Translator whose model is a CopyModel."""
    t = Translator(tiny_bundle, graph_search=False)  # every search runs the numpy loop over the fake model
    t.model = CopyModel(t.target_tokenizer.vocab_size)
    return t


# --- batching and decoding ----------------------------------------------------------------------


@pytest.mark.parametrize("beam_size", [1, 3])
def test_translation_does_not_depend_on_the_batch(translator, beam_size):
    together = translator.translate(SENTENCES, beam_size=beam_size, batch_size=3)
    alone = [translator.translate([s], beam_size=beam_size)[0] for s in SENTENCES]
    one_batch = translator.translate(SENTENCES[::-1], beam_size=beam_size, batch_size=64)[::-1]
    assert together == alone == one_batch
    assert all(isinstance(t, str) for t in together)


@pytest.mark.parametrize("beam_size", [1, 3])
def test_sorted_batches_come_back_in_input_order(copying, beam_size):
    expected = [copying.translate([s], beam_size=beam_size)[0] for s in SENTENCES]
    assert len(set(expected)) == len(SENTENCES)  # the copy model tells every sentence apart
    copying.model.started.clear()
    assert copying.translate(SENTENCES, beam_size=beam_size, batch_size=3) == expected
    lengths = [batch.shape[1] for batch in copying.model.started]
    assert len(lengths) == 3 and lengths == sorted(lengths)  # 8 sentences, shortest first
    source_lengths = sorted(len(copying.source_tokenizer.encode(s)) + 1 for s in SENTENCES)
    assert lengths == [max(source_lengths[i:i + 3]) for i in range(0, 8, 3)]  # little padding


def test_source_ids_are_tokens_then_eos(copying):
    copying.translate(["I sit."])
    (batch,) = copying.model.started
    assert batch.tolist() == [copying.source_tokenizer.encode("I sit.") + [fmt.EOS_ID]]
    assert batch.dtype == np.int32


def test_beam_size_one_is_greedy(translator):
    assert translator.translate(SENTENCES, beam_size=1) == translator.translate(SENTENCES)


def test_beam_search_runs_with_any_length_penalty(translator):
    for alpha in (0.0, 0.6, 2):
        out = translator.translate(SENTENCES[:3], beam_size=4, length_penalty=alpha)
        assert len(out) == 3 and all(isinstance(t, str) for t in out)


class Recording:
    """Wraps a step model and records the positions it is stepped at."""

    def __init__(self, model):
        self.model, self.positions = model, []

    def start(self, source_ids):
        return self.model.start(source_ids)

    def step(self, token_ids, position, state):
        self.positions.append(position)
        return self.model.step(token_ids, position, state)

    def select(self, state, rows):
        return self.model.select(state, rows)


@pytest.mark.parametrize("graph_search", [True, False])
@pytest.mark.parametrize("length_penalty", [0.0, 0.6, 1.0])
def test_a_hypothesis_score_is_its_log_prob_over_its_length_term(tiny_bundle, graph_search, length_penalty):
    """The documented score (`TranslationHypothesis.score`): log_prob / (len(target_ids) + 1) ** alpha,
    for finished hypotheses and for those cut at max_length alike, in the numpy loop and in onnxruntime's."""
    translator = Translator(tiny_bundle, graph_search=graph_search)
    for max_length in (None, 4):
        results = translator.translate_batch(SENTENCES, beam_size=4, num_hypotheses=4, batch_size=1,
                                             length_penalty=length_penalty, max_length=max_length)
        for result in results:
            for h in result.hypotheses:
                expected = h.log_prob / (len(h.target_ids) + 1) ** length_penalty
                assert h.score == pytest.approx(expected, rel=1e-6, abs=1e-6)
                assert h.log_prob <= 0


def test_max_length_caps_the_generated_tokens(tiny_bundle):
    recorded = Translator(tiny_bundle, graph_search=False)
    recorded.model = Recording(recorded.model)
    for beam_size in (1, 3):
        recorded.model.positions.clear()
        recorded.translate(SENTENCES, max_length=3, beam_size=beam_size)
        assert max(recorded.model.positions) <= 2  # BOS at 0, at most 2 more fed: at most 3 tokens generated
    endless = Translator(tiny_bundle, graph_search=False)
    endless.model = CopyModel(endless.target_tokenizer.vocab_size, never_eos=True)
    decode = endless.target_tokenizer.decode
    assert endless.translate(["I sit."], max_length=3) == [decode([5] * 3)]
    assert max(endless.model.positions) == 2
    endless.model.positions.clear()
    cap = endless.max_target_length
    assert endless.translate(["I sit."], max_length=10_000) == [decode([5] * cap)]  # clamped to the bundle's
    assert max(endless.model.positions) == cap - 1
    assert endless.translate(["I sit."], beam_size=2) == [decode([5] * cap)]  # default: the bundle's maximum


def test_deterministic(tiny_bundle, translator):
    first = translator.translate(SENTENCES, beam_size=3)
    assert translator.translate(SENTENCES, beam_size=3) == first
    assert Translator(tiny_bundle, threads=1).translate(SENTENCES, beam_size=3) == first


def test_two_spinning_intra_op_threads_translate_like_one(tiny_bundle, translator):
    from keras_transformer.serve.sessions import session_options

    assert session_options(2).get_session_config_entry("session.intra_op.allow_spinning") == "1"
    two = Translator(tiny_bundle, threads=2)
    for beam_size, batch_size in [(1, 1), (3, 1), (1, 8), (3, 8)]:
        assert (two.translate(SENTENCES, beam_size=beam_size, batch_size=batch_size)
                == translator.translate(SENTENCES, beam_size=beam_size, batch_size=batch_size))


def test_threads_share_one_translator(translator):
    jobs = [(SENTENCES[i:] + SENTENCES[:i], 1 + i % 3) for i in range(16)]
    sequential = [translator.translate(texts, beam_size=k, batch_size=3) for texts, k in jobs]
    with ThreadPoolExecutor(max_workers=8) as pool:
        parallel = list(pool.map(lambda job: translator.translate(job[0], beam_size=job[1], batch_size=3), jobs))
    assert parallel == sequential


# --- inputs -------------------------------------------------------------------------------------


def test_blank_texts_give_empty_strings_without_running_the_model(copying):
    assert copying.translate(["", "  ", "\t\n"]) == ["", "", ""]
    assert copying.translate([]) == []
    assert copying.model.started == []
    out = copying.translate(["", "I sit.", " "])
    assert out[0] == out[2] == "" and out[1]
    assert [b.shape[0] for b in copying.model.started] == [1]


def test_too_long_texts_are_truncated_with_one_warning(copying):
    limit = copying.max_source_length
    long_text = " ".join(["sit"] * (2 * limit))
    assert len(copying.source_tokenizer.encode(long_text)) + 1 > limit
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = copying.translate([long_text, "I sit.", long_text + " call", ""])
    assert [w.category for w in caught] == [TruncationWarning]
    assert "2 of 3 texts exceed max_source_length" in str(caught[0].message)
    assert "texts[0]" in str(caught[0].message)
    assert len(out) == 4
    assert max(batch.shape[1] for batch in copying.model.started) == limit
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        copying.translate(["I sit."])  # no warning when nothing is cut


def test_unknown_characters_become_unk_and_odd_text_does_not_crash(translator):
    assert fmt.UNK_ID in translator.source_tokenizer.encode("☃ I sit.")
    odd = ["☃ I sit.", "\ud800 broken surrogate", "\x00\x01", "[EOS] [PAD]", "a" * 10_000, "😀" * 50, "\u200b"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TruncationWarning)
        out = translator.translate(odd, beam_size=2)
    assert len(out) == len(odd) and all(isinstance(t, str) for t in out)


def test_tuple_is_accepted(translator):
    assert translator.translate(tuple(SENTENCES[:2])) == translator.translate(SENTENCES[:2])


def test_wrong_types_raise_type_error_naming_the_index(translator):
    with pytest.raises(TypeError, match=r"texts\[2\]: expected str, got int"):
        translator.translate(["a", "b", 3])
    with pytest.raises(TypeError, match=r"texts\[0\]: expected str, got NoneType"):
        translator.translate([None])
    with pytest.raises(TypeError, match=r"texts: expected a list of str, got str \(wrap a single text"):
        translator.translate("I sit.")
    with pytest.raises(TypeError, match="texts: expected a list of str, got bytes"):
        translator.translate(b"I sit.")
    with pytest.raises(TypeError, match="texts: expected a list of str, got set"):
        translator.translate({"I sit."})
    with pytest.raises(TypeError, match="beam_size: expected an int, got str"):
        translator.translate(["a"], beam_size="2")
    with pytest.raises(TypeError, match="max_length: expected an int, got float"):
        translator.translate(["a"], max_length=3.0)
    with pytest.raises(TypeError, match="length_penalty: expected a float, got str"):
        translator.translate(["a"], length_penalty="1")


def test_bad_values_raise_value_error(translator):
    with pytest.raises(ValueError, match="beam_size: expected an int >= 1, got 0"):
        translator.translate(["a"], beam_size=0)
    with pytest.raises(ValueError, match="max_length: expected an int >= 1, got 0"):
        translator.translate(["a"], max_length=0)
    with pytest.raises(ValueError, match="batch_size: expected an int >= 1, got -1"):
        translator.translate(["a"], batch_size=-1)
    with pytest.raises(ValueError, match="length_penalty: expected a finite number, got nan"):
        translator.translate(["a"], length_penalty=float("nan"))
    with pytest.raises(ValueError, match="threads: expected a positive int or None, got 0"):
        Translator(translator.path, threads=0)


# --- the bundle ---------------------------------------------------------------------------------


@pytest.fixture
def bundle_copy(tiny_bundle, tmp_path):
    return Path(shutil.copytree(tiny_bundle, tmp_path / "bundle"))


def test_truncated_file_fails_the_checksum(bundle_copy):
    decoder = bundle_copy / fmt.DECODER_FILE
    decoder.write_bytes(decoder.read_bytes()[:1000])
    with pytest.raises(BundleError, match=r"decoder\.onnx: sha256 mismatch.*truncated or was changed"):
        Translator(bundle_copy)


def test_missing_file_config_and_directory(bundle_copy, tmp_path):
    (bundle_copy / fmt.TARGET_TOKENIZER_FILE).unlink()
    with pytest.raises(BundleError, match=r"target\.tokenizer\.json: missing"):
        Translator(bundle_copy)
    (bundle_copy / fmt.CONFIG_FILE).unlink()
    with pytest.raises(BundleError, match=r"not a bundle \(no config\.json\)"):
        Translator(bundle_copy)
    with pytest.raises(BundleError, match="expected a bundle directory .* got nothing"):
        Translator(tmp_path / "nowhere")


def test_foreign_format_version(bundle_copy):
    config_path = bundle_copy / fmt.CONFIG_FILE
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["format_version"] = 99
    config_path.write_text(json.dumps(config), encoding="utf-8")
    with pytest.raises(BundleError, match="expected bundle format_version 1, got 99"):
        Translator(bundle_copy)


def test_info_describes_the_bundle(translator, tiny_bundle):
    info = translator.info()
    json.dumps(info)
    assert info["bundle"] == str(tiny_bundle)
    assert info["format_version"] == fmt.FORMAT_VERSION
    assert info["model"]["max_target_length"] == translator.max_target_length
    assert info["search"].startswith("generate.onnx")
    assert Translator(tiny_bundle, graph_search=False).info()["search"] == "numpy loop"
    assert "Translator(" in repr(translator)


def test_translator_is_usable_from_many_threads_while_loading(tiny_bundle):
    """Construction in one thread and translation in others do not interfere."""
    results, errors = [], []

    def work():
        try:
            results.append(Translator(tiny_bundle).translate(SENTENCES[:2]))
        except Exception as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors and len(results) == 4 and all(r == results[0] for r in results)
