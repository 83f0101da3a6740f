"""Training with `model.fit`: tokenizers, run directory, callbacks that make interruption harmless.

- Re-running the same command on an unfinished run continues after the last finished epoch
  (`BackupAndRestore` holds weights, optimizer state and the epoch counter).
- `force=True` starts over; a run directory trained with other settings, or a directory that is
  not a run, is never overwritten silently.
- A NaN/Inf loss stops training with `TrainingError`; `model.keras` keeps the last good epoch.
- `model.keras`, `config.json` and `history.csv` are replaced atomically at each epoch end.
- `time_budget_minutes` caps the training time (earlier attempts of a resumed run included): training
  ends before an epoch that would not fit, or at the first batch past the budget.
- `keep_best` ("loss", "bleu", "chrf"): `model.keras` is the best epoch on the validation split
  (val_loss, or BLEU / chrF++ of greedy translations), `patience` stops after that many epochs
  without a better score; `average_checkpoints` N: `model.keras` is the mean of the weights of the
  last N epochs (with `keep_best`, of the best N). The latest epoch stays resumable (RUN/backup).
- `score_validation` (on with keep_best bleu/chrf) adds `val_bleu` and `val_chrf` to history.csv.
- `bpe_dropout` re-segments the training data each epoch with BPE-dropout; the saved tokenizers
  (export, inference) stay deterministic. `shared_vocab`: one tokenizer for both sides (with
  `ModelOptions.share_embeddings`, one embedding too). `max_train_length` leaves long pairs out of
  training without lowering the model's max lengths (sinusoidal positions cost no weights).

What is saved where, and why an interruption loses nothing (epoch K ends; BackupAndRestore's
checkpoint of epoch K in RUN/backup is the commit point):

    before the commit   validation scores; history.csv with epoch K's row; with averaging,
                        RUN/epochs/epoch-K.npz (epoch K's weights)          all written atomically
    the commit          RUN/backup: weights, optimizer state, epoch counter (BackupAndRestore)
    after the commit    model.keras: epoch K (latest), or epoch K if it is the best so far
                        (keep_best), or the mean of the selected epochs' .npz (averaging); the
                        .npz files no longer selectable are deleted

A run killed before the commit trains epoch K again (its history row and .npz are replaced); one
killed after it resumes at K + 1 and first redoes the after-commit step for epoch K from the
restored weights (model.keras is only ever built from committed epochs). The best score and the
patience count are read back from history.csv, so they need no state of their own. RUN/epochs is
deleted once training is complete.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import shutil
import sys
import time
import warnings
from dataclasses import dataclass

from keras_transformer.atomic_files import atomic_path, atomic_save_model, atomic_write_text
from keras_transformer.config import ModelOptions
from keras_transformer.run_dir import RunDir, RunDirError
from keras_transformer.serve.errors import KerasTransformerError, OptionError


class TrainingError(KerasTransformerError, RuntimeError):
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
    keep_best: str | None = None  # "loss", "bleu" or "chrf": model.keras is the best epoch on the validation split
    patience: int | None = None  # with keep_best: stop after this many epochs without a better score
    average_checkpoints: int = 1  # model.keras = mean weights of the last N epochs (with keep_best: the best N)
    score_validation: bool = False  # BLEU and chrF++ of the validation split each epoch (on with keep_best bleu/chrf)
    score_max_pairs: int | None = None  # score only the first N validation pairs (None: all)
    bpe_dropout: float = 0.0  # BPE-dropout of the training data, re-segmented each epoch (0: off)
    shared_vocab: bool = False  # one tokenizer trained on both sides (source_vocab_size == target_vocab_size)
    # Pairs with more subwords than this on either side (EOS included) are left out of training and the
    # validation loss, while the model's max_source/target_length (its positions, and what the Translator
    # truncates to) may be larger: short pairs train fast, long inputs are still read whole (None: the
    # model's lengths are the only filter).
    max_train_length: int | None = None
    # Sentences per side the tokenizers learn from when `train --data SPEC` prepares its corpora
    # (a seeded sample beyond this: keras_transformer/prepare.py).
    tokenizer_sample: int = 1_000_000

    def __post_init__(self):
        for name in ("epochs", "batch_tokens", "warmup_steps", "source_vocab_size", "target_vocab_size",
                     "average_checkpoints"):
            if getattr(self, name) < 1:
                raise OptionError(f"{name}: expected a positive integer, got {getattr(self, name)!r}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise OptionError(f"label_smoothing: expected 0 <= value < 1, got {self.label_smoothing!r}")
        if self.time_budget_minutes is not None and not self.time_budget_minutes > 0:
            raise OptionError(f"time_budget_minutes: expected a positive number, got {self.time_budget_minutes!r}")
        if self.keep_best is not None and self.keep_best not in KEEP_BEST_METRICS:
            raise OptionError(f"keep_best: expected one of {sorted(KEEP_BEST_METRICS)}, got {self.keep_best!r}")
        if self.patience is not None and (self.patience < 1 or self.keep_best is None):
            raise OptionError(f"patience: expected a positive integer together with keep_best, got patience="
                             f"{self.patience!r} and keep_best={self.keep_best!r}")
        if self.max_train_length is not None and self.max_train_length < 2:
            raise OptionError("max_train_length: expected 2 or more (a subword and EOS), "
                              f"got {self.max_train_length!r}")
        if self.score_max_pairs is not None and self.score_max_pairs < 1:
            raise OptionError(f"score_max_pairs: expected a positive integer, got {self.score_max_pairs!r}")
        if not 0.0 <= self.bpe_dropout < 1.0:
            raise OptionError(f"bpe_dropout: expected 0 <= value < 1, got {self.bpe_dropout!r}")
        if self.shared_vocab and self.source_vocab_size != self.target_vocab_size:
            raise OptionError(f"shared_vocab: expected one vocabulary size, got source_vocab_size="
                             f"{self.source_vocab_size} and target_vocab_size={self.target_vocab_size}")

    @property
    def scores_translations(self) -> bool:
        """True when each epoch translates the validation split (BLEU, chrF++)."""
        return self.score_validation or self.keep_best in ("bleu", "chrf")


# BPE-dropout re-encodes the text each epoch, so it keeps the pairs in memory: at most this many.
BPE_DROPOUT_MAX_PAIRS = 2_000_000

# keep_best metric -> (history.csv column, True when higher is better)
KEEP_BEST_METRICS = {"loss": ("val_loss", False), "bleu": ("val_bleu", True), "chrf": ("val_chrf", True)}


def ranked_epochs(rows: list[dict], keep_best: str) -> list[int]:
    """The epochs of history rows, best first by `keep_best`'s column (ties: the earlier epoch first)."""
    column, higher_is_better = KEEP_BEST_METRICS[keep_best]
    scored = [(float(row[column]), int(row["epoch"])) for row in rows if row.get(column) not in (None, "")]
    scored = [(score, epoch) for score, epoch in scored if score == score]  # NaN is never best
    return [epoch for _, epoch in sorted(scored, key=lambda item: (-item[0] if higher_is_better else item[0], item[1]))]


def selected_epochs(rows: list[dict], settings: TrainingSettings) -> list[int]:
    """The finished epochs that model.keras is made of: the last one, the best one (keep_best), or
    the last / best `average_checkpoints` ones."""
    count = settings.average_checkpoints
    if settings.keep_best is not None:
        return ranked_epochs(rows, settings.keep_best)[:count]
    return [int(row["epoch"]) for row in rows][-count:]


def epochs_without_gain(rows: list[dict], keep_best: str) -> int:
    """Epochs finished since the best one (0 when the last epoch is the best)."""
    ranked = ranked_epochs(rows, keep_best)
    if not ranked:
        return len(rows)
    return sum(1 for row in rows if int(row["epoch"]) > ranked[0])


def _validation_scorer(model, source_tokenizer, target_tokenizer, valid_pairs, max_pairs):
    """A function that translates the validation sources greedily (the Keras cached step through the
    `Translator` front end) and returns their `Scores` against the references."""
    from keras_transformer.evaluation import score_translations
    from keras_transformer.translation import keras_translator

    pairs = list(valid_pairs)[:max_pairs] if max_pairs else list(valid_pairs)
    sources, references = [s for s, _ in pairs], [t for _, t in pairs]
    translator = []

    def score():
        if not translator:  # built once: its tf.functions read the model's weights as they change
            translator.append(keras_translator(model, source_tokenizer, target_tokenizer))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # truncation of long sources is the same every epoch
            hypotheses = translator[0].translate(sources)
        return score_translations(hypotheses, references)

    return score


class _RunKeeper:
    """Writes history.csv, model.keras and RUN/epochs around BackupAndRestore's commit (see the
    module docstring): `before_backup` goes before BackupAndRestore in the callback list,
    `after_backup` after it."""

    def __init__(self, run: RunDir, settings: TrainingSettings, score=None, log=print):
        import keras

        self.run, self.settings, self.score, self.log = run, settings, score, log
        self.rows: list[dict] = []
        self.skip_epoch = False
        keeper = self

        class BeforeBackup(keras.callbacks.Callback):
            def on_train_begin(self, logs=None):
                keeper.rows = run.read_history()

            def on_epoch_begin(self, epoch, logs=None):
                keeper.epoch_begin(self.model, epoch)

            def on_epoch_end(self, epoch, logs=None):
                keeper.epoch_end(self.model, epoch, logs if logs is not None else {})

        class AfterBackup(keras.callbacks.Callback):
            def on_train_begin(self, logs=None):
                # BackupAndRestore (before this callback) restored the last committed epoch, if any.
                committed = int(getattr(self.model, "_initial_epoch", None) or 0)
                kept = [row for row in keeper.rows if int(row["epoch"]) <= committed]
                if len(kept) != len(keeper.rows):  # rows of an epoch that was never committed
                    keeper.rows = kept
                    _write_history(run, kept)
                if committed:
                    keeper.materialize(self.model, committed)

            def on_epoch_end(self, epoch, logs=None):
                if not keeper.skip_epoch:
                    keeper.materialize(self.model, epoch + 1)

        self.before_backup, self.after_backup = BeforeBackup(), AfterBackup()

    @property
    def averaging(self) -> bool:
        return self.settings.average_checkpoints > 1

    def epoch_weights_path(self, epoch: int):
        return self.run.epochs_path / f"epoch-{epoch}.npz"

    def epoch_begin(self, model, epoch):
        self.started = time.perf_counter()
        self.rows = [row for row in self.rows if int(row["epoch"]) <= epoch]
        patience = self.settings.patience
        # A run killed after committing the epoch that used up its patience: nothing more to train.
        self.skip_epoch = bool(patience and self.rows and
                               epochs_without_gain(self.rows, self.settings.keep_best) >= patience)
        if self.skip_epoch:
            model.stop_training = True

    def epoch_end(self, model, epoch, logs):
        if self.skip_epoch:
            return
        if self.score is not None:
            scores = self.score()
            logs["val_bleu"], logs["val_chrf"] = round(scores.bleu, 4), round(scores.chrf, 4)
        row = {"epoch": epoch + 1, **{k: float(v) for k, v in logs.items()},
               "seconds": round(time.perf_counter() - self.started, 2)}
        self.rows = [r for r in self.rows if int(r["epoch"]) <= epoch] + [row]
        _write_history(self.run, self.rows)
        if self.averaging:
            self.save_epoch_weights(model, epoch + 1)
        patience = self.settings.patience
        if patience and epochs_without_gain(self.rows, self.settings.keep_best) >= patience:
            best = ranked_epochs(self.rows, self.settings.keep_best)[0]
            self.log(f"Stopping after epoch {epoch + 1}: no better validation {self.settings.keep_best} in {patience} "
                     f"epoch{'s' if patience > 1 else ''} (best: epoch {best})")
            model.stop_training = True

    def save_epoch_weights(self, model, epoch):
        self.run.epochs_path.mkdir(exist_ok=True)
        import numpy as np

        with atomic_path(self.epoch_weights_path(epoch), suffix=".npz") as tmp:
            with open(tmp, "wb") as f:  # a file object: np.savez adds no second suffix
                np.savez(f, __paths__=np.array([w.path for w in model.weights]), *model.get_weights())

    def load_epoch_weights(self, model, epoch):
        import numpy as np

        path = self.epoch_weights_path(epoch)
        with np.load(path) as saved:
            if list(saved["__paths__"]) != [w.path for w in model.weights]:
                raise TrainingError(f"{path}: holds the weights of another model; start over with --force")
            return [saved[f"arr_{i}"] for i in range(len(model.weights))]

    def materialize(self, model, epoch):
        """model.keras from the committed epochs up to `epoch`, whose weights the model holds now."""
        rows = [row for row in self.rows if int(row["epoch"]) <= epoch]
        selected = selected_epochs(rows, self.settings)
        if not self.averaging:
            if selected == [epoch]:  # the latest epoch, or a new best one
                atomic_save_model(model, self.run.model_path)
            return
        import numpy as np

        if not self.epoch_weights_path(epoch).is_file():
            self.save_epoch_weights(model, epoch)
        current = model.get_weights()
        members = [self.load_epoch_weights(model, e) for e in selected]
        mean = [np.mean(arrays, axis=0).astype(now.dtype) if np.issubdtype(now.dtype, np.floating) else now
                for now, *arrays in zip(current, *members)]
        try:
            model.set_weights(mean)
            atomic_save_model(model, self.run.model_path)
        finally:
            model.set_weights(current)
        for path in self.run.epochs_path.glob("epoch-*.npz"):
            if path.name not in {self.epoch_weights_path(e).name for e in selected}:
                path.unlink(missing_ok=True)


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


def _with_new_defaults(config: dict) -> dict:
    """A run's config.json with the defaults of settings added since it was written (so an
    unfinished run of an earlier version resumes as long as it asks for none of them)."""
    defaults = {"training": dataclasses.asdict(TrainingSettings()),
                "model_options": {f.name: f.default for f in dataclasses.fields(ModelOptions)}}
    filled = {**config, **{key: {**values, **config[key]} for key, values in defaults.items()
                           if isinstance(config.get(key), dict)}}
    if isinstance(config.get("model_options"), dict):  # settings resolved from others (the depths from N)
        known = {f.name for f in dataclasses.fields(ModelOptions)}
        options = {k: v for k, v in filled["model_options"].items() if k in known}
        filled["model_options"] = {**filled["model_options"], **dataclasses.asdict(ModelOptions(**options))}
    return filled


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
    previous = _with_new_defaults(run.read_config())
    differences = sorted(k for k in request if previous.get(k) != request[k])
    if differences:
        raise RunDirError(f"{run.path}: holds a run trained with other settings (differences in {differences}); "
                          "pass --force to start over or choose another --out")
    log(f"Resuming {run.path} after epoch {len(run.read_history())}")
    return True


def training_lengths(config, settings: TrainingSettings) -> tuple[int, int]:
    """(source, target): the most subwords, EOS included, of a pair that training reads: the model's
    max lengths, lowered to `settings.max_train_length` when that is set."""
    limit = settings.max_train_length or max(config.max_source_length, config.max_target_length)
    return min(config.max_source_length, limit), min(config.max_target_length, limit)


def _tokenizers(run: RunDir, data, model_options: ModelOptions, settings: TrainingSettings, resuming: bool, log,
                given=None):
    """(the prepared data or None, (source, target) tokenizers), saved in the run: `given` ones (a distilled
    student's are its teacher's), a DATA_DIR's, those of the SPECs prepared into RUN/data, or learned from
    the pairs in memory; a resumed run keeps its own."""
    from keras_transformer.corpus import TrainingCorpora
    from keras_transformer.prepare import prepare
    from keras_transformer.prepared_data import PreparedData
    from keras_transformer.tokenizer_training import train_tokenizers

    prepared = None
    if isinstance(data, TrainingCorpora):
        prepared = prepare(data.specs, run.data_path, source_column=data.source_column,
                           target_column=data.target_column, max_pairs=data.max_pairs,
                           source_vocab_size=settings.source_vocab_size, target_vocab_size=settings.target_vocab_size,
                           shared_vocab=settings.shared_vocab, max_source_length=model_options.max_source_length,
                           max_target_length=model_options.max_target_length,
                           tokenizer_sample=settings.tokenizer_sample, seed=settings.seed, log=log, tokenizers=given)
    elif isinstance(data, PreparedData):
        prepared = data
        _check_prepared(prepared, model_options, settings, log)
    if resuming:
        return prepared, run.load_tokenizers()
    started = time.perf_counter()
    if prepared is not None:
        tokenizers = prepared.source_tokenizer, prepared.target_tokenizer
    elif given is not None:
        tokenizers = given
    else:
        tokenizers = train_tokenizers(data, settings.source_vocab_size, settings.target_vocab_size,
                                      settings.shared_vocab)
        sizes = (f"one shared vocabulary of {tokenizers[0].vocab_size}" if settings.shared_vocab
                 else f"source {tokenizers[0].vocab_size} and target {tokenizers[1].vocab_size}")
        log(f"Tokenizers: {sizes} subwords ({time.perf_counter() - started:.1f}s)")
    tokenizers[0].save(run.source_tokenizer_path)
    tokenizers[1].save(run.target_tokenizer_path)
    return prepared, tokenizers


def _check_prepared(prepared, model_options: ModelOptions, settings: TrainingSettings, log) -> None:
    """A DATA_DIR fits these settings: its vocabularies are the ones asked for (the CLI takes them from
    it), and pairs longer than its own limits were left out when it was prepared (said, not refused)."""
    data = prepared.settings
    wanted = {"source_vocab_size": settings.source_vocab_size, "target_vocab_size": settings.target_vocab_size,
              "shared_vocab": settings.shared_vocab}
    differences = sorted(name for name, value in wanted.items() if data[name] != value)
    if differences:
        raise OptionError(f"{prepared.path}: prepared with {', '.join(f'{n}={data[n]}' for n in differences)}, "
                          f"expected {', '.join(f'{n}={wanted[n]}' for n in differences)} (leave the vocabulary "
                          "options out to take the DATA_DIR's)")
    if (model_options.max_source_length > data["max_source_length"]
            or model_options.max_target_length > data["max_target_length"]):
        log(f"Note: {prepared.path} holds pairs of at most {data['max_source_length']}/{data['max_target_length']} "
            f"tokens; the model reads {model_options.max_source_length}/{model_options.max_target_length}")


def _committed_epochs(run: RunDir) -> int:
    """The epochs BackupAndRestore will restore (its training metadata, read as Keras 3 reads it), so
    the data pipeline of a resumed run starts at that epoch's batches."""
    import json

    weights, metadata = run.backup_path / "latest.weights.h5", run.backup_path / "training_metadata.json"
    if not weights.exists() and (run.backup_path / "latest.weights.h5.bkp").exists():
        metadata = run.backup_path / "training_metadata.json.bkp"  # what Keras restores from then
    try:
        return int(json.loads(metadata.read_text(encoding="utf-8"))["epoch"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def train(out, data, valid_pairs, model_options: ModelOptions, settings: TrainingSettings,
          data_description: dict, force: bool = False, log=print, verbose="auto", extra_callbacks=(),
          tokenizers=None):
    """Trains (or resumes) a run in directory `out`; returns the trained `keras.Model`.

    Args:
        data: the training pairs, one of
            - a list of (source, target) texts, tokenized in memory (small corpora, the Python API);
            - `corpus.TrainingCorpora` (SPECs): prepared into RUN/data first (`prepare.prepare`, streamed,
              reused when the run resumes), then read from its memory maps;
            - a `PreparedData` (a DATA_DIR from `keras-transformer prepare`), read from its memory maps.
        valid_pairs: validation (source, target) texts, or None (a DATA_DIR's valid split, when it
            has one, then gives the validation loss).
        extra_callbacks: run after the project's own (e.g. to inject faults in tests).
        tokenizers: (source, target) `SubwordTokenizer`s to use instead of learning them from `data`
            (a distilled student keeps its teacher's); `settings`' vocabulary sizes must be theirs.
    """
    import keras

    from keras_transformer import distribution, losses, pipeline
    from keras_transformer.config import TransformerConfig
    from keras_transformer.model import build_transformer
    from keras_transformer.schedule import transformer_optimizer
    from keras_transformer.tokenizer_training import with_bpe_dropout
    from keras_transformer.training_batches import TrainingBatches

    has_prepared_valid = getattr(data, "valid", None) is not None and not isinstance(data, list)
    if (settings.keep_best is not None or settings.scores_translations) and not (valid_pairs or has_prepared_valid):
        raise OptionError("keep_best and validation scores need validation data (--valid), got none")
    if model_options.share_embeddings and not settings.shared_vocab:
        raise OptionError("share_embeddings (tied source and target embeddings) needs one vocabulary for both sides: "
                         "expected shared_vocab=True (--shared-vocab sets both)")
    if settings.bpe_dropout and settings.strategy == "multi-worker":
        raise OptionError("bpe_dropout: expected --strategy default or mirrored (each worker would segment the data "
                         "differently), got multi-worker")
    if settings.bpe_dropout and not isinstance(data, list):
        raise OptionError("bpe_dropout re-segments the training text each epoch: expected the pairs in memory (train "
                          f"--data SPEC up to {BPE_DROPOUT_MAX_PAIRS:,} pairs), got a prepared DATA_DIR")
    run = RunDir(out)
    request = {"model_options": dataclasses.asdict(model_options), "training": dataclasses.asdict(settings),
               "data": data_description}
    resuming = _prepare_run_dir(run, request, force, log)
    if resuming and run.read_config().get("status") == "complete":
        log(f"{run.path}: training already complete ({settings.epochs} epochs); pass --force to start over")
        return run.load_model()

    prepared, (source_tokenizer, target_tokenizer) = _tokenizers(run, data, model_options, settings, resuming, log,
                                                                 tokenizers)
    config = TransformerConfig(source_vocab_size=source_tokenizer.vocab_size,
                               target_vocab_size=target_tokenizer.vocab_size,
                               **dataclasses.asdict(model_options))
    run.write_config({**request, "model": config.to_dict(), "status": "training"})

    source_limit, target_limit = training_lengths(config, settings)
    encode = lambda pairs: pipeline.encode_corpus(  # noqa: E731
        pairs, source_tokenizer, target_tokenizer, source_limit, target_limit)
    train_corpus = prepared.train if prepared is not None else encode(data)
    train_batches = TrainingBatches(train_corpus, settings.batch_tokens, settings.seed,
                                    fixed_shapes=settings.jit_compile, source_limit=source_limit,
                                    target_limit=target_limit)
    skipped = (sum(item.skipped_too_long * item.repeat for item in prepared.train.inputs)
               + len(prepared.train.indices()) - len(train_batches.indices)
               if prepared is not None else train_corpus.skipped_too_long)
    log(f"Training pairs: {len(train_batches.indices)} kept, {skipped} skipped as longer than "
        f"{source_limit}/{target_limit} tokens"
        + (f" (--max-train-length; the model reads {config.max_source_length}/{config.max_target_length})"
           if (source_limit, target_limit) != (config.max_source_length, config.max_target_length) else ""))
    strategy = distribution.make_strategy(settings.strategy)
    first_epoch = _committed_epochs(run) if resuming else 0  # epoch k's batches whether resumed or not
    make_train_data = lambda: pipeline.training_dataset(train_batches, first_epoch, repeat=True)  # noqa: E731
    steps_per_epoch = train_batches.num_batches
    if settings.bpe_dropout:  # a new segmentation of the training data each epoch; validation stays deterministic
        dropout_source = with_bpe_dropout(source_tokenizer, settings.bpe_dropout)
        dropout_target = (dropout_source if settings.shared_vocab
                          else with_bpe_dropout(target_tokenizer, settings.bpe_dropout))
        longest = max(source_limit, target_limit)
        resampled = lambda: pipeline.make_resampled_dataset(  # noqa: E731
            lambda: pipeline.encode_corpus(data, dropout_source, dropout_target, source_limit, target_limit),
            settings.batch_tokens, longest, seed=settings.seed, fixed_shapes=settings.jit_compile)
        steps_per_epoch = resampled()[1]
        make_train_data = lambda: resampled()[0]  # noqa: E731  (endless: steps_per_epoch batches an epoch)
        log(f"BPE dropout {settings.bpe_dropout:g}: training data re-segmented for each pass, "
            f"{steps_per_epoch} batches an epoch")
    train_data = distribution.distribute(settings.strategy, strategy, make_train_data)
    valid_data = None
    valid_corpus = encode(valid_pairs) if valid_pairs else prepared.valid if prepared is not None else None
    if valid_corpus is not None:
        valid_batches = TrainingBatches(valid_corpus, settings.batch_tokens, shuffle=False,
                                        fixed_shapes=settings.jit_compile, source_limit=source_limit,
                                        target_limit=target_limit)
        valid_data = distribution.distribute(settings.strategy, strategy,
                                             lambda: pipeline.training_dataset(valid_batches))
        if not valid_pairs and settings.scores_translations:  # texts back from the DATA_DIR's ids
            valid_pairs = [(source_tokenizer.decode(s), target_tokenizer.decode(t))
                           for s, t in (prepared.valid.pair(i) for i in range(len(prepared.valid)))]

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
    score = (_validation_scorer(model, source_tokenizer, target_tokenizer, valid_pairs, settings.score_max_pairs)
             if settings.scores_translations else None)
    keeper = _RunKeeper(run, settings, score, log)
    callbacks = [
        keeper.before_backup,  # history.csv (and scores, epoch weights) before the epoch's commit
        keras.callbacks.BackupAndRestore(str(run.backup_path), double_checkpoint=True),
        keeper.after_backup,  # model.keras from committed epochs only
        keras.callbacks.TerminateOnNaN(raise_error=True),
        *extra_callbacks,
    ]
    if settings.time_budget_minutes is not None:
        spent_before = sum(float(row["seconds"]) for row in run.read_history()) if resuming else 0.0
        callbacks.append(_time_budget_callback(settings.time_budget_minutes, spent_before, log))
    if verbose == "auto" and not sys.stdout.isatty():
        verbose = 2  # one line per epoch in logs, the progress bar on a terminal
    try:
        model.fit(train_data, validation_data=valid_data, epochs=settings.epochs, callbacks=callbacks,
                  verbose=verbose, shuffle=False, steps_per_epoch=steps_per_epoch)  # the dataset shuffles itself
    except RuntimeError as error:
        if "NaN or Inf loss" not in str(error):
            raise
        finished = len(run.read_history())
        raise TrainingError(f"training stopped: the loss became NaN/Inf ({error}); {run.model_path} keeps the last "
                            f"good epoch ({finished} finished); lower the learning rate or check the data") from None
    run.write_config({**request, "model": config.to_dict(), "status": "complete"})
    shutil.rmtree(run.epochs_path, ignore_errors=True)  # averaging's epoch weights: model.keras holds the result
    if settings.keep_best is not None or settings.average_checkpoints > 1:
        rows = run.read_history()
        chosen = selected_epochs(rows, settings)
        which = ("the mean of epochs " if len(chosen) > 1 else "epoch ") + ", ".join(map(str, sorted(chosen)))
        log(f"model.keras: {which}" + (f" (best validation {settings.keep_best})" if settings.keep_best else ""))
        return run.load_model()  # the kept (best or averaged) weights, not the last epoch's
    return model
