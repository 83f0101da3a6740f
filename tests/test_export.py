"""ONNX export: parity with Keras at three levels, dynamic shapes, atomicity, and every error."""

import json
import shutil
import subprocess
import sys

import keras
import numpy as np
import onnx
import pytest

from keras_transformer.export.exporter import ExportError, export_bundle
from keras_transformer.export.parity import ParityError
from helpers import random_ids
from keras_transformer.keras_step_model import KerasStepModel
from keras_transformer.serve.batching import pad_batch
from keras_transformer.translation import keras_translator
from keras_transformer.run_dir import RunDir, RunDirError
from keras_transformer.config import ModelOptions
from keras_transformer.training import TrainingSettings, train
from keras_transformer.serve import bundle_format as fmt
from keras_transformer.serve import decoding
from keras_transformer.serve.bundle import read_bundle_config
from keras_transformer.serve.onnx_model import OnnxStepModel

from conftest import TINY_MODEL_OPTIONS

MODEL = ModelOptions(**TINY_MODEL_OPTIONS)


def _quiet(*args, **kwargs):
    pass


def _make_run(path, pairs, epochs):
    settings = TrainingSettings(epochs=epochs, batch_tokens=1024, warmup_steps=30, source_vocab_size=200,
                                target_vocab_size=200, seed=0, label_smoothing=0.0)
    train(path, pairs, None, MODEL, settings, {"train": "demo"}, log=_quiet, verbose=0)
    return path


@pytest.fixture(scope="module")
def pairs(demo_pairs):
    return demo_pairs


@pytest.fixture(scope="module")
def trained_run(tiny_run):
    return tiny_run


@pytest.fixture(scope="module")
def random_run(tmp_path_factory, pairs):
    """A run whose model.keras holds a randomly initialised model (0 epochs is not allowed: save one)."""
    run = _make_run(tmp_path_factory.mktemp("runs") / "random", pairs.train, epochs=1)  # same vocabulary
    model = RunDir(run).load_model()
    keras.utils.set_random_seed(3)
    model.set_weights([np.random.default_rng(3).normal(0, 0.3, w.shape).astype("float32")
                       for w in model.get_weights()])
    model.save(RunDir(run).model_path)
    return run


@pytest.fixture(scope="module")
def bundle(tiny_bundle):
    return tiny_bundle


def test_bundle_holds_everything_inference_needs(bundle):
    names = sorted(p.name for p in bundle.iterdir())
    assert names == sorted([fmt.CONFIG_FILE, fmt.ENCODER_FILE, fmt.DECODER_FILE, fmt.GENERATE_FILE,
                            fmt.SOURCE_TOKENIZER_FILE, fmt.TARGET_TOKENIZER_FILE])
    config = read_bundle_config(bundle).values  # checks the sha256 of every file
    assert config["format_version"] == fmt.FORMAT_VERSION and config["opset"] == 17
    assert config["special_ids"] == {"pad": 0, "bos": 1, "eos": 2, "unk": 3}
    assert config["quantization"] is None
    parity = config["parity"]
    assert parity["encoder_max_abs_diff"] < 1e-4 and parity["decoder_step_max_abs_diff"] < 1e-4
    assert parity["greedy_identical"] == parity["greedy_sentences"] == 40
    decoder = onnx.load(bundle / fmt.DECODER_FILE)
    assert any("past" in i.name for i in decoder.graph.input)
    assert any("present" in o.name for o in decoder.graph.output)
    assert [o.name for o in decoder.graph.output][0] == fmt.LOGITS


@pytest.mark.parametrize("run_fixture", ["random_run", "trained_run"])
def test_onnx_matches_keras_at_dynamic_shapes(request, run_fixture, tmp_path):
    run = request.getfixturevalue(run_fixture)
    out = tmp_path / "bundle"
    export_bundle(run, out, log=_quiet)
    model = RunDir(run).load_model()
    onnx_model = OnnxStepModel(read_bundle_config(out))
    keras_model = KerasStepModel(model)
    rng = np.random.default_rng(0)
    for batch, source_length in ((1, 3), (7, 40), (7, 3), (1, 40)):
        lengths = [source_length] + list(rng.integers(1, source_length + 1, batch - 1))
        source = random_ids(rng, batch, source_length, model.get_layer("encoder").config.source_vocab_size, lengths)
        onnx_state, keras_state = onnx_model.start(source), keras_model.start(source)
        tokens = np.full(batch, fmt.BOS_ID, np.int32)
        for position in range(30):  # 30 cached steps, teacher-forced with random tokens
            onnx_logits, onnx_state = onnx_model.step(tokens, position, onnx_state)
            keras_logits, keras_state = keras_model.step(tokens, position, keras_state)
            np.testing.assert_allclose(onnx_logits, keras_logits, atol=1e-4)
            tokens = rng.integers(4, 20, batch).astype(np.int32)
        assert onnx_state[fmt.past_key_name(1)].shape == (batch, 2, 30, 8)


def test_bundle_greedy_equals_keras_greedy(bundle, trained_run, pairs):
    run = RunDir(trained_run)
    model = run.load_model()
    source_tokenizer, target_tokenizer = run.load_tokenizers()
    texts = [s for s, _ in pairs.test]
    keras_results = keras_translator(model, source_tokenizer, target_tokenizer).translate_batch(texts)
    keras_ids = [r.target_ids for r in keras_results]
    onnx_model = OnnxStepModel(read_bundle_config(bundle))
    sources = pad_batch([ids + [fmt.EOS_ID] for ids in source_tokenizer.encode_batch(texts)])
    onnx_ids = decoding.greedy_decode(onnx_model, onnx_model.start(sources), len(texts), fmt.BOS_ID, fmt.EOS_ID, 40)
    assert onnx_ids == keras_ids


def test_a_wrong_graph_fails_parity_and_writes_nothing(trained_run, random_run, tmp_path):
    wrong = tmp_path / "wrong"
    export_bundle(random_run, wrong, log=_quiet)  # same shapes, other weights

    def swap_decoder(directory):
        shutil.copyfile(wrong / fmt.DECODER_FILE, directory / fmt.DECODER_FILE)

    out = tmp_path / "out"
    with pytest.raises(ParityError, match=r"parity check failed, nothing written .*decoder step logits max"):
        export_bundle(trained_run, out, log=_quiet, _graph_hook=swap_decoder)
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wrong"]  # no temporary directory left behind


def test_int8_bundle_records_agreement_and_chrf(trained_run, tmp_path):
    from keras_transformer.export.quantize import Int8Plan

    out = tmp_path / "int8"  # the tiny model's weights are far below the real threshold: lowered here
    export_bundle(trained_run, out, int8=True, int8_plan=Int8Plan(min_weight_elements=256), log=_quiet)
    quantization = read_bundle_config(out).values["quantization"]
    assert 0.0 <= quantization["greedy_identical_to_fp32"] <= 1.0
    assert {"chrf_fp32", "chrf_int8"} <= set(quantization)
    decoder = onnx.load(out / fmt.DECODER_FILE)
    assert any(node.op_type == "MatMulIntegerToFloat" for node in decoder.graph.node)  # every weight int8 here
    assert quantization["method"] == "int8_per_row" and quantization["batch_invariant"] is True
    assert quantization["matmuls_quantized"][fmt.DECODER_FILE] > 0


def test_int8_export_says_when_no_weight_is_worth_quantizing(trained_run, tmp_path):
    """Weights under Int8Plan().min_weight_elements stay float32 (int8 measured no faster there): the
    tiny model has none above it, so its --int8 bundle computes in float32 and the export says so."""
    out, lines = tmp_path / "int8", []
    export_bundle(trained_run, out, int8=True, log=lambda *a, **k: lines.append(" ".join(map(str, a))))
    quantization = read_bundle_config(out).values["quantization"]
    assert quantization["matmuls_quantized"] == {fmt.ENCODER_FILE: 0, fmt.DECODER_FILE: 0}
    decoder_ops = {node.op_type for node in onnx.load(out / fmt.DECODER_FILE).graph.node}
    assert not decoder_ops & {"MatMulNBits", "MatMulIntegerToFloat"}
    assert "CumSum" not in decoder_ops  # the fp32 graph's fused cross-attention, not int8's exact sum
    assert any("no weight" in line and "float32" in line for line in lines), lines


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "keras_transformer.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=300)


def test_export_errors_are_one_line_and_write_nothing(tmp_path, bundle, trained_run):
    not_a_run = tmp_path / "empty"
    not_a_run.mkdir()
    result = _cli("export", not_a_run, "--out", tmp_path / "b1")
    assert result.returncode == 2
    assert "not a run directory" in result.stderr and "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0, result.stderr  # one line: TensorFlow's import chatter is held back
    assert not (tmp_path / "b1").exists()

    result = _cli("export", trained_run, "--out", bundle)  # existing --out without --force
    assert result.returncode == 2 and "already exists; pass --force" in result.stderr


def test_missing_corrupt_and_foreign_runs(tmp_path, trained_run):
    broken = tmp_path / "broken"
    shutil.copytree(trained_run, broken)
    (broken / "model.keras").write_bytes(b"not a zip")
    with pytest.raises(RunDirError, match=r"model.keras: cannot be loaded"):
        export_bundle(broken, tmp_path / "b2", log=_quiet)
    (broken / "model.keras").unlink()
    with pytest.raises(RunDirError, match=r"model.keras: missing"):
        export_bundle(broken, tmp_path / "b3", log=_quiet)
    config = json.loads((broken / "config.json").read_text())
    (broken / "config.json").write_text(json.dumps({**config, "run_format_version": 99}))
    with pytest.raises(RunDirError, match="expected run_format_version 1, got 99"):
        export_bundle(broken, tmp_path / "b4", log=_quiet)
    assert not any((tmp_path / name).exists() for name in ("b2", "b3", "b4"))


def test_force_refuses_to_replace_something_that_is_not_a_bundle(tmp_path, trained_run):
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.txt").write_text("do not delete")
    with pytest.raises(ExportError, match="is not a bundle; refusing to replace it"):
        export_bundle(trained_run, precious, force=True, log=_quiet)
    assert (precious / "thesis.txt").read_text() == "do not delete"


def test_separate_depths_round_trip_through_training_export_and_parity(tmp_path, pairs):
    """A 2+1 model (deep encoder, shallow decoder): the run, the bundle's graphs (one decoder layer's cache
    and cross keys/values), the parity check (export raises unless it holds) and the Keras model's
    translations through the bundle."""
    options = ModelOptions(**{**TINY_MODEL_OPTIONS, "encoder_layers": 2, "decoder_layers": 1})
    assert (options.num_layers, options.encoder_layers, options.decoder_layers) == (2, 2, 1)
    settings = TrainingSettings(epochs=1, batch_tokens=1024, warmup_steps=30, source_vocab_size=200,
                                target_vocab_size=200, seed=0, label_smoothing=0.0)
    run = tmp_path / "run"
    model = train(run, pairs.train, None, options, settings, {"train": "demo"}, log=_quiet, verbose=0)
    assert len(model.get_layer("encoder").encoder_layers) == 2 and len(model.get_layer("decoder").decoder_layers) == 1
    config = export_bundle(run, tmp_path / "bundle", log=_quiet)
    assert (config["model"]["encoder_layers"], config["model"]["decoder_layers"]) == (2, 1)
    assert config["graphs"]["encoder"]["outputs"] == fmt.encoder_io_names(1)[1]
    assert config["graphs"]["decoder"]["inputs"] == fmt.decoder_io_names(1)[0]
    assert config["parity"]["greedy_identical"] == config["parity"]["greedy_sentences"] > 0
    texts = [source for source, _ in pairs.test[:12]]
    from keras_transformer.serve import Translator

    onnx_results = Translator(tmp_path / "bundle").translate(texts, beam_size=2)
    source_tokenizer, target_tokenizer = RunDir(run).load_tokenizers()
    keras_results = keras_translator(RunDir(run).load_model(), source_tokenizer, target_tokenizer).translate(
        texts, beam_size=2)
    assert onnx_results == keras_results
