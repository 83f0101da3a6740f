"""bench/recipes.py: the decoding is chosen on the valid split only, and each test split is then
translated with the defaults and the chosen one, once each (the recipes themselves: bench/recipe_data.py)."""

from bench import recipe_data, recipes


def test_the_decoding_is_chosen_on_valid_before_any_test_split_is_read():
    recipe = {"valid": "v.tsv", "tests": {"t1": "t1.tsv", "t2": "t2.tsv"},
              "decodings": ["beam1", "beam4", "beam4, nr3", "beam4, rp1.2"]}
    valid_chrf = {"beam1": 10.0, "beam4": 11.0, "beam4, nr3": 12.5, "beam4, rp1.2": 12.0}
    calls = []

    def evaluate(split, path, decoding):
        calls.append((split, path, decoding))
        # a test split that would favour another decoding must not change the choice
        return split, decoding, {"chrf": valid_chrf[decoding] if split == "valid" else -valid_chrf[decoding]}

    rows, chosen = recipes.score_splits(recipe, evaluate)
    assert chosen == "beam4, nr3"
    assert calls == [("valid", "v.tsv", d) for d in recipe["decodings"]] + [
        (test, f"{test}.tsv", d) for test in ("t1", "t2") for d in ("beam1", "beam4", "beam4, nr3")]
    assert [(r[0], r[1]) for r in rows] == [(c[0], c[2]) for c in calls]


def test_without_candidates_a_recipe_scores_greedy_and_beam_4():
    rows, chosen = recipes.score_splits({"valid": "v", "tests": {"t": "t"}},
                                        lambda split, path, d: (split, d, {"chrf": {"beam1": 2, "beam4": 3}[d]}))
    assert chosen == "beam4" and [(r[0], r[1]) for r in rows] == [("valid", "beam1"), ("valid", "beam4"),
                                                                   ("t", "beam1"), ("t", "beam4")]


def test_every_decoding_a_recipe_names_is_defined():
    for recipe in recipe_data.RECIPES.values():
        assert set(recipe.get("decodings", recipe_data.DEFAULT_DECODINGS)) <= set(recipe_data.DECODINGS)


def test_a_decodings_name_gives_its_evaluate_options():
    import pytest

    assert recipe_data.decoding_options("beam8, nr2, lp1.5, rp1.1") == [
        "--beam-size", "8", "--no-repeat-ngram-size", "2", "--length-penalty", "1.5", "--repetition-penalty", "1.1"]
    assert recipe_data.decoding_options("beam1") == ["--beam-size", "1"]
    for bad in ("beam", "beam4,nr3", "top5", "beam4, temp0.7"):
        with pytest.raises(ValueError, match="unknown part"):
            recipe_data.decoding_options(bad)


def _log_trials(tmp_path, monkeypatch, rows):
    import json

    from bench import tuning

    log = tmp_path / "tuning.jsonl"
    log.write_text("".join(json.dumps(r) + "\n" for r in rows))
    monkeypatch.setattr(tuning, "tuning_log", lambda recipe: log)


def _row(name, changes):
    return {"name": name, "changes": changes, "minutes": 60.0, "wall_seconds": 3500.0}


def test_a_trial_is_taken_as_the_recipes_training_only_with_the_recipes_settings(tmp_path, monkeypatch):
    import pytest

    recipe = {"train": ["in.tsv*3", "out.tsv"], "tuning_train": "all.tsv", "valid": "v",
              "tuning_base": ["--epochs", "100", "--dropout", "0.3", "--batch-tokens", "2000"],
              "options": ["--epochs", "1000", "--dropout", "0.2", "--batch-tokens", "2000", "--time-budget-minutes",
                          "60", "--keep-best", "chrf", "--score-validation"]}
    monkeypatch.setitem(recipe_data.RECIPES, "toy", recipe)
    monkeypatch.setattr(recipes, "ROOT", tmp_path)
    _log_trials(tmp_path, monkeypatch, [
        _row("same", ["--data in.tsv*3", "--data out.tsv", "--dropout 0.2"]),
        _row("other-options", ["--data in.tsv*3", "--data out.tsv", "--dropout 0.2", "--norm-first"]),
        _row("other-data", ["--data in.tsv*2", "--data out.tsv", "--dropout 0.2"]),
        _row("recipe-data-unset", ["--dropout 0.2"])])
    tuning_work, work = tmp_path / "tuning", tmp_path / "recipes"
    for trial in ("same", "other-options", "other-data", "recipe-data-unset"):
        (tuning_work / f"toy-trial-{trial}").mkdir(parents=True)
        (tuning_work / f"toy-trial-{trial}" / "history.csv").write_text(trial)
    work.mkdir()
    (work / "toy-valid-beam4.json").write_text("{}")  # a score of an earlier bundle: removed
    for trial, differing in [("other-options", "--norm-first"), ("other-data", "in.tsv\\*2"),
                             ("recipe-data-unset", "data None")]:
        with pytest.raises(SystemExit, match=differing):
            recipes.adopt_trial("toy", trial, work, tuning_work)
    with pytest.raises(SystemExit, match="no trial named 'nope'"):
        recipes.adopt_trial("toy", "nope", work, tuning_work)
    recipes.adopt_trial("toy", "same", work, tuning_work)
    assert (work / "toy-run" / "history.csv").read_text() == "same"
    assert (work / "toy-train-seconds.json").read_text() == "3500.0"
    assert not (work / "toy-valid-beam4.json").exists()
