"""The Keras side as a Keras user meets it: `keras.saving.load_model` on a trained run (compile=True),
`model.fit` continuing from it, and translation with the Keras model through the one `Translator`."""

import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest

from keras_transformer.serve import Translator
from keras_transformer.serve.decoding_options import DecodingOptions
from keras_transformer.translation import is_run_dir, load_translator

ROOT = Path(__file__).resolve().parents[1]


def test_load_model_with_compile_restores_training_state_and_fit_continues(tiny_run):
    """In a fresh interpreter, after `import keras, keras_transformer` only: the optimizer (its step count,
    schedule and moments), the loss and the metric come back, and training resumes where it stopped:
    the first epoch after loading starts from the trained loss, far below a fresh model's."""
    script = textwrap.dedent(f"""
        import json, keras, numpy as np
        import keras_transformer  # the README's line: registers our Keras classes, keras being imported
        model = keras.saving.load_model({str(Path(tiny_run) / "model.keras")!r})   # compile=True
        steps = int(model.optimizer.iterations.numpy())
        schedule = model.optimizer._learning_rate
        assert type(schedule).__name__ == "WarmupInverseSquareRoot", type(schedule)
        assert type(model.loss).__name__ == "MaskedSparseCrossEntropy", model.loss
        moments = [v for v in model.optimizer.variables if "momentum" in v.path or "velocity" in v.path]
        assert moments and any(float(np.abs(v.numpy()).max()) > 0 for v in moments), "Adam moments not restored"

        from keras_transformer import build_transformer, pipeline
        from keras_transformer.run_dir import RunDir
        run = RunDir({str(tiny_run)!r})
        source, target = run.load_tokenizers()
        from keras_transformer.corpus import read_parallel_corpus
        pairs, _ = read_parallel_corpus(str(run.test_path))
        config = run.transformer_config()
        corpus = pipeline.encode_corpus(pairs, source, target, config.max_source_length, config.max_target_length)
        data = pipeline.make_dataset(corpus, 1024, shuffle=False)
        resumed = model.evaluate(data, verbose=0, return_dict=True)
        history = model.fit(data, epochs=1, verbose=0)
        fresh = build_transformer(config)
        fresh.compile(loss=model.loss, metrics=[keras_transformer.losses.MaskedAccuracy()])
        untrained = fresh.evaluate(data, verbose=0, return_dict=True)
        print(json.dumps({{"steps_before": steps, "steps_after": int(model.optimizer.iterations.numpy()),
                          "resumed_loss": resumed["loss"], "untrained_loss": untrained["loss"],
                          "metrics": sorted(resumed), "fit_loss": history.history["loss"][0]}}))
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    import json

    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["steps_before"] > 0  # the trained run's optimizer step count came back
    assert figures["steps_after"] > figures["steps_before"]  # fit continued counting from there
    assert "accuracy" in figures["metrics"]  # our MaskedAccuracy, restored from the compile config
    assert figures["resumed_loss"] < figures["untrained_loss"] - 0.5
    assert figures["fit_loss"] < figures["untrained_loss"] - 0.5


def test_importing_the_package_before_keras_registers_its_classes_once_keras_loads(tiny_run):
    """The other import order: `import keras_transformer` loads no Keras; importing Keras later
    registers our classes, so `load_model` finds them without any other import of ours."""
    script = textwrap.dedent(f"""
        import sys
        import keras_transformer
        assert "keras" not in sys.modules and "tensorflow" not in sys.modules
        import keras
        model = keras.saving.load_model({str(Path(tiny_run) / "model.keras")!r}, compile=False)
        print(type(model.get_layer("decoder")).__module__)
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "keras_transformer.decoder"


@pytest.fixture(scope="module")
def keras_translator_of_run(tiny_run):
    return load_translator(tiny_run)


@pytest.fixture(scope="module")
def random_run_and_bundle(tiny_run, tmp_path_factory):
    """tiny_run with random weights (N(0, 0.3)) and its bundle: a model whose outputs never end early."""
    import shutil

    import numpy as np

    from keras_transformer.export.exporter import export_bundle
    from keras_transformer.run_dir import RunDir

    path = tmp_path_factory.mktemp("runs") / "random"
    shutil.copytree(tiny_run, path)
    run = RunDir(path)
    model = run.load_model()
    rng = np.random.default_rng(7)
    model.set_weights([rng.normal(0, 0.3, w.shape).astype("float32") for w in model.get_weights()])
    model.save(run.model_path)
    export_bundle(path, path / "bundle", log=lambda *a: None)
    return path, path / "bundle"


def test_a_run_dir_and_a_bundle_are_told_apart(tiny_run, tiny_bundle, tmp_path):
    assert is_run_dir(tiny_run) and not is_run_dir(tiny_bundle) and not is_run_dir(tmp_path)
    assert isinstance(load_translator(tiny_bundle), Translator)


@pytest.mark.parametrize("beam_size", [1, 3])
@pytest.mark.parametrize("weights", ["trained", "random"])
def test_keras_translation_equals_the_exported_bundle(tiny_run, tiny_bundle, random_run_and_bundle, demo_pairs,
                                                      weights, beam_size):
    """Same front end, two step models (Keras' cached step, onnxruntime): the same fp32 output, on
    the barely trained tiny model (outputs of every length, many empty) and on random weights (every
    output runs to max_length)."""
    run, bundle = (tiny_run, tiny_bundle) if weights == "trained" else random_run_and_bundle
    texts = [source for source, _ in demo_pairs.test] + ["", "  "]
    keras_out = load_translator(run).translate_batch(texts, DecodingOptions(beam_size=beam_size, batch_size=16))
    onnx_out = Translator(bundle).translate_batch(texts, DecodingOptions(beam_size=beam_size, batch_size=16))
    assert [r.target_ids for r in keras_out] == [r.target_ids for r in onnx_out]
    assert [r.text for r in keras_out] == [r.text for r in onnx_out]
    assert [r.text for r in keras_out[-2:]] == ["", ""]
    if weights == "random":
        assert min(len(r.target_ids) for r in keras_out[:-2]) >= 3


def test_keras_translation_truncates_and_validates_like_the_bundle(keras_translator_of_run, tiny_bundle):
    long_text = " ".join(["the girls read the books."] * 40)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        keras_out = keras_translator_of_run.translate([long_text])
    assert any("truncated" in str(w.message) for w in caught)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert keras_out == Translator(tiny_bundle).translate([long_text])
    with pytest.raises(ValueError, match="beam_size: expected an int >= 1, got 0"):
        keras_translator_of_run.translate(["a"], beam_size=0)


def test_translate_command_accepts_a_run_directory(tiny_run, tiny_bundle, capsys):
    from keras_transformer.cli import main

    texts = ["the girls read the books.", "I sit."]
    assert main(["translate", str(tiny_run), *texts, "--beam-size", "2"]) == 0
    captured = capsys.readouterr()
    from_run = captured.out.splitlines()
    assert "softmax" not in captured.err  # Keras' size-1 softmax notice on the first cached step stays filtered
    assert main(["translate", str(tiny_bundle), *texts, "--beam-size", "2"]) == 0
    from_bundle = capsys.readouterr().out.splitlines()
    assert from_run == from_bundle and len(from_run) == 2
