"""The real-data recipes and their decodings, as data: what `bench.recipes` runs and `bench.tuning`
varies. Its own module so that both (and `bench.en_hi_domains`) read it without importing each other.
"""

from __future__ import annotations

from pathlib import Path

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

RECIPES = {
    "multi30k": {
        "title": "English→German, Multi30k task 1",
        "train": DATA / "en-de-multi30k" / "train.tsv",
        "valid": DATA / "en-de-multi30k" / "valid.tsv",
        "tests": {"test2016": DATA / "en-de-multi30k" / "test2016.tsv"},
        # The condition: at most 60 minutes of training on this machine; the budget decides the epochs.
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
        "split_by_domain": (DATA / "en-hi" / "train.tsv", EN_HI_DOMAINS),  # written before training
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
