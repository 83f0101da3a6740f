"""bench/mbr_decoding.py: the MBR rule picks the candidate closest on average to the evidence."""

from bench.mbr_decoding import mbr_choice


def test_mbr_picks_the_candidate_with_the_highest_mean_utility():
    overlap = lambda a, b: len(set(a.split()) & set(b.split()))  # noqa: E731
    evidence = ["a b c", "a b d", "a x y"]
    # "a b" shares 2, 2, 1 words with the evidence (mean 5/3); "x y z" 0, 0, 2 (2/3); "a" 1, 1, 1 (1)
    assert mbr_choice(["x y z", "a b", "a"], evidence, overlap) == "a b"
    assert mbr_choice(["q", "r"], evidence, overlap) == "q"  # ties: the first (beam order)
