"""A run's weights with longer max lengths: what `train --max-train-length` buys at translation time.

    python -m bench.longer_positions --run runs/recipes/en-hi-run --length 128 \\
        --data ../shared/data/en-hi/valid.tsv --data ../shared/data/en-hi/flores200-devtest.tsv

A run trained with `--max-source-length 32 --max-target-length 32` was trained on the pairs of at
most 32 subwords, exactly as `--max-source-length 128 --max-target-length 128 --max-train-length 32`
would train it (tests/test_training_features.py: the same pairs and losses; sinusoidal positions are
no weights). So the same weights under the longer lengths show, without training again, what the
longer limit changes: inputs of more than 32 subwords read whole instead of truncated, outputs up to
128. This writes that copy of the run (config and model.keras with the new lengths, same weights),
exports both runs, and scores both bundles on each --data file with each decoding, one `evaluate`
per cell (printed as it runs). The table goes to stdout.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
from pathlib import Path

from bench.recipe_data import DECODINGS, decoding_file_name
from bench.recipes import _run

DEFAULT_DECODINGS = ["beam1", "beam4, nr3, lp1.5"]  # greedy and the en-hi recipe's choice on valid


def write_longer_run(run_dir: Path, out: Path, length: int):
    """`run_dir` copied to `out` with max_source_length = max_target_length = `length` (same weights)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from keras_transformer.atomic_files import atomic_save_model
    from keras_transformer.model import build_transformer, config_of
    from keras_transformer.run_dir import RunDir

    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(run_dir, out, ignore=shutil.ignore_patterns("backup", "epochs"))
    run = RunDir(out)
    model = run.load_model()
    longer = build_transformer(dataclasses.replace(config_of(model), max_source_length=length,
                                                   max_target_length=length))
    longer.set_weights(model.get_weights())  # same shapes: the positional encodings are no weights
    config = {k: v for k, v in run.read_config().items() if k != "run_format_version"}
    for key in ("model", "model_options"):
        config[key].update(max_source_length=length, max_target_length=length)
    run.write_config(config)
    atomic_save_model(longer, run.model_path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, required=True, help="a finished run")
    parser.add_argument("--length", type=int, default=128, help="the copy's max source and target length")
    parser.add_argument("--data", type=Path, action="append", required=True, help="a TSV to score (repeatable)")
    parser.add_argument("--decoding", action="append", choices=sorted(DECODINGS),
                        help=f"repeatable; default: {', '.join(DEFAULT_DECODINGS)}")
    parser.add_argument("--work", type=Path, default=Path("runs/longer-positions"))
    args = parser.parse_args(argv)
    exe = [sys.executable, "-m", "keras_transformer.cli"]
    decodings = args.decoding or DEFAULT_DECODINGS
    log, runs = [], {"as trained": args.run, f"lengths {args.length}": args.work / "run"}
    write_longer_run(args.run, runs[f"lengths {args.length}"], args.length)
    scores = {}
    for name, run in runs.items():
        bundle = args.work / f"bundle-{name.replace(' ', '-')}"
        _run([*exe, "export", run, "--out", bundle, "--force"], log)
        for data in args.data:
            for decoding in decodings:
                out = args.work / f"{bundle.name}-{data.stem}-{decoding_file_name(decoding)}.json"
                _run([*exe, "evaluate", bundle, "--data", data, *DECODINGS[decoding], "--json", out], log)
                scores[name, data.stem, decoding] = json.loads(out.read_text())
    print(f"\n| data | decoding | {' | '.join(f'{n} chrF++ / BLEU' for n in runs)} |")
    print("|---|---|" + "---:|" * len(runs))
    for data in args.data:
        for decoding in decodings:
            cells = [f"{scores[n, data.stem, decoding]['chrf']:.2f} / {scores[n, data.stem, decoding]['bleu']:.2f}"
                     for n in runs]
            print(f"| {data.stem} | {decoding} | {' | '.join(cells)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
