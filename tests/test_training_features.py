"""Training options for scarce data: --keep-best/--patience, --average-checkpoints, validation scores in
history.csv, --bpe-dropout, --shared-vocab (tied embeddings). Tiny models: seconds each."""

import csv
import json

import keras
import numpy as np
import pytest

from keras_transformer import training
from keras_transformer.config import ModelOptions, TransformerConfig
from keras_transformer.demo_corpus import generate_demo_corpus
from keras_transformer.evaluation import Scores
from keras_transformer.run_dir import RunDir
from keras_transformer.training import TrainingSettings, train

TINY_MODEL = ModelOptions(num_layers=1, hidden_dim=16, num_heads=2, intermediate_dim=32, dropout=0.0,
                          max_source_length=24, max_target_length=24)
TINY = dict(epochs=3, batch_tokens=1024, label_smoothing=0.0, warmup_steps=20, source_vocab_size=200,
            target_vocab_size=200, seed=1)
DATA = {"train": "demo[:300]"}


def _quiet(*args, **kwargs):
    pass


@pytest.fixture(scope="module")
def pairs():
    return generate_demo_corpus(seed=0, max_train_pairs=300).train


def _history(run_dir):
    with open(run_dir / "history.csv", newline="") as f:
        return list(csv.DictReader(f))


class _EpochWeights(keras.callbacks.Callback):
    """Records the weights of each finished epoch: at its end (after the project's callbacks), and at
    the beginning of the next (a resumed run starts from the restored weights)."""

    def __init__(self):
        super().__init__()
        self.weights = {}

    def on_epoch_begin(self, epoch, logs=None):
        if epoch:
            self.weights.setdefault(epoch, self.model.get_weights())

    def on_epoch_end(self, epoch, logs=None):
        self.weights[epoch + 1] = self.model.get_weights()


class _FailAt(keras.callbacks.Callback):
    """Raises at the beginning of `epoch` (0-based): the process 'dies' between two epochs."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            raise KeyboardInterrupt


def _fake_chrf(monkeypatch, values):
    """Validation scores given by the test: the chrF of the k-th scoring is values[k]."""
    calls = iter(values)

    def scorer(*args, **kwargs):
        def score():
            chrf = next(calls)
            return Scores(bleu=chrf / 2, chrf=chrf, exact_match=0.0, bleu_signature="", chrf_signature="", sentences=1)
        return score

    monkeypatch.setattr(training, "_validation_scorer", scorer)


def _assert_weights_equal(model, expected):
    for got, want in zip(model.get_weights(), expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)


def test_validation_scores_are_in_history_and_keep_best_bleu_keeps_the_best_epoch(tmp_path, pairs):
    """The real scorer: greedy translations of the validation split through the Keras cached step."""
    run_dir = tmp_path / "run"
    recorder = _EpochWeights()
    settings = TrainingSettings(**TINY, keep_best="bleu", score_max_pairs=20)
    train(run_dir, pairs, pairs[:40], TINY_MODEL, settings, DATA, log=_quiet, verbose=0, extra_callbacks=[recorder])
    rows = _history(run_dir)
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    for row in rows:
        assert 0.0 <= float(row["val_bleu"]) <= 100.0 and 0.0 <= float(row["val_chrf"]) <= 100.0
    best = training.ranked_epochs(rows, "bleu")[0]
    _assert_weights_equal(RunDir(run_dir).load_model(), recorder.weights[best])


def test_score_validation_alone_adds_the_columns_and_keeps_the_last_epoch(tmp_path, pairs):
    run_dir = tmp_path / "run"
    recorder = _EpochWeights()
    settings = TrainingSettings(**{**TINY, "epochs": 2}, score_validation=True, score_max_pairs=10)
    train(run_dir, pairs, pairs[:10], TINY_MODEL, settings, DATA, log=_quiet, verbose=0, extra_callbacks=[recorder])
    assert {"val_bleu", "val_chrf", "val_loss"} <= set(_history(run_dir)[0])
    _assert_weights_equal(RunDir(run_dir).load_model(), recorder.weights[2])


def test_keep_best_chrf_keeps_an_earlier_epoch_and_patience_stops(tmp_path, pairs, monkeypatch):
    _fake_chrf(monkeypatch, [10.0, 30.0, 20.0, 25.0, 99.0])
    run_dir = tmp_path / "run"
    recorder = _EpochWeights()
    messages = []
    settings = TrainingSettings(**{**TINY, "epochs": 5}, keep_best="chrf", patience=2)
    returned = train(run_dir, pairs, pairs[:10], TINY_MODEL, settings, DATA, log=messages.append, verbose=0,
                     extra_callbacks=[recorder])
    rows = _history(run_dir)
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4]  # epochs 3 and 4 brought no gain: stop
    assert [float(r["val_chrf"]) for r in rows] == [10.0, 30.0, 20.0, 25.0]
    assert "Stopping after epoch 4: no better validation chrf in 2 epochs (best: epoch 2)" in messages
    run = RunDir(run_dir)
    assert run.read_config()["status"] == "complete" and not run.backup_path.exists()
    _assert_weights_equal(run.load_model(), recorder.weights[2])
    _assert_weights_equal(returned, recorder.weights[2])  # train returns the kept model


def test_keep_best_loss_keeps_the_lowest_validation_loss(tmp_path, pairs):
    run_dir = tmp_path / "run"
    recorder = _EpochWeights()
    settings = TrainingSettings(**TINY, keep_best="loss")
    train(run_dir, pairs, pairs[:30], TINY_MODEL, settings, DATA, log=_quiet, verbose=0, extra_callbacks=[recorder])
    rows = _history(run_dir)
    best = min(rows, key=lambda r: float(r["val_loss"]))
    assert "val_bleu" not in rows[0]  # loss needs no translation
    _assert_weights_equal(RunDir(run_dir).load_model(), recorder.weights[int(best["epoch"])])


def test_an_interrupted_keep_best_run_resumes_and_still_keeps_the_best(tmp_path, pairs, monkeypatch):
    _fake_chrf(monkeypatch, [10.0, 30.0, 20.0, 15.0])
    run_dir = tmp_path / "run"
    recorder = _EpochWeights()
    settings = TrainingSettings(**{**TINY, "epochs": 4}, keep_best="chrf")
    with pytest.raises(KeyboardInterrupt):
        train(run_dir, pairs, pairs[:10], TINY_MODEL, settings, DATA, log=_quiet, verbose=0,
              extra_callbacks=[recorder, _FailAt(2)])
    assert [int(r["epoch"]) for r in _history(run_dir)] == [1, 2]
    assert RunDir(run_dir).backup_path.exists()
    _assert_weights_equal(RunDir(run_dir).load_model(), recorder.weights[2])
    messages = []
    train(run_dir, pairs, pairs[:10], TINY_MODEL, settings, DATA, log=messages.append, verbose=0,
          extra_callbacks=[recorder])
    assert any("Resuming" in m for m in messages)
    assert [float(r["val_chrf"]) for r in _history(run_dir)] == [10.0, 30.0, 20.0, 15.0]
    _assert_weights_equal(RunDir(run_dir).load_model(), recorder.weights[2])


def test_a_crash_after_the_commit_but_before_model_keras_is_repaired_on_resume(tmp_path, pairs, monkeypatch):
    """Killed between BackupAndRestore's checkpoint of a new best epoch and the write of model.keras:
    the resumed run rebuilds model.keras from the restored weights before training on."""
    _fake_chrf(monkeypatch, [10.0, 30.0, 20.0])
    run_dir = tmp_path / "run"
    recorder = _EpochWeights()
    saves = []
    real_save = training.atomic_save_model

    def save_fails_at_the_second(model, path):
        saves.append(path)
        if len(saves) == 2:  # the save of epoch 2, the new best, after its commit
            raise KeyboardInterrupt
        real_save(model, path)

    monkeypatch.setattr(training, "atomic_save_model", save_fails_at_the_second)
    settings = TrainingSettings(**TINY, keep_best="chrf")
    with pytest.raises(KeyboardInterrupt):
        train(run_dir, pairs, pairs[:10], TINY_MODEL, settings, DATA, log=_quiet, verbose=0,
              extra_callbacks=[recorder])
    _assert_weights_equal(RunDir(run_dir).load_model(), recorder.weights[1])  # stale: epoch 1
    monkeypatch.setattr(training, "atomic_save_model", real_save)
    train(run_dir, pairs, pairs[:10], TINY_MODEL, settings, DATA, log=_quiet, verbose=0, extra_callbacks=[recorder])
    assert [int(r["epoch"]) for r in _history(run_dir)] == [1, 2, 3]
    _assert_weights_equal(RunDir(run_dir).load_model(), recorder.weights[2])


class _CountEpochFiles(keras.callbacks.Callback):
    def __init__(self, run_dir):
        super().__init__()
        self.run_dir, self.counts = run_dir, []

    def on_epoch_end(self, epoch, logs=None):
        self.counts.append(sorted(p.name for p in RunDir(self.run_dir).epochs_path.glob("*.npz")))


def test_average_checkpoints_averages_the_last_n_epochs(tmp_path, pairs):
    run_dir = tmp_path / "run"
    recorder, files = _EpochWeights(), _CountEpochFiles(run_dir)
    settings = TrainingSettings(**TINY, average_checkpoints=2)
    train(run_dir, pairs, None, TINY_MODEL, settings, DATA, log=_quiet, verbose=0, extra_callbacks=[recorder, files])
    # Only the epochs that a later average can still need are kept while training...
    assert files.counts == [["epoch-1.npz"], ["epoch-1.npz", "epoch-2.npz"], ["epoch-2.npz", "epoch-3.npz"]]
    assert not RunDir(run_dir).epochs_path.exists()  # ...and none once training is complete
    mean = [(a + b) / 2 for a, b in zip(recorder.weights[2], recorder.weights[3])]
    _assert_weights_equal(RunDir(run_dir).load_model(), mean)


def test_average_checkpoints_with_keep_best_averages_the_best_n(tmp_path, pairs, monkeypatch):
    _fake_chrf(monkeypatch, [30.0, 10.0, 20.0, 5.0])
    run_dir = tmp_path / "run"
    recorder = _EpochWeights()
    messages = []
    settings = TrainingSettings(**{**TINY, "epochs": 4}, keep_best="chrf", average_checkpoints=2)
    train(run_dir, pairs, pairs[:10], TINY_MODEL, settings, DATA, log=messages.append, verbose=0,
          extra_callbacks=[recorder])
    mean = [(a + b) / 2 for a, b in zip(recorder.weights[1], recorder.weights[3])]
    _assert_weights_equal(RunDir(run_dir).load_model(), mean)
    assert "model.keras: the mean of epochs 1, 3 (best validation chrf)" in messages


def test_bpe_dropout_resegments_each_pass_and_saves_deterministic_tokenizers(tmp_path, pairs):
    from keras_transformer import pipeline
    from keras_transformer.tokenizer_training import train_tokenizer, with_bpe_dropout

    tokenizer = train_tokenizer([s for s, _ in pairs], 200)
    noisy = with_bpe_dropout(tokenizer, 0.5)
    text = pairs[0][0]
    assert len({tuple(noisy.encode(text)) for _ in range(20)}) > 1
    assert len({tuple(tokenizer.encode(text)) for _ in range(5)}) == 1  # the original is untouched
    assert noisy.decode(noisy.encode(text)) == tokenizer.decode(tokenizer.encode(text))
    with pytest.raises(ValueError, match="expected a BPE dropout with 0 < dropout < 1"):
        with_bpe_dropout(tokenizer, 1.0)

    calls = []

    def encode_pass():
        calls.append(1)
        return pipeline.encode_corpus(pairs[:50], noisy, noisy, 24, 24)

    dataset, steps = pipeline.make_resampled_dataset(encode_pass, 256, 24, seed=0)
    first = [x["source_ids"].numpy().tolist() for x, _ in dataset.take(steps)]
    second = [x["source_ids"].numpy().tolist() for x, _ in dataset.skip(steps).take(steps)]
    assert first != second and len(calls) >= 3  # a sample to count steps, then one encoding per pass

    run_dir = tmp_path / "run"
    settings = TrainingSettings(**{**TINY, "epochs": 2}, bpe_dropout=0.1)
    train(run_dir, pairs, pairs[:20], TINY_MODEL, settings, DATA, log=_quiet, verbose=0)
    run = RunDir(run_dir)
    for path in (run.source_tokenizer_path, run.target_tokenizer_path):
        assert json.loads(path.read_text())["model"]["dropout"] is None  # export and inference: deterministic
    assert [int(r["epoch"]) for r in _history(run_dir)] == [1, 2]


def test_shared_vocab_trains_one_tokenizer_and_ties_the_embeddings(tmp_path, pairs):
    from keras_transformer.export.exporter import export_bundle
    from keras_transformer.model import decoder_of, encoder_of

    run_dir = tmp_path / "run"
    options = ModelOptions(**{**TINY_MODEL.__dict__, "share_embeddings": True})
    settings = TrainingSettings(**{**TINY, "epochs": 2, "source_vocab_size": 300, "target_vocab_size": 300},
                                shared_vocab=True)
    train(run_dir, pairs, None, options, settings, DATA, log=_quiet, verbose=0)
    run = RunDir(run_dir)
    assert run.source_tokenizer_path.read_bytes() == run.target_tokenizer_path.read_bytes()
    source_tokenizer, _ = run.load_tokenizers()
    assert source_tokenizer.encode(pairs[0][1]) and 3 not in source_tokenizer.encode(pairs[0][1])  # Hindi known
    model = run.load_model()
    assert encoder_of(model).embedding.embeddings is decoder_of(model).embedding.embeddings  # tied after loading
    untied = ModelOptions(**TINY_MODEL.__dict__)
    config = run.transformer_config()
    assert config.share_embeddings
    from keras_transformer.model import build_transformer

    separate = build_transformer(TransformerConfig(source_vocab_size=300, target_vocab_size=300,
                                                 **untied.__dict__)).count_params()
    assert model.count_params() == separate - config.source_vocab_size * config.hidden_dim
    parity = export_bundle(run_dir, tmp_path / "bundle", log=_quiet)["parity"]  # raises unless parity holds
    assert parity["greedy_identical"] == parity["greedy_sentences"] > 0


def test_max_train_length_filters_training_pairs_but_keeps_the_models_lengths(tmp_path, pairs):
    """Training on the pairs of at most 8 tokens with a model that reads 24 is training the 8-token
    model (the same pairs and batches, and sinusoidal positions are no weights: the same losses, up to
    float rounding, which the two graphs do not share), and its config says 24."""
    settings = dict(TINY, epochs=1)
    logs = []
    filtered = train(tmp_path / "filtered", pairs, pairs[:40], TINY_MODEL,
                     TrainingSettings(**settings, max_train_length=8), DATA, log=logs.append, verbose=0)
    short_model = ModelOptions(**{**TINY_MODEL.__dict__, "max_source_length": 8, "max_target_length": 8})
    short_logs = []
    short = train(tmp_path / "short", pairs, pairs[:40], short_model, TrainingSettings(**settings), DATA,
                  log=short_logs.append, verbose=0)
    kept = next(line for line in logs if line.startswith("Training pairs"))
    assert "skipped as longer than 8/8 tokens (--max-train-length; the model reads 24/24)" in kept
    assert kept.split(" (--max")[0] == next(line for line in short_logs if line.startswith("Training pairs"))
    assert " 0 skipped" not in kept  # the filter left some pairs out
    assert RunDir(tmp_path / "filtered").transformer_config().max_source_length == 24
    assert RunDir(tmp_path / "filtered").read_config()["training"]["max_train_length"] == 8
    assert [w.shape for w in filtered.get_weights()] == [w.shape for w in short.get_weights()]
    (got,), (want,) = _history(tmp_path / "filtered"), _history(tmp_path / "short")
    for key in ("loss", "val_loss"):
        assert float(got[key]) == pytest.approx(float(want[key]), rel=1e-5)


def test_feature_options_are_checked(pairs, tmp_path):
    with pytest.raises(ValueError, match="keep_best: expected one of"):
        TrainingSettings(keep_best="accuracy")
    with pytest.raises(ValueError, match="patience: expected a positive integer together with keep_best"):
        TrainingSettings(patience=2)
    with pytest.raises(ValueError, match="shared_vocab: expected one vocabulary size"):
        TrainingSettings(shared_vocab=True, source_vocab_size=100, target_vocab_size=200)
    with pytest.raises(ValueError, match="bpe_dropout: expected 0 <= value < 1"):
        TrainingSettings(bpe_dropout=1.5)
    with pytest.raises(ValueError, match=r"max_train_length: expected 2 or more \(a subword and EOS\), got 1"):
        TrainingSettings(max_train_length=1)
    with pytest.raises(ValueError, match="average_checkpoints: expected a positive integer"):
        TrainingSettings(average_checkpoints=0)
    with pytest.raises(ValueError, match="share_embeddings needs one vocabulary for both sides"):
        TransformerConfig(source_vocab_size=100, target_vocab_size=200, share_embeddings=True)
    with pytest.raises(ValueError, match="need validation data"):
        train(tmp_path / "a", pairs, None, TINY_MODEL, TrainingSettings(**TINY, keep_best="loss"), DATA, log=_quiet)
    with pytest.raises(ValueError, match="expected shared_vocab=True"):
        train(tmp_path / "b", pairs, None, ModelOptions(**{**TINY_MODEL.__dict__, "share_embeddings": True}),
              TrainingSettings(**TINY), DATA, log=_quiet)


def test_a_run_written_before_the_new_settings_still_resumes():
    old = {"training": {k: v for k, v in TrainingSettings(**TINY).__dict__.items()
                        if k not in ("keep_best", "bpe_dropout", "shared_vocab", "max_train_length")},
           "model_options": {k: v for k, v in TINY_MODEL.__dict__.items() if k != "share_embeddings"}}
    filled = training._with_new_defaults(old)
    assert filled["training"] == TrainingSettings(**TINY).__dict__
    assert filled["model_options"] == TINY_MODEL.__dict__


def test_train_command_options(tmp_path, monkeypatch):
    from keras_transformer import cli

    seen = {}
    monkeypatch.setattr(training, "train", lambda out, train_pairs, valid_pairs, model_options, settings, *a, **k:
                        seen.update(model_options=model_options, settings=settings))
    (tmp_path / "d.tsv").write_text("a b\tc d\ne f\tg h\n", encoding="utf-8")
    assert cli.main(["train", "--data", str(tmp_path / "d.tsv"), "--valid", str(tmp_path / "d.tsv"), "--out",
                          str(tmp_path / "run"), "--keep-best", "chrf", "--patience", "3", "--average-checkpoints",
                          "4", "--bpe-dropout", "0.1", "--shared-vocab", "--target-vocab-size", "500",
                          "--score-max-pairs", "7", "--max-train-length", "16"]) == 0
    settings, options = seen["settings"], seen["model_options"]
    assert (settings.keep_best, settings.patience, settings.average_checkpoints) == ("chrf", 3, 4)
    assert settings.bpe_dropout == 0.1 and settings.max_train_length == 16
    assert settings.shared_vocab and options.share_embeddings and settings.score_max_pairs == 7
    assert settings.source_vocab_size == settings.target_vocab_size == 500  # one size for the shared vocabulary
    assert not settings.score_validation and settings.scores_translations


def test_train_command_combines_corpora_and_records_them(tmp_path, monkeypatch):
    from keras_transformer import cli
    from keras_transformer.corpus import TrainingCorpora

    seen = {}
    monkeypatch.setattr(training, "train", lambda out, data, valid_pairs, model_options, settings, record, **k:
                        seen.update(data=data, record=record))
    (tmp_path / "in.tsv").write_text("a b\tc d\n", encoding="utf-8")
    (tmp_path / "out.tsv").write_text("e f\tg h\n", encoding="utf-8")
    assert cli.main(["train", "--data", f"{tmp_path / 'in.tsv'}*2", "--data", str(tmp_path / "out.tsv"),
                     "--out", str(tmp_path / "run")]) == 0
    # the SPECs go to training as they are: it prepares them into the run (streamed), not the CLI
    assert seen["data"] == TrainingCorpora((f"{tmp_path / 'in.tsv'}*2", str(tmp_path / "out.tsv")))
    assert seen["record"]["train"] == [f"{tmp_path / 'in.tsv'}*2", str(tmp_path / "out.tsv")]
    assert cli.main(["train", "--data", str(tmp_path / "out.tsv"), "--out", str(tmp_path / "run")]) == 0
    assert seen["record"]["train"] == str(tmp_path / "out.tsv")  # one SPEC: a string, as older runs recorded it
    # BPE-dropout re-encodes the text each epoch: the pairs are read into memory, repeats included
    assert cli.main(["train", "--data", f"{tmp_path / 'in.tsv'}*2", "--data", str(tmp_path / "out.tsv"),
                     "--bpe-dropout", "0.1", "--out", str(tmp_path / "run")]) == 0
    assert seen["data"] == [("a b", "c d"), ("a b", "c d"), ("e f", "g h")]
