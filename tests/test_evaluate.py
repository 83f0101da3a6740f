"""`keras-transformer evaluate`: scores with their sacreBLEU signatures, --output/--json, one-line errors."""

import json
import re
import subprocess
import sys

import pytest

from keras_transformer.corpus import read_parallel_corpus
from keras_transformer.evaluation import evaluate_bundle
from keras_transformer.serve import Translator

BLEU_SIGNATURE = re.compile(r"nrefs:1\|case:mixed\|eff:no\|tok:13a\|smooth:exp\|version:\S+")
CHRF_SIGNATURE = re.compile(r"nrefs:1\|case:mixed\|eff:yes\|nc:6\|nw:2\|space:no\|version:\S+")  # chrF++


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "keras_transformer.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def test_pairs(tiny_run):
    return read_parallel_corpus(str(tiny_run / "test.tsv"))[0]


def test_evaluate_bundle_scores_the_translators_own_output(tiny_bundle, test_pairs):
    translator = Translator(tiny_bundle)
    result = evaluate_bundle(translator, test_pairs, beam_size=1, batch_size=7)
    assert result["hypotheses"] == translator.translate([s for s, _ in test_pairs])
    assert result["sentences"] == len(test_pairs) and 0.0 <= result["exact_match"] <= 1.0
    assert BLEU_SIGNATURE.fullmatch(result["bleu_signature"])
    assert CHRF_SIGNATURE.fullmatch(result["chrf_signature"])
    assert result["translation_seconds"] > 0 and result["sentences_per_second"] > 0
    json.dumps(result)  # bench scripts write it as it is

    # References equal to the hypotheses: every sentence matches exactly, chrF++ is perfect.
    echoed = [(s, h) for (s, _), h in zip(test_pairs, result["hypotheses"]) if h.strip()][:5]
    assert echoed, "the tiny model translated nothing"
    perfect = evaluate_bundle(tiny_bundle, echoed)  # a path works too
    assert perfect["exact_match"] == 1.0 and perfect["chrf"] == pytest.approx(100.0)
    beam = evaluate_bundle(translator, test_pairs[:5], beam_size=2)
    assert beam["beam_size"] == 2 and beam["hypotheses"] == translator.translate([s for s, _ in test_pairs[:5]],
                                                                                  beam_size=2)


def test_evaluate_bundle_decodes_with_the_search_options_it_is_given(tiny_bundle, test_pairs):
    class RecordingTranslator(Translator):
        def translate(self, texts, options=None, **kwargs):
            self.options = options
            return super().translate(texts, options, **kwargs)

    translator = RecordingTranslator(tiny_bundle)
    sources = [s for s, _ in test_pairs]
    options = dict(beam_size=2, max_length=1, length_penalty=0.0, no_repeat_ngram_size=1, repetition_penalty=1.5)
    result = evaluate_bundle(translator, test_pairs, **options)
    assert {name: getattr(translator.options, name) for name in options} == options
    expected = Translator.translate_batch(translator, sources, **options)
    assert result["hypotheses"] == [t.text for t in expected]
    assert max(len(t.target_ids) for t in expected) <= 1
    assert result["decoding"] == {"max_length": 1, "length_penalty": 0.0, "no_repeat_ngram_size": 1,
                                  "repetition_penalty": 1.5}
    assert evaluate_bundle(translator, test_pairs, beam_size=2)["decoding"] == {}


def test_evaluate_bundle_needs_pairs(tiny_bundle):
    with pytest.raises(ValueError, match="expected at least one"):
        evaluate_bundle(tiny_bundle, [])


def test_evaluate_command_prints_scores_and_writes_files(tiny_run, tiny_bundle, test_pairs, tmp_path):
    output, scores = tmp_path / "hypotheses.txt", tmp_path / "scores.json"
    result = _cli("evaluate", tiny_bundle, "--data", tiny_run / "test.tsv", "--output", output, "--json", scores,
                  "--batch-size", 16)
    assert result.returncode == 0, result.stderr
    assert re.search(r"^BLEU +\d+\.\d\d +" + BLEU_SIGNATURE.pattern + "$", result.stdout, re.M), result.stdout
    assert re.search(r"^chrF\+\+ +\d+\.\d\d +" + CHRF_SIGNATURE.pattern + "$", result.stdout, re.M), result.stdout
    assert re.search(rf"^exact match +\d+\.\d% \(\d+/{len(test_pairs)}\)$", result.stdout, re.M)
    assert re.search(r"\d+\.\d sentences/s", result.stdout)
    lines = output.read_text(encoding="utf-8").split("\n")
    assert len(lines) == len(test_pairs) + 1 and lines[-1] == ""  # one line per pair, newline-terminated
    summary = json.loads(scores.read_text(encoding="utf-8"))
    assert {"bleu", "chrf", "exact_match", "bleu_signature", "chrf_signature", "sentences_per_second"} <= set(summary)
    assert summary["sentences"] == len(test_pairs) and "hypotheses" not in summary


def test_evaluate_command_takes_the_search_options_of_translate(tiny_run, tiny_bundle, tmp_path):
    scores = tmp_path / "scores.json"
    result = _cli("evaluate", tiny_bundle, "--data", tiny_run / "test.tsv", "--json", scores, "--beam-size", 2,
                  "--length-penalty", 0.5, "--no-repeat-ngram-size", 2, "--patience", 2)
    assert result.returncode == 0, result.stderr
    assert "beam 2, batch 32, length_penalty 0.5, patience 2.0, no_repeat_ngram_size 2)" in result.stdout
    assert json.loads(scores.read_text(encoding="utf-8"))["decoding"] == {
        "length_penalty": 0.5, "patience": 2.0, "no_repeat_ngram_size": 2}
    bad = _cli("evaluate", tiny_bundle, "--data", tiny_run / "test.tsv", "--repetition-penalty", 0)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "repetition_penalty" in bad.stderr, bad.stderr


def test_evaluate_errors_are_one_line(tiny_bundle, tmp_path):
    result = _cli("evaluate", tiny_bundle, "--data", tmp_path / "corpus.xyz")
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and errors[0].startswith("keras-transformer evaluate: error: expected a corpus SPEC")
    assert "Traceback" not in result.stderr


def test_evaluate_checks_output_paths_before_translating(tiny_run, tiny_bundle, tmp_path, capsys):
    from keras_transformer.cli import main

    missing = tmp_path / "no-such-dir" / "out.txt"
    assert main(["evaluate", str(tiny_bundle), "--data", str(tiny_run / "test.tsv"), "--output", str(missing)]) == 2
    captured = capsys.readouterr()
    assert f"error: --output {missing}: directory {missing.parent} does not exist" in captured.err
    assert "BLEU" not in captured.out
    assert main(["evaluate", str(tiny_bundle), "--data", str(tiny_run / "test.tsv"), "--beam-size", "0"]) == 2
    assert "error: beam_size: expected an int >= 1, got 0" in capsys.readouterr().err
