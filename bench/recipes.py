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
from bench.en_hi_domains import split_by_domain
from bench.recipe_data import DECODINGS, DEFAULT_DECODINGS, RECIPES, ROOT, decoding_file_name
from bench.tuning import option_pairs, read_trials, row_changes, trial_data, trial_options, tuning_table


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
    if "split_by_domain" in recipe:  # derived training files (under runs/), written before training
        split_by_domain(*recipe["split_by_domain"])
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
    lines = [f"# {recipe['title']}", "",
             f"Produced by `python -m bench.recipes {name}` on {time.strftime('%Y-%m-%d')}; "
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
                        help="keep the trained run, the bundle and the scores already in --work; "
                             "only rewrite the table")
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
