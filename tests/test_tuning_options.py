"""bench/tuning.py: a trial's train options are the recipe's with exactly the asked changes, a trial
built on another inherits its changes, and the table shows every logged trial."""

import json

import pytest

from bench import tuning


def test_changed_options_replaces_adds_and_removes_flags():
    base = ["--epochs", "3", "--dropout", "0.3", "--norm-first", "--keep-best", "chrf", "--x", "1"]
    changed = tuning.changed_options(base, [["--dropout", "0.1"], ["--shared-vocab"], ["--epochs", "9"]], ["--x"])
    assert changed == ["--norm-first", "--keep-best", "chrf", "--dropout", "0.1", "--shared-vocab", "--epochs", "9"]
    assert tuning.changed_options(base, [], []) == base


def _trial_row(name, changes, chrf):
    return {"name": name, "changes": changes, "minutes": 8.0, "threads": "all", "epochs": 5, "best_epoch": 5,
            "valid_chrf": chrf, "valid_bleu": 0.5, "lowest_valid_loss": 4.8, "wall_seconds": 440.0}


@pytest.fixture
def log(tmp_path, monkeypatch):
    path = tmp_path / "tuning-en-hi.jsonl"
    monkeypatch.setattr(tuning, "tuning_log", lambda recipe: path)
    return path


def test_a_trial_on_a_base_inherits_its_changes_and_overrides_them(log, monkeypatch, tmp_path):
    log.write_text(json.dumps(_trial_row("short", ["--max-target-length 32", "--dropout 0.2", "no --x"], 5.0)) + "\n")
    calls = []
    monkeypatch.setattr(tuning, "run_trial", lambda *args: calls.append(args) or {})
    tuning.main(["en-hi", "next", "--base", "short", "dropout=0.1", "norm-first", "--minutes", "3",
                 "--work", str(tmp_path)])
    (recipe, name, minutes, set_flags, unset, work, data), = calls
    assert (recipe, name, minutes) == ("en-hi", "next", 3.0)
    assert set_flags == [["--max-target-length", "32"], ["--dropout", "0.1"], ["--norm-first"]]
    assert unset == ["--x"]
    assert data is None  # the recipe's own training data


def test_a_trial_inherits_its_bases_training_data_unless_it_names_its_own(log, monkeypatch, tmp_path):
    log.write_text(json.dumps(_trial_row("weighted", ["--data in.tsv*3", "--data out.tsv", "--dropout 0.2"], 5.0))
                   + "\n")
    calls = []
    monkeypatch.setattr(tuning, "run_trial", lambda *args: calls.append(args) or {})
    tuning.main(["en-hi", "a", "--base", "weighted", "--work", str(tmp_path)])
    tuning.main(["en-hi", "b", "--base", "weighted", "--data", "other.tsv", "--work", str(tmp_path)])
    assert [c[3] for c in calls] == [[["--dropout", "0.2"]]] * 2  # "--data" is not a train flag to replace
    assert [c[6] for c in calls] == [["in.tsv*3", "out.tsv"], ["other.tsv"]]


def test_the_table_lists_every_trial_in_order(log):
    assert tuning.tuning_table("en-hi") == []
    rows = [_trial_row("base", [], 1.0), _trial_row("short", ["--max-target-length 32"], 5.16)]
    log.write_text("".join(json.dumps(r) + "\n" for r in rows))
    table = tuning.tuning_table("en-hi")
    assert len(table) == 4
    assert table[2].startswith("| base | — | 8 min |") and "| 1.0 |" in table[2]
    assert table[3].startswith("| short | --max-target-length 32 |") and "| 5.2 |" in table[3]
