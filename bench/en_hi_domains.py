"""Splits the en-hi training pairs by where they come from: Tatoeba (short everyday sentences, the
domain of the valid and test-tatoeba splits) and MTurk (Wikipedia sentences, 4 English references
per Hindi sentence), so that a recipe can give the in-domain part more weight (`--data 'FILE*N'`).

    python -m bench.en_hi_domains runs/data/en-hi-domains

A pair is MTurk's when its Hindi side is one of the MTurk corpus's Hindi sentences (its raw files in
../shared/data/en-hi/raw); every other pair is Tatoeba's (the data README lists no third source).
The files are written under runs/ (ignored by git): nothing of ../shared/data is copied into the project.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.recipe_data import DATA
from keras_transformer.corpus import normalize_text, read_parallel_corpus, write_tsv

EN_HI = DATA / "en-hi"
MTURK_RAW = EN_HI / "raw" / "mturk_indian_parallel_hi_en"


def mturk_hindi_sentences(raw: Path = MTURK_RAW) -> set[str]:
    """Every Hindi sentence of the MTurk corpus's raw `*.hi` files, normalized as corpus.py reads them."""
    files = sorted(raw.glob("*.hi"))
    if not files:
        raise FileNotFoundError(f"{raw}: expected the MTurk corpus's *.hi files, found none")
    return {normalize_text(line) for path in files for line in path.read_text(encoding="utf-8").splitlines()}


def split_by_domain(train: Path, out_dir: Path, raw: Path = MTURK_RAW) -> dict[str, Path]:
    """Writes OUT_DIR/tatoeba.tsv and OUT_DIR/mturk.tsv (the pairs of `train`, in order) and returns their paths."""
    mturk = mturk_hindi_sentences(raw)
    pairs, _ = read_parallel_corpus(str(train))
    paths = {"tatoeba": out_dir / "tatoeba.tsv", "mturk": out_dir / "mturk.tsv"}
    out_dir.mkdir(parents=True, exist_ok=True)
    write_tsv([p for p in pairs if p[1] not in mturk], paths["tatoeba"])
    write_tsv([p for p in pairs if p[1] in mturk], paths["mturk"])
    return paths


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--train", type=Path, default=EN_HI / "train.tsv")
    args = parser.parse_args(argv)
    for name, path in split_by_domain(args.train, args.out_dir).items():
        print(f"{name}: {sum(1 for _ in path.open(encoding='utf-8'))} pairs in {path}")


if __name__ == "__main__":
    main()
