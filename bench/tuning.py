"""Tuning trials for a recipe, scored on its valid split only.

    python -m bench.tuning en-hi base --minutes 12
    python -m bench.tuning en-hi lr1.5 --minutes 12 learning-rate-scale=1.5 warmup-steps=400
    python -m bench.tuning en-hi short --base lr1.5 max-target-length=48 norm-first no:bpe-dropout
    python -m bench.tuning en-hi tatoeba3 --data 'runs/data/en-hi-domains/tatoeba.tsv*3' \
        --data runs/data/en-hi-domains/mturk.tsv

A trial is the recipe's `train` options with some of them changed (`flag=value`, `flag` for a
switch, `no:flag` to remove one; `--base TRIAL` starts from another trial's changes), trained for a
fixed time budget with the validation split translated (greedy) after every epoch. Its result is
the best epoch's validation chrF++ and BLEU (greedy) and the lowest validation loss; it is appended
to bench/tuning-<recipe>.jsonl, which `python -m bench.recipes` prints as the tuning table. Test
splits are never read here.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from bench.common import cpu_model
from bench.recipe_data import RECIPES, ROOT


def option_pairs(options: list[str]) -> list[list[str]]:
    """`options` (flags, each followed by its value unless the next item is a flag) as [FLAG] or [FLAG, VALUE]."""
    pairs, i = [], 0
    while i < len(options):
        has_value = i + 1 < len(options) and not str(options[i + 1]).startswith("--")
        pairs.append([options[i], *([options[i + 1]] if has_value else [])])
        i += 2 if has_value else 1
    return pairs


def changed_options(options: list[str], set_flags: list[list[str]], unset: list[str]) -> list[str]:
    """`options` with the flags in `set_flags` ([FLAG] or [FLAG, VALUE]) replaced or added and those
    in `unset` removed."""
    pairs = option_pairs(options)
    for flag_and_value in set_flags:
        pairs = [p for p in pairs if p[0] != flag_and_value[0]] + [flag_and_value]
    pairs = [p for p in pairs if p[0] not in unset]
    return [str(item) for pair in pairs for item in pair]


def trial_options(spec: dict, set_flags, unset, minutes: float) -> list[str]:
    """A trial's `train` options: the recipe's first settings with the trial's changes, its budget,
    and validation chrF++ after every epoch (kept best)."""
    options = changed_options(spec.get("tuning_base", spec["options"]), set_flags, unset)
    return changed_options(options, [["--time-budget-minutes", f"{minutes:g}"], ["--epochs", "1000"],
                                     ["--keep-best", "chrf"], ["--score-validation"]], ["--score-max-pairs"])


def trial_data(spec: dict, data: list[str] | None) -> list:
    """A trial's `--data` SPECs: its own, else the recipe's first settings' data."""
    return data or [spec.get("tuning_train", spec["train"])]


def row_changes(row: dict) -> tuple[list[list[str]], list[str], list[str] | None]:
    """A logged trial's (set_flags, unset, data) as `run_trial` took them."""
    set_flags = [c.split(" ") for c in row["changes"] if not c.startswith(("no ", "--data "))]
    unset = [c[3:] for c in row["changes"] if c.startswith("no ")]
    data = [c[len("--data "):] for c in row["changes"] if c.startswith("--data ")]
    return set_flags, unset, data or None


def tuning_log(recipe: str) -> Path:
    return ROOT / "bench" / f"tuning-{recipe}.jsonl"


def read_trials(recipe: str) -> list[dict]:
    path = tuning_log(recipe)
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


def run_trial(recipe: str, name: str, minutes: float, set_flags, unset, work: Path, data=None) -> dict:
    """Trains one trial and returns its row (also appended to the tuning log); `data`, a list of
    `--data` SPECs, replaces the recipe's training data."""
    spec = RECIPES[recipe]
    options = trial_options(spec, set_flags, unset, minutes)
    run_dir = work / f"{recipe}-trial-{name}"
    data_options = [item for one in trial_data(spec, data) for item in ("--data", str(one))]
    command = [sys.executable, "-m", "keras_transformer.cli", "train", *data_options,
               "--valid", str(spec["valid"]), "--out", str(run_dir), "--force", *options]
    print("$ " + " ".join(command), flush=True)
    started = time.perf_counter()
    subprocess.run(command, check=True, cwd=ROOT)
    wall = time.perf_counter() - started
    from keras_transformer.run_dir import RunDir

    history = RunDir(run_dir).read_history()
    best = max(history, key=lambda row: float(row["val_chrf"]))
    row = {"name": name, "changes": [f"--data {one}" for one in data or []] + [" ".join(f) for f in set_flags]
           + [f"no {f}" for f in unset],
           "minutes": minutes, "threads": os.environ.get("TF_NUM_INTRAOP_THREADS", "all"),
           "epochs": len(history), "best_epoch": int(best["epoch"]),
           "valid_chrf": round(float(best["val_chrf"]), 2), "valid_bleu": round(float(best["val_bleu"]), 2),
           "lowest_valid_loss": round(min(float(row["val_loss"]) for row in history), 3),
           "wall_seconds": round(wall, 1), "machine": cpu_model()}
    with tuning_log(recipe).open("a", encoding="utf-8") as log:
        log.write(json.dumps(row, ensure_ascii=False) + "\n")
    return row


def tuning_table(recipe: str) -> list[str]:
    """The tuning log as Markdown lines (empty without trials)."""
    trials = read_trials(recipe)
    if not trials:
        return []
    lines = ["| trial | changes against the recipe's first settings | budget | epochs | best epoch | valid chrF++ | "
             "valid BLEU | lowest valid loss |", "|---|---|---|---|---|---|---|---|"]
    for t in trials:
        threads = "" if t["threads"] == "all" else f", {t['threads']} thread"
        lines.append(f"| {t['name']} | {'; '.join(t['changes']) or '—'} | {t['minutes']:g} min{threads} | "
                     f"{t['epochs']} | {t['best_epoch']} | {t['valid_chrf']:.1f} | {t['valid_bleu']:.1f} | "
                     f"{t['lowest_valid_loss']:.3f} |")
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipe", choices=sorted(RECIPES))
    parser.add_argument("name", help="the trial's name in the table")
    parser.add_argument("--minutes", type=float, default=12.0, help="training budget of the trial")
    parser.add_argument("changes", nargs="*", help="flag=value, flag (a switch) or no:flag (removed)")
    parser.add_argument("--base", default=None, help="start from a previous trial's changes (its name)")
    parser.add_argument("--work", default="runs/tuning")
    parser.add_argument("--data", action="append", help="training SPEC(s) instead of the recipe's (repeatable)")
    args = parser.parse_intermixed_args(argv)
    set_flags = [["--" + c.split("=", 1)[0], *c.split("=", 1)[1:]] for c in args.changes
                 if not c.startswith("no:")]
    unset = ["--" + c[3:] for c in args.changes if c.startswith("no:")]
    if args.base:  # the base trial's changes first, then this trial's
        base_flags, base_unset, base_data = row_changes(next(t for t in read_trials(args.recipe)
                                                             if t["name"] == args.base))
        mine = {f[0] for f in set_flags} | set(unset)
        set_flags = [f for f in base_flags if f[0] not in mine] + set_flags
        unset += [f for f in base_unset if f not in mine]
        args.data = args.data or base_data
    work = (ROOT / args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    print(json.dumps(run_trial(args.recipe, args.name, args.minutes, set_flags, unset, work, args.data),
                     ensure_ascii=False))


if __name__ == "__main__":
    main()
