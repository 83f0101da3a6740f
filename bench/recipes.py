"""Real-data recipes: train, export and evaluate on ../shared/data, writing a Markdown table.

    python -m bench.recipes multi30k      # English→German, Multi30k (test2016)
    python -m bench.recipes en-hi         # English→Hindi, Tatoeba test and FLORES-200 devtest
    python -m bench.recipes en-hi --reuse # rewrite the table from what runs/recipes already holds
    python -m bench.recipes en-hi --from-trial NAME  # a tuning trial with the recipe's settings as its training

Each recipe runs the same `keras-transformer` commands a user would (printed as they run), then
writes bench/RESULTS-<recipe>.md. Settings were chosen on the valid split, never on a test split.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench.common import available_cores, cpu_model

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"

RUNS = ROOT / "runs"
# Decoding settings by name: "beam8, nr2, lp1.5" is `evaluate --beam-size 8 --no-repeat-ngram-size 2
# --length-penalty 1.5` (`decoding_options`). The score files are named after them ("beam4, nr3" ->
# beam4-nr3), so runs scored before the candidates existed (beam1, beam4) are still read by --reuse.
DECODING_PARTS = {"beam": "--beam-size", "lp": "--length-penalty", "nr": "--no-repeat-ngram-size",
                  "rp": "--repetition-penalty"}


def decoding_options(decoding: str) -> list[str]:
    """A decoding's name -> `evaluate` options: "beam4, nr3, lp1.5" -> [--beam-size 4, ...]."""
    options = []
    for part in decoding.split(", "):
        prefix = part.rstrip("0123456789.")
        if prefix not in DECODING_PARTS or prefix == part:
            raise ValueError(f"decoding {decoding!r}: unknown part {part!r} (expected beamN, lpX, nrN or rpX)")
        options += [DECODING_PARTS[prefix], part[len(prefix):]]
    return options


DEFAULT_DECODINGS = ["beam1", "beam4"]  # greedy and beam 4 with the defaults (length penalty 1.0)
# en-hi's outputs repeat words: the candidates that ban or penalize repeats, then (2026-12-03) wider
# beams, other n-gram sizes and penalties around the first choice among them (beam4, nr3, lp1.5)
EN_HI_DECODINGS = [
    "beam4, lp1.5", "beam4, nr3", "beam4, rp1.2", "beam4, nr3, lp1.5",
    "beam4, nr2, lp1.5", "beam4, nr4, lp1.5", "beam4, nr3, lp2.0", "beam4, lp2.0", "beam4, nr3, lp1.5, rp1.1",
    "beam6, nr3, lp1.5", "beam8, nr3, lp1.5", "beam8, nr3, lp2.0", "beam8, nr2", "beam8, nr2, lp1.5",
    "beam8, nr2, lp1.5, rp1.1", "beam12, nr2, lp1.5", "beam16, nr2, lp1.5"]
DECODINGS = {name: decoding_options(name) for name in (*DEFAULT_DECODINGS, *EN_HI_DECODINGS)}


def decoding_file_name(decoding: str) -> str:
    """The part of a score file's name that names a decoding: "beam4, nr3" -> "beam4-nr3"."""
    return decoding.replace(" ", "").replace(",", "-")


EN_HI_DOMAINS = RUNS / "data" / "en-hi-domains"


def _split_en_hi_train() -> None:
    from bench.en_hi_domains import split_by_domain  # imports this module: only when a recipe runs

    split_by_domain(DATA / "en-hi" / "train.tsv", EN_HI_DOMAINS)


RECIPES = {
    "multi30k": {
        "title": "English→German, Multi30k task 1",
        "train": DATA / "en-de-multi30k" / "train.tsv",
        "valid": DATA / "en-de-multi30k" / "valid.tsv",
        "tests": {"test2016": DATA / "en-de-multi30k" / "test2016.tsv"},
        # The issue's condition: at most 60 minutes of training on this machine; the budget decides the epochs.
        "options": ["--epochs", "40", "--time-budget-minutes", "60", "--batch-tokens", "3000", "--num-layers", "3",
                    "--hidden-dim", "256", "--num-heads", "4", "--intermediate-dim", "1024", "--dropout", "0.2",
                    "--label-smoothing", "0.1",
                    "--warmup-steps", "600", "--learning-rate-scale", "0.7", "--source-vocab-size", "8000",
                    "--target-vocab-size", "8000"],
    },
    "en-hi": {
        "title": "English→Hindi (Tatoeba + MTurk, 18k pairs)",
        # train.tsv split by source (bench/en_hi_domains.py) and its Tatoeba part, the domain of the
        # valid and test splits, repeated 6 times an epoch. Valid chrF++ (tuning table): 18.6 once, 22.2
        # 3 times, 24.0 6 times (23.8 after as many steps as 3 times had taken).
        "train": [f"{EN_HI_DOMAINS / 'tatoeba.tsv'}*6", EN_HI_DOMAINS / "mturk.tsv"],
        "tuning_train": DATA / "en-hi" / "train.tsv",  # the first settings' data, which trials change with --data
        "prepare": _split_en_hi_train,
        "valid": DATA / "en-hi" / "valid.tsv",
        "tests": {"test-tatoeba": DATA / "en-hi" / "test-tatoeba.tsv",
                  "flores200-devtest": DATA / "en-hi" / "flores200-devtest.tsv"},
        # Tuned on valid.tsv (python -m bench.tuning en-hi …; the table is in bench/RESULTS-en-hi.md): pairs
        # longer than 32 subwords left out (MTurk's long Wikipedia sentences were 44% of every epoch's
        # target tokens), a narrower feed-forward layer, less dropout and 1,000-token batches, which all
        # learn faster per minute; then the best 5 epochs by validation chrF++ averaged. `tuning_base`
        # holds the first settings (chrF++ 10.6 on valid after 45 minutes), from which the trials'
        # changes are counted.
        "tuning_base": ["--epochs", "100", "--time-budget-minutes", "45", "--batch-tokens", "2000", "--num-layers", "3",
                        "--hidden-dim", "256", "--num-heads", "4", "--intermediate-dim", "1024", "--dropout", "0.3",
                        "--label-smoothing", "0.1", "--warmup-steps", "800", "--learning-rate-scale", "0.7",
                        "--source-vocab-size", "4000", "--target-vocab-size", "4000"],
        "options": ["--epochs", "1000", "--time-budget-minutes", "60", "--batch-tokens", "1000", "--num-layers", "3",
                    "--hidden-dim", "256", "--num-heads", "4", "--intermediate-dim", "512", "--dropout", "0.2",
                    # pairs of more than 32 subwords left out of training, while the model reads 128
                    # (FLORES' long sources are not truncated; bench/longer_positions.py)
                    "--max-source-length", "128", "--max-target-length", "128", "--max-train-length", "32",
                    "--label-smoothing", "0.1", "--warmup-steps", "800", "--learning-rate-scale", "0.7",
                    "--source-vocab-size", "4000", "--target-vocab-size", "4000",
                    "--keep-best", "chrf", "--average-checkpoints", "5", "--score-validation"],
        "decodings": [*DEFAULT_DECODINGS, *EN_HI_DECODINGS],  # chosen on valid, as above
    },
}


def _run(command, log, skip=False):
    """Runs `command` (logged in `log`) and returns its wall-clock seconds; with `skip`, only logs it."""
    log.append(shlex.join(map(str, command)))  # as a shell reads it ('FILE*3' quoted)
    if skip:
        return None
    print("$ " + log[-1], flush=True)
    started = time.perf_counter()
    subprocess.run(list(map(str, command)), check=True, cwd=ROOT)
    return time.perf_counter() - started


def _option_pairs(options: list[str]) -> dict[str, str | None]:
    from bench.tuning import option_pairs

    return {pair[0]: pair[1] if len(pair) > 1 else None for pair in option_pairs([str(o) for o in options])}


def _train_specs(recipe: dict) -> list:
    """The recipe's `--data` SPECs (one path or a list of them)."""
    return recipe["train"] if isinstance(recipe["train"], list) else [recipe["train"]]


def _decodings(recipe: dict) -> list[str]:
    return recipe.get("decodings", DEFAULT_DECODINGS)


def _data_key(specs) -> list[tuple[Path, int]]:
    """Each SPEC as (its resolved path, its repeat count), so that relative and absolute paths compare equal."""
    from keras_transformer.corpus import split_repeat

    key = []
    for spec in specs:
        name, times = split_repeat(str(spec))
        key.append(((ROOT / name).resolve(), times))
    return key


def adopt_trial(name: str, trial: str, work: Path, tuning_work: Path) -> None:
    """Takes a finished tuning trial's run as the recipe's training (so an hour is not spent twice),
    after checking that it was trained with exactly the recipe's data and options."""
    from bench.tuning import read_trials, row_changes, trial_data, trial_options

    recipe = RECIPES[name]
    row = next((t for t in read_trials(name) if t["name"] == trial), None)
    if row is None:
        raise SystemExit(f"--from-trial: no trial named {trial!r} in bench/tuning-{name}.jsonl")
    set_flags, unset, data = row_changes(row)
    trained = _option_pairs(trial_options(recipe, set_flags, unset, row["minutes"]))
    wanted = _option_pairs(recipe["options"])
    differences = sorted(k for k in trained.keys() | wanted.keys() if trained.get(k, "-") != wanted.get(k, "-"))
    if differences or _data_key(trial_data(recipe, data)) != _data_key(_train_specs(recipe)):
        raise SystemExit(f"--from-trial {trial}: trained with other settings than the recipe's "
                         f"(options {differences}, data {data}); run the recipe in full instead")
    source, target = tuning_work / f"{name}-trial-{trial}", work / f"{name}-run"
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target)
    (work / f"{name}-train-seconds.json").write_text(json.dumps(row["wall_seconds"]))
    (work / f"{name}-trained-as.json").write_text(json.dumps(trial))
    kept = {f"{name}-train-seconds.json", f"{name}-trained-as.json"}
    if "machine" in row:  # trials logged since this field exists say where they trained
        (work / f"{name}-train-machine.json").write_text(json.dumps(row["machine"]))
        kept.add(f"{name}-train-machine.json")
    for stale in work.glob(f"{name}-*.json"):  # scores of an earlier bundle
        if stale.name not in kept:
            stale.unlink()
    shutil.rmtree(work / f"{name}-bundle", ignore_errors=True)


def score_splits(recipe: dict, evaluate) -> tuple[list, str]:
    """Scores the valid split with every candidate decoding, chooses the best there by chrF++, then
    translates each test split once with it (and with plain greedy and beam 4, for comparison).

    `evaluate(split, path, decoding)` returns a row `(split, decoding, scores)`; returns all rows, in
    order, and the chosen decoding's name. No test split is read before the choice is made.
    """
    rows = [evaluate("valid", recipe["valid"], decoding) for decoding in _decodings(recipe)]
    chosen = max(rows, key=lambda row: row[2]["chrf"])[1]
    for test_name, path in recipe["tests"].items():
        rows += [evaluate(test_name, path, decoding) for decoding in dict.fromkeys([*DEFAULT_DECODINGS, chosen])]
    return rows, chosen


def run_recipe(name: str, work: Path, reuse=False):
    """Trains, exports and evaluates; `reuse` keeps a finished training, an existing bundle and scores."""
    recipe = RECIPES[name]
    cli = [sys.executable, "-m", "keras_transformer.cli"]
    run_dir, bundle = work / f"{name}-run", work / f"{name}-bundle"
    commands = []
    if "prepare" in recipe:  # derived training files (under runs/), written before training
        recipe["prepare"]()
    train_command = [*cli, "train", *(item for spec in _train_specs(recipe) for item in ("--data", spec)),
                     "--valid", recipe["valid"], "--out", run_dir, *recipe["options"]]
    wall_clock = work / f"{name}-train-seconds.json"  # so that --reuse can still report it
    seconds = _run(train_command, commands, skip=reuse and wall_clock.is_file())
    trained_on, machine = work / f"{name}-train-machine.json", cpu_model()
    if seconds is not None:
        wall_clock.write_text(json.dumps(seconds))
        trained_on.write_text(json.dumps(machine))
    train_seconds = json.loads(wall_clock.read_text())
    _run([*cli, "export", run_dir, "--out", bundle, "--force"], commands, skip=reuse and bundle.is_dir())

    def evaluate(split, path, decoding):
        scores_path = work / f"{name}-{split}-{decoding_file_name(decoding)}.json"
        _run([*cli, "evaluate", bundle, "--data", path, *DECODINGS[decoding], "--json", scores_path], commands,
             skip=reuse and scores_path.is_file())
        return split, decoding, json.loads(scores_path.read_text())

    candidates = _decodings(recipe)
    rows, chosen = score_splits(recipe, evaluate)
    from keras_transformer.run_dir import RunDir  # imports Keras: only once the commands have run

    history = RunDir(run_dir).read_history()
    intra = os.environ.get("TF_NUM_INTRAOP_THREADS")
    threads_note = f" (TensorFlow limited to {intra} thread{'s' if intra != '1' else ''})" if intra else ""
    trained_as = work / f"{name}-trained-as.json"
    fit_minutes = sum(float(row["seconds"]) for row in history) / 60
    best = min(history, key=lambda row: float(row["val_loss"])) if "val_loss" in history[0] else None
    # the training's machine, where it is not this one (bench.common.cpu_model: same-named CPUs differ)
    training_machine = json.loads(trained_on.read_text()) if trained_on.is_file() else None
    machine_note = ("" if training_machine == machine else
                    f"; trained on {training_machine}" if training_machine else
                    "; the training's machine was not recorded and may differ")
    lines = [f"# {recipe['title']}", "", f"Produced by `python -m bench.recipes {name}` on {time.strftime('%Y-%m-%d')}; "
             f"machine: {machine}, {available_cores()} cores available to the run"
             f"{threads_note}, Python {platform.python_version()}{machine_note}.", "",
             f"Training: {len(history)} epochs, {fit_minutes:.1f} minutes in `model.fit` (the sum of history.csv's "
             f"`seconds`, validation included); the whole `train` command took {train_seconds / 60:.1f} minutes of "
             "wall clock (reading data and training the tokenizers included)."
             + (f" It was trained as the tuning trial `{json.loads(trained_as.read_text())}` (the same data and "
                f"options, checked by `--from-trial`) and taken over as it was." if trained_as.is_file() else "")
             + (f" Lowest validation loss {float(best['val_loss']):.3f} at epoch {best['epoch']}; validation token "
                f"accuracy {float(history[-1]['val_accuracy']):.1%} at the last epoch." if best else "")
             + _kept_weights_note(recipe["options"], history),
             "", f"Decoding: {chosen}, the best of {len(candidates)} candidates by chrF++ on the valid split "
                 "(all listed below).", "",
             "| split | decoding | sacreBLEU | chrF++ | exact match | sentences/s |", "|---|---|---|---|---|---|"]
    for test_name, decoding, s in rows:
        mark = " (chosen)" if decoding == chosen and len(candidates) > 1 else ""
        lines.append(f"| {test_name} | {decoding}{mark} | {s['bleu']:.1f} | {s['chrf']:.1f} | {s['exact_match']:.1%} | "
                     f"{s['sentences_per_second']:.1f} |")
    from bench.tuning import tuning_table
    from keras_transformer.learning_curves import plot_learning_curves

    curves = ROOT / "bench" / f"RESULTS-{name}-curves.png"  # beside the table
    plot_learning_curves(run_dir, curves, title=f"{recipe['title']}: learning curves")
    tuning = tuning_table(name)
    if tuning:
        lines += ["", "## Tuning on the valid split", "",
                  f"Every setting tried, each trained for a short budget with `python -m bench.tuning {name} …` "
                  "(bench/tuning.py; the raw rows are in "
                  f"bench/tuning-{name}.jsonl) and scored on the valid split only (greedy, the best epoch's chrF++). "
                  "The test splits above were translated once, with the final settings.", "", *tuning]
    notes = ROOT / "bench" / f"RESULTS-{name}-notes.md"  # hand-written findings, kept across reruns
    if notes.is_file():
        lines += ["", notes.read_text(encoding="utf-8").strip()]
    lines += ["", f"Signatures: BLEU `{rows[0][2]['bleu_signature']}`, chrF++ `{rows[0][2]['chrf_signature']}`.", "",
              f"Learning curves (loss, and the validation score per epoch, from the run's history.csv): "
              f"![learning curves]({curves.name})", "",
              "Commands:", "", "```", *commands, "```", ""]
    out = ROOT / "bench" / f"RESULTS-{name}.md"
    out.write_text("\n".join(lines), encoding="utf-8")
    print(f"Wrote {out}")


def _kept_weights_note(options: list[str], history: list[dict]) -> str:
    """Which epochs model.keras is made of, from the train options and history.csv (" ..." or "")."""
    from keras_transformer.training import TrainingSettings, selected_epochs

    value = lambda flag, default: options[options.index(flag) + 1] if flag in options else default  # noqa: E731
    settings = TrainingSettings(keep_best=value("--keep-best", None),
                                average_checkpoints=int(value("--average-checkpoints", 1)))
    keep_best, count = settings.keep_best, settings.average_checkpoints
    if keep_best is None and count == 1:
        return ""
    epochs = selected_epochs(history, settings)
    which = f"the best {count} by validation {keep_best}" if keep_best else f"the last {count}"
    note = (f" `model.keras` (so the bundle) is the mean of the weights of epochs {sorted(epochs)}, {which}."
            if count > 1 else f" `model.keras` is epoch {epochs[0]}, the best by validation {keep_best}.")
    if "val_chrf" in history[0]:
        best = max(history, key=lambda row: float(row["val_chrf"]))
        note += (f" The best single epoch, {best['epoch']}, scored validation chrF++ {float(best['val_chrf']):.1f} "
                 "(greedy, the Keras model during training).")
    return note


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipe", choices=sorted(RECIPES))
    parser.add_argument("--work", default="runs/recipes", help="where runs and bundles go")
    parser.add_argument("--reuse", action="store_true",
                        help="keep the trained run, the bundle and the scores already in --work; only rewrite the table")
    parser.add_argument("--from-trial", metavar="NAME",
                        help="take this finished tuning trial's run (trained with exactly the recipe's settings) "
                             "as the training, then export and evaluate")
    parser.add_argument("--tuning-work", default="runs/tuning", help="where bench.tuning left its trials")
    args = parser.parse_args(argv)
    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    if args.from_trial:
        adopt_trial(args.recipe, args.from_trial, work, (ROOT / args.tuning_work).resolve())
    elif not args.reuse:
        (work / f"{args.recipe}-trained-as.json").unlink(missing_ok=True)
    run_recipe(args.recipe, work, reuse=args.reuse or bool(args.from_trial))


if __name__ == "__main__":
    main()
