import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import pytest  # noqa: E402

TINY_MODEL_OPTIONS = dict(num_layers=2, hidden_dim=16, num_heads=2, intermediate_dim=32, dropout=0.0,
                          max_source_length=48, max_target_length=40)


def _quiet(*args, **kwargs):
    pass


@pytest.fixture(scope="session")
def demo_pairs():
    """400 training and 40 held-out pairs of the built-in corpus."""
    from keras_transformer.demo_corpus import generate_demo_corpus

    return generate_demo_corpus(seed=0, max_train_pairs=400, max_test_pairs=40)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, demo_pairs):
    """A run dir: a 2-layer, 16-wide model trained for 2 epochs on 400 demo pairs, with test.tsv."""
    from keras_transformer.corpus import write_tsv
    from keras_transformer.run_dir import RunDir
    from keras_transformer.config import ModelOptions
    from keras_transformer.training import TrainingSettings, train

    path = tmp_path_factory.mktemp("runs") / "tiny"
    settings = TrainingSettings(epochs=2, batch_tokens=1024, warmup_steps=30, source_vocab_size=200,
                                target_vocab_size=200, seed=0, label_smoothing=0.0)
    train(path, demo_pairs.train, None, ModelOptions(**TINY_MODEL_OPTIONS), settings, {"train": "demo"},
          log=_quiet, verbose=0)
    write_tsv(demo_pairs.test, RunDir(path).test_path)
    return path


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory, tiny_run):
    """The fp32 bundle exported from `tiny_run` (parity-checked)."""
    from keras_transformer.export.exporter import export_bundle

    out = tmp_path_factory.mktemp("bundles") / "tiny"
    export_bundle(tiny_run, out, log=_quiet)
    return out
