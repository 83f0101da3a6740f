"""bench/recipes.py: the decoding is chosen on the valid split only, and each test split is then
translated with the defaults and the chosen one, once each."""

from bench import recipes


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
    for recipe in recipes.RECIPES.values():
        assert set(recipe.get("decodings", recipes.DEFAULT_DECODINGS)) <= set(recipes.DECODINGS)
