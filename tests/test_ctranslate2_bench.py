"""bench/ctranslate2_compare.py: a run converted into CTranslate2 on the same weights decodes greedily
to the very token ids of our fp32 bundle (the benchmark's parity check), and its report renders.
Skipped without CTranslate2 (a benchmark-only dependency: the `[bench]` extra)."""

import pytest

ctranslate2 = pytest.importorskip("ctranslate2")

from keras_transformer.corpus import read_parallel_corpus  # noqa: E402
from keras_transformer.run_dir import RunDir  # noqa: E402
from keras_transformer.serve import Translator  # noqa: E402
from keras_transformer.serve.decoding_options import DecodingOptions  # noqa: E402


@pytest.fixture(scope="module")
def ct2_model(tmp_path_factory, tiny_run):
    from bench.ctranslate2_compare import convert_run

    return convert_run(tiny_run, tmp_path_factory.mktemp("ct2") / "tiny")


def _engine(ct2_model, tiny_run, **kwargs):
    from bench.ctranslate2_compare import Ct2Engine

    run = RunDir(tiny_run)
    config = run.transformer_config()
    return Ct2Engine(ct2_model, *run.load_tokenizers(), config.max_source_length, config.max_target_length,
                     **kwargs)


def test_converted_model_decodes_greedily_to_our_token_ids(ct2_model, tiny_run, tiny_bundle):
    texts = [source for source, _ in read_parallel_corpus(str(RunDir(tiny_run).test_path))[0]][:24]
    ours = Translator(tiny_bundle).translate_batch(texts, DecodingOptions(batch_size=8))
    ct2_texts, ct2_ids = _engine(ct2_model, tiny_run).translate_batch(texts, beam_size=1, batch_size=8)
    assert ct2_ids == [result.target_ids for result in ours]
    assert ct2_texts == [result.text for result in ours]
    assert sum(map(len, ct2_ids)) > len(texts)  # not a trivial (all empty) comparison


def test_report_renders_a_ratio_for_every_row(ct2_model, tiny_run, tiny_bundle, tmp_path):
    from bench.ctranslate2_compare import SMOKE, measure_model, report

    texts = [source for source, _ in read_parallel_corpus(str(RunDir(tiny_run).test_path))[0]]
    result = measure_model("tiny", tiny_run, tiny_bundle, tiny_bundle, texts, "test.tsv", tmp_path, SMOKE,
                           log=lambda *a: None)
    text = report([result], SMOKE)
    assert "greedy fp32 token ids identical to CT2 float32" in text and "**FAIL**" not in text.split(
        "every 1-thread row")[0]
    assert "| tiny | 1 | 1 |" in text and "| tiny | 2 | 1 |" in text
