"""Training with `model.fit`: tokenizers, run directory, callbacks that make interruption harmless.

- Re-running the same command on an unfinished run continues after the last finished epoch
  (`BackupAndRestore` holds weights, optimizer state and the epoch counter).
- `force=True` starts over; a run directory trained with other settings, or a directory that is
  not a run, is never overwritten silently.
- A NaN/Inf loss stops training with `TrainingError`; `model.keras` keeps the last good epoch.
- `model.keras`, `config.json` and `history.csv` are replaced atomically at each epoch end.
- `time_budget_minutes` caps the training time (earlier attempts of a resumed run included): training
  ends before an epoch that would not fit, or at the first batch past the budget.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import shutil
import sys
import time
from dataclasses import dataclass

from keras_transformer.atomic_files import atomic_save_model, atomic_write_text
from keras_transformer.config import ModelOptions
from keras_transformer.run_dir import RunDir, RunDirError


class TrainingError(RuntimeError):
    """Training stopped for a reason the user must act on (e.g. the loss became NaN)."""


@dataclass(frozen=True)
class TrainingSettings:
    epochs: int = 10
    batch_tokens: int = 4096
    label_smoothing: float = 0.1
    warmup_steps: int = 4000
    learning_rate_scale: float = 1.0
    source_vocab_size: int = 8000
    target_vocab_size: int = 8000
    seed: int = 0
    jit_compile: bool = False
    strategy: str = "default"  # see keras_transformer/distribution.py
    time_budget_minutes: float | None = None  # stop training once this much time is spent

    def __post_init__(self):
        for name in ("epochs", "batch_tokens", "warmup_steps", "source_vocab_size", "target_vocab_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: expected a positive integer, got {getattr(self, name)!r}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"label_smoothing: expected 0 <= value < 1, got {self.label_smoothing!r}")
        if self.time_budget_minutes is not None and not self.time_budget_minutes > 0:
            raise ValueError(f"time_budget_minutes: expected a positive number, got {self.time_budget_minutes!r}")


def _history_callback(run: RunDir):
    import keras

    class EpochEnd(keras.callbacks.Callback):
        """Saves model.keras and rewrites history.csv (one row per finished epoch) atomically.

        Rows of epochs at or after the current one (left by an interrupted earlier attempt) are
        replaced, so every epoch appears exactly once however often training was resumed.
        """

        def on_train_begin(self, logs=None):
            self.rows = run.read_history()

        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            atomic_save_model(self.model, run.model_path)
            row = {"epoch": epoch + 1, **{k: float(v) for k, v in (logs or {}).items()},
                   "seconds": round(time.perf_counter() - self.started, 2)}
            self.rows = [r for r in self.rows if int(r["epoch"]) <= epoch] + [row]
            _write_history(run, self.rows)

    return EpochEnd()


def _time_budget_callback(minutes: float, spent_before: float, log):
    """Stops `fit` once `minutes` of training are spent, `spent_before` seconds (earlier attempts) included.

    At each epoch end it predicts the next epoch from the last one and stops if it would end past
    the budget, so epochs normally stay whole; a batch that ends past the budget stops at once.
    """
    import keras

    budget = 60.0 * minutes

    class TimeBudget(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.started = time.perf_counter()
            self.reached = False

        def spent(self) -> float:
            return spent_before + time.perf_counter() - self.started

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch, self.epoch_started = epoch, time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            if self.spent() >= budget:
                self._stop(f"the time budget ({minutes:g} min) ran out during epoch {self.epoch + 1}")

        def on_epoch_end(self, epoch, logs=None):
            last_epoch = time.perf_counter() - self.epoch_started
            if not self.reached and self.spent() + last_epoch > budget:
                self._stop(f"another epoch (about {last_epoch / 60:.1f} min) would not fit in the time budget "
                           f"({minutes:g} min)")

        def _stop(self, reason):
            if not self.reached:
                log(f"Stopping after {self.spent() / 60:.1f} min of training: {reason}")
            self.reached = True
            self.model.stop_training = True

    return TimeBudget()


def _write_history(run: RunDir, rows: list[dict]):
    columns = ["epoch"] + sorted({k for r in rows for k in r} - {"epoch"})
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(run.history_path, buffer.getvalue())


def _prepare_run_dir(run: RunDir, request: dict, force: bool, log) -> bool:
    """Returns True when an unfinished run with the same settings should be resumed."""
    if run.path.exists() and not run.path.is_dir():
        raise RunDirError(f"{run.path}: expected a directory for the run, got a file")
    if force and run.path.exists():
        if not run.exists() and not run.is_empty_or_missing():
            raise RunDirError(f"{run.path}: exists and is not a run directory; refusing to delete it even with "
                              "--force (choose another --out)")
        shutil.rmtree(run.path)
    if run.is_empty_or_missing():
        run.path.mkdir(parents=True, exist_ok=True)
        return False
    if not run.exists():
        raise RunDirError(f"{run.path}: exists and is not a run directory (no config.json); choose another --out")
    previous = run.read_config()
    differences = sorted(k for k in request if previous.get(k) != request[k])
    if differences:
        raise RunDirError(f"{run.path}: holds a run trained with other settings (differences in {differences}); "
                          "pass --force to start over or choose another --out")
    log(f"Resuming {run.path} after epoch {len(run.read_history())}")
    return True


def train(out, train_pairs, valid_pairs, model_options: ModelOptions, settings: TrainingSettings,
          data_description: dict, force: bool = False, log=print, verbose="auto", extra_callbacks=()):
    """Trains (or resumes) a run in directory `out`; returns the trained `keras.Model`.

    `extra_callbacks` run after the project's own (e.g. to inject faults in tests)."""
    import keras

    from keras_transformer import distribution, losses, pipeline
    from keras_transformer.config import TransformerConfig
    from keras_transformer.model import build_transformer
    from keras_transformer.schedule import transformer_optimizer
    from keras_transformer.tokenizer_training import train_tokenizer

    run = RunDir(out)
    request = {"model_options": dataclasses.asdict(model_options), "training": dataclasses.asdict(settings),
               "data": data_description}
    resuming = _prepare_run_dir(run, request, force, log)
    if resuming and run.read_config().get("status") == "complete":
        log(f"{run.path}: training already complete ({settings.epochs} epochs); pass --force to start over")
        return run.load_model()

    if resuming:
        source_tokenizer, target_tokenizer = run.load_tokenizers()
    else:
        started = time.perf_counter()
        source_tokenizer = train_tokenizer((s for s, _ in train_pairs), settings.source_vocab_size)
        target_tokenizer = train_tokenizer((t for _, t in train_pairs), settings.target_vocab_size)
        source_tokenizer.save(run.source_tokenizer_path)
        target_tokenizer.save(run.target_tokenizer_path)
        log(f"Tokenizers: source {source_tokenizer.vocab_size} and target {target_tokenizer.vocab_size} subwords "
            f"({time.perf_counter() - started:.1f}s)")
    config = TransformerConfig(source_vocab_size=source_tokenizer.vocab_size,
                               target_vocab_size=target_tokenizer.vocab_size,
                               **dataclasses.asdict(model_options))
    run.write_config({**request, "model": config.to_dict(), "status": "training"})

    encode = lambda pairs: pipeline.encode_corpus(  # noqa: E731
        pairs, source_tokenizer, target_tokenizer, config.max_source_length, config.max_target_length)
    train_corpus = encode(train_pairs)
    log(f"Training pairs: {len(train_corpus)} kept, {train_corpus.skipped_too_long} skipped as longer than "
        f"{config.max_source_length}/{config.max_target_length} tokens")
    strategy = distribution.make_strategy(settings.strategy)
    make_train_data = lambda: pipeline.make_dataset(  # noqa: E731
        train_corpus, settings.batch_tokens, shuffle=True, seed=settings.seed, fixed_shapes=settings.jit_compile)
    train_data = distribution.distribute(settings.strategy, strategy, make_train_data)
    valid_data = None
    if valid_pairs:
        valid_corpus = encode(valid_pairs)
        valid_data = distribution.distribute(settings.strategy, strategy, lambda: pipeline.make_dataset(
            valid_corpus, settings.batch_tokens, shuffle=False, fixed_shapes=settings.jit_compile))

    keras.utils.set_random_seed(settings.seed)
    with strategy.scope():  # variables are created mirrored on every replica
        model = build_transformer(config)
        model.compile(
            optimizer=transformer_optimizer(config.hidden_dim, settings.warmup_steps, settings.learning_rate_scale),
            loss=losses.MaskedSparseCrossEntropy(settings.label_smoothing),
            metrics=[losses.MaskedAccuracy()],
            jit_compile=settings.jit_compile,
        )
    distribution.adapt_model_for_strategy(model, strategy, make_train_data)
    callbacks = [
        keras.callbacks.BackupAndRestore(str(run.backup_path), double_checkpoint=True),
        keras.callbacks.TerminateOnNaN(raise_error=True),
        _history_callback(run),
        *extra_callbacks,
    ]
    if settings.time_budget_minutes is not None:
        spent_before = sum(float(row["seconds"]) for row in run.read_history()) if resuming else 0.0
        callbacks.append(_time_budget_callback(settings.time_budget_minutes, spent_before, log))
    if verbose == "auto" and not sys.stdout.isatty():
        verbose = 2  # one line per epoch in logs, the progress bar on a terminal
    try:
        model.fit(train_data, validation_data=valid_data, epochs=settings.epochs, callbacks=callbacks,
                  verbose=verbose, shuffle=False)  # the dataset shuffles itself
    except RuntimeError as error:
        if "NaN or Inf loss" not in str(error):
            raise
        finished = len(run.read_history())
        raise TrainingError(f"training stopped: the loss became NaN/Inf ({error}); {run.model_path} keeps the last "
                            f"good epoch ({finished} finished); lower the learning rate or check the data") from None
    run.write_config({**request, "model": config.to_dict(), "status": "complete"})
    return model
