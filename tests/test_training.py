"""A tiny end-to-end training run, resumption rules, NaN handling: seconds, not minutes."""

import csv

import keras
import numpy as np
import pytest

from keras_transformer.demo_corpus import generate_demo_corpus
from keras_transformer.run_dir import RunDir, RunDirError
from keras_transformer.config import ModelOptions
from keras_transformer.training import TrainingError, TrainingSettings, train

TINY_MODEL = ModelOptions(num_layers=1, hidden_dim=32, num_heads=2, intermediate_dim=64, dropout=0.0,
                          max_source_length=24, max_target_length=24)
TINY_TRAINING = TrainingSettings(epochs=3, batch_tokens=1024, label_smoothing=0.0, warmup_steps=20,
                                 source_vocab_size=300, target_vocab_size=300, seed=1)
DATA = {"train": "demo[:600]"}


@pytest.fixture(scope="module")
def pairs():
    return generate_demo_corpus(seed=0, max_train_pairs=600).train


def _history(run_dir):
    with open(run_dir / "history.csv", newline="") as f:
        return list(csv.DictReader(f))


def _quiet(*args, **kwargs):
    pass


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, pairs):
    run_dir = tmp_path_factory.mktemp("runs") / "tiny"
    train(run_dir, pairs, pairs[:50], TINY_MODEL, TINY_TRAINING, DATA, log=_quiet, verbose=0)
    return run_dir


def test_training_reduces_the_loss_and_writes_the_run(trained_run):
    rows = _history(trained_run)
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert list(rows[0])[0] == "epoch"
    assert float(rows[-1]["loss"]) < 0.8 * float(rows[0]["loss"])
    assert "val_loss" in rows[0] and "accuracy" in rows[0]
    run = RunDir(trained_run)
    for path in (run.model_path, run.config_path, run.source_tokenizer_path, run.target_tokenizer_path):
        assert path.is_file(), path
    assert not run.backup_path.exists()  # removed once training finished
    config = run.read_config()
    assert config["status"] == "complete"
    assert config["model"]["source_vocab_size"] == run.load_tokenizers()[0].vocab_size
    model = run.load_model()
    assert model.count_params() > 0


def test_rerunning_a_finished_run_trains_nothing(trained_run, pairs):
    before = (trained_run / "model.keras").stat().st_mtime_ns
    messages = []
    train(trained_run, pairs, pairs[:50], TINY_MODEL, TINY_TRAINING, DATA, log=messages.append, verbose=0)
    assert any("already complete" in m for m in messages)
    assert (trained_run / "model.keras").stat().st_mtime_ns == before


def test_a_run_with_other_settings_is_not_overwritten(trained_run, pairs):
    other = TrainingSettings(**{**TINY_TRAINING.__dict__, "epochs": 5})
    with pytest.raises(RunDirError, match=r"trained with other settings \(differences in \['training'\]\)"):
        train(trained_run, pairs, None, TINY_MODEL, other, DATA, log=_quiet, verbose=0)


def test_a_directory_that_is_not_a_run_is_refused(tmp_path, pairs):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(RunDirError, match="exists and is not a run directory"):
        train(tmp_path, pairs, None, TINY_MODEL, TINY_TRAINING, DATA, log=_quiet, verbose=0)
    with pytest.raises(RunDirError, match="refusing to delete it even with --force"):
        train(tmp_path, pairs, None, TINY_MODEL, TINY_TRAINING, DATA, force=True, log=_quiet, verbose=0)
    assert (tmp_path / "notes.txt").read_text() == "mine"


class _PoisonWeightsAtEpoch(keras.callbacks.Callback):
    """Sets one weight to NaN when `epoch` begins, so that epoch's loss is NaN."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            weight = self.model.trainable_weights[0]
            weight.assign(np.full(weight.shape, np.nan, dtype="float32"))


def test_nan_loss_stops_with_a_clear_error_and_keeps_the_last_good_epoch(tmp_path, pairs):
    run_dir = tmp_path / "nan"
    with pytest.raises(TrainingError, match=r"loss became NaN/Inf .* keeps the last good epoch \(1 finished\)"):
        train(run_dir, pairs[:200], None, TINY_MODEL, TINY_TRAINING, DATA, log=_quiet, verbose=0,
              extra_callbacks=[_PoisonWeightsAtEpoch(1)])
    assert [int(r["epoch"]) for r in _history(run_dir)] == [1]
    model = RunDir(run_dir).load_model()
    assert all(np.isfinite(w).all() for w in model.get_weights())


def test_a_time_budget_ends_training_as_complete(tmp_path, pairs):
    budget = TrainingSettings(**{**TINY_TRAINING.__dict__, "epochs": 50, "time_budget_minutes": 1e-4})
    messages = []
    train(tmp_path / "run", pairs, pairs[:50], TINY_MODEL, budget, DATA, log=messages.append, verbose=0)
    assert [int(r["epoch"]) for r in _history(tmp_path / "run")] == [1]  # stopped at the first batch
    assert RunDir(tmp_path / "run").read_config()["status"] == "complete"
    assert any("time budget (0.0001 min) ran out during epoch 1" in m for m in messages), messages


def test_the_time_budget_skips_an_epoch_that_would_not_fit_and_counts_earlier_attempts(monkeypatch):
    import types

    from keras_transformer import training

    clock = [0.0]
    monkeypatch.setattr(training.time, "perf_counter", lambda: clock[0])

    def run_epoch(callback, epoch, seconds):
        callback.on_epoch_begin(epoch)
        clock[0] += seconds
        callback.on_train_batch_end(0)
        callback.on_epoch_end(epoch)
        return callback.model.stop_training

    callback = training._time_budget_callback(10, spent_before=0.0, log=_quiet)  # 600 s
    callback.set_model(types.SimpleNamespace(stop_training=False))
    callback.on_train_begin()
    assert not run_epoch(callback, 0, 250)  # 250 s spent, another 250 s fits
    assert run_epoch(callback, 1, 250)  # 500 s spent, another 250 s would end at 750 s

    messages = []
    resumed = training._time_budget_callback(10, spent_before=550.0, log=messages.append)
    resumed.set_model(types.SimpleNamespace(stop_training=False))
    resumed.on_train_begin()
    assert run_epoch(resumed, 3, 60)  # 550 + 60 s crosses 600 s inside the epoch
    assert messages == ["Stopping after 10.2 min of training: the time budget (10 min) ran out during epoch 4"]


def test_a_time_budget_must_be_positive():
    with pytest.raises(ValueError, match="time_budget_minutes: expected a positive number"):
        TrainingSettings(time_budget_minutes=0)
