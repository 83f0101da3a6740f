"""Corpus scale: `prepare` and training from a DATA_DIR at 10k to 5M pairs, against the in-memory path.

    python -m bench.corpus_scale [--sizes 10000 100000 1000000 5000000] [--old-rev REV] [--work DIR]
                                 [--out bench/RESULTS-corpus-scale.md] [--smoke]

Synthetic corpora from ../shared/data/en-de-multi30k/train.tsv: line i is Multi30k's line i mod 29,000,
with " k" appended to both sides from the second pass on (k = i // 29,000), so every size has distinct
pairs of Multi30k's lengths. For each size, each step in its own process (peak RSS from `wait4`):

- `keras-transformer prepare` into a DATA_DIR: wall time, pairs/s, its encoding pass's pairs/s, peak RSS;
- the bound for encoding: the tokenizers library's `Tokenizer.encode_batch` on the same lines, already in
  memory, with the same tokenizers and cores (up to 1M lines: the rate does not depend on the size);
- `train` from the DATA_DIR until its 200th step: seconds from the process's start to the end of its
  first step, peak RSS, steps/s and target tokens/s over steps 50-200;
- today's in-memory path, where it fits in memory (read every pair, learn the tokenizers on all of them,
  encode in memory, then `model.fit`), from the code of `--old-rev` (default: the commit before the
  corpora were prepared), with the same model and data: the same four figures.
At the smallest size above 10k, the two training paths are run again, interleaved, for the tokens/s ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import available_cores, machine_description, markdown_table
from bench.recipe_data import DATA, ROOT

MULTI30K = DATA / "en-de-multi30k" / "train.tsv"
OLD_REV = "24abc27"  # the last commit whose `train` held the corpus in memory
MODEL = ["--num-layers", "2", "--hidden-dim", "128", "--num-heads", "4", "--intermediate-dim", "512",
         "--max-source-length", "64", "--max-target-length", "64", "--batch-tokens", "2048", "--warmup-steps", "400",
         "--source-vocab-size", "8000", "--target-vocab-size", "8000"]
STEPS = 200
TIMED_FROM = 50  # steady-state throughput from this step on (the first steps build and trace the graphs)
OLD_PATH_MAX_PAIRS = 1_000_000  # 4.9 GB at 1M pairs (issue #30): 5M would not fit this 24 GB machine


def write_corpus(path: Path, pairs: int) -> Path:
    """Multi30k's lines with numbered variants, `pairs` lines, streamed to `path` (kept between runs)."""
    if path.is_file():
        return path
    lines = MULTI30K.read_text(encoding="utf-8").splitlines()
    tmp = path.with_suffix(".partial")
    with open(tmp, "w", encoding="utf-8") as out:
        for i in range(pairs):
            source, target = lines[i % len(lines)].split("\t")[:2]
            k = i // len(lines)
            out.write(f"{source}\t{target}\n" if k == 0 else f"{source} {k}\t{target} {k}\n")
    os.replace(tmp, path)
    return path


def measured(command: list[str], env=None, log=print, cwd=None) -> dict:
    """Runs `command` in `cwd` (not the checkout: its keras_transformer/ folder would shadow PYTHONPATH);
    returns its wall seconds, peak RSS (MiB, from wait4), start time and stdout."""
    log("$ " + " ".join(shlex.quote(part) for part in command))
    started = time.time()
    with tempfile.TemporaryFile() as stdout:
        process = subprocess.Popen(command, stdout=stdout, stderr=subprocess.PIPE, env=env, text=True,
                                   cwd=cwd or tempfile.gettempdir())
        stderr = process.stderr.read()
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        stdout.seek(0)
        output = stdout.read().decode("utf-8", "replace")
    if process.returncode != 0:
        raise RuntimeError(f"{command[:4]} failed ({process.returncode}): {stderr[-2000:]}")
    return {"seconds": time.time() - started, "peak_rss_mib": usage.ru_maxrss / 1024, "started": started,
            "stdout": output, "stderr": stderr}


def old_code(work: Path, rev: str, repo: Path = ROOT) -> Path:
    """The package of `rev` laid out as installed (keras_transformer/{serve,export,cli}), for PYTHONPATH."""
    target = work / f"code-{rev}"
    if not (target / "keras_transformer").is_dir():
        subprocess.run(f"mkdir -p {target}/src && git -C {repo} archive {rev} keras_transformer serve export cli | "
                       f"tar -x -C {target}/src", shell=True, check=True)
        (target / "src" / "keras_transformer").rename(target / "keras_transformer")
        for folder in ("serve", "export", "cli"):
            (target / "src" / folder).rename(target / "keras_transformer" / folder)
    return target


DRIVER = r'''
import json, sys, time
started = time.time()
mode, data, out, options = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[6:]
steps, timed_from = int(sys.argv[4]), int(sys.argv[5])
import keras
from keras_transformer import training
from keras_transformer.config import ModelOptions
given = dict(zip([o[2:].replace("-", "_") for o in options[::2]], options[1::2]))
ints = lambda names: {n: int(given[n]) for n in names if n in given}
model = ModelOptions(**ints(["num_layers", "hidden_dim", "num_heads", "intermediate_dim", "max_source_length",
                             "max_target_length"]))
settings = training.TrainingSettings(epochs=1000, **ints(["batch_tokens", "warmup_steps", "source_vocab_size",
                                                           "target_vocab_size"]))
if mode == "prepared":
    from keras_transformer.prepared_data import PreparedData
    corpus = PreparedData.open(data)
else:
    from keras_transformer.corpus import read_corpora
    corpus = read_corpora([data])[0]
times = []
class Stop(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        times.append(time.time())
        if len(times) >= steps:
            self.model.stop_training = True
            raise KeyboardInterrupt
try:
    training.train(out, corpus, None, model, settings, {"train": data}, force=True, log=lambda *a: None,
                   verbose=0, extra_callbacks=[Stop()])
except KeyboardInterrupt:
    pass
steady = (len(times) - timed_from) / (times[-1] - times[timed_from - 1])
print(json.dumps({"first_step": times[0] - started, "steps": len(times), "steps_per_s": steady,
                  "process_started": started}))
'''


def train_until(mode: str, data: str, work: Path, env=None, log=print) -> dict:
    """`train` (Python API) on `data` until step `STEPS`, in a fresh process: its figures."""
    out = work / f"run-{mode}"
    result = measured([sys.executable, "-c", DRIVER, mode, data, str(out), str(STEPS), str(TIMED_FROM), *MODEL],
                      env=env, log=log)
    figures = json.loads(result["stdout"].strip().splitlines()[-1])
    figures["first_step_from_start"] = figures["process_started"] + figures["first_step"] - result["started"]
    return {**figures, "peak_rss_mib": result["peak_rss_mib"]}


BOUND = r'''
import json, sys, time, unicodedata
from tokenizers import Tokenizer
corpus, data, limit = sys.argv[1], sys.argv[2], int(sys.argv[3])
source = Tokenizer.from_file(data + "/source.tokenizer.json")
target = Tokenizer.from_file(data + "/target.tokenizer.json")
pairs = []
with open(corpus, encoding="utf-8") as f:
    for line in f:
        s, t = line.rstrip("\n").split("\t")[:2]
        pairs.append((s, t))
        if len(pairs) >= limit:
            break
sources, targets = [s for s, _ in pairs], [t for _, t in pairs]
started = time.perf_counter()
source.encode_batch(sources)
target.encode_batch(targets)
print(json.dumps({"pairs": len(pairs), "pairs_per_s": len(pairs) / (time.perf_counter() - started)}))
'''


def run(args) -> str:
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    log = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731
    cli = [sys.executable, "-m", "keras_transformer.cli"]
    old_env = dict(os.environ, PYTHONPATH=str(old_code(work, args.old_rev, Path(args.repo))))
    rows, tokens_rows = [], []
    baseline_rss = None
    for size in args.sizes:
        corpus = write_corpus(work / f"corpus-{size}.tsv", size)
        data = work / f"data-{size}"
        prepared = measured([*cli, "prepare", "--data", str(corpus), "--out", str(data), "--force",
                             *MODEL[MODEL.index("--max-source-length"):MODEL.index("--batch-tokens")],
                             *MODEL[MODEL.index("--source-vocab-size"):]], log=log)
        encoded = [line for line in prepared["stderr"].splitlines() + prepared["stdout"].splitlines()
                   if line.startswith("Encoded ")]
        rate = re.search(r"([\d,]+) pairs/s\)", encoded[-1]) if encoded else None
        encode_rate = float(rate[1].replace(",", "")) if rate else float("nan")
        bound = json.loads(measured([sys.executable, "-c", BOUND, str(corpus), str(data), str(min(size, 1_000_000))],
                                    log=log)["stdout"].strip().splitlines()[-1])
        new = train_until("prepared", str(data), work, log=log)
        baseline_rss = baseline_rss or new["peak_rss_mib"]
        old = (train_until("in-memory", str(corpus), work, env=old_env, log=log)
               if size <= OLD_PATH_MAX_PAIRS else None)
        rows.append([f"{size:,}", f"{prepared['seconds']:.0f}", f"{size / prepared['seconds']:,.0f}",
                     f"{encode_rate:,.0f}", f"{bound['pairs_per_s']:,.0f}", f"{encode_rate / bound['pairs_per_s']:.2f}",
                     f"{prepared['peak_rss_mib']:,.0f}", f"{new['first_step_from_start']:.1f}",
                     f"{new['peak_rss_mib']:,.0f}", f"{new['peak_rss_mib'] - baseline_rss:+,.0f}",
                     f"{old['first_step_from_start']:.1f}" if old else "does not fit",
                     f"{old['peak_rss_mib']:,.0f}" if old else "–"])
        if old is not None and size > args.sizes[0] and not tokens_rows:
            for attempt in range(2):  # interleaved again: old, new, old, new
                again_old = train_until("in-memory", str(corpus), work, env=old_env, log=log)
                again_new = train_until("prepared", str(data), work, log=log)
                tokens_rows.append([f"{size:,}", attempt + 1, f"{again_old['steps_per_s']:.2f}",
                                    f"{again_new['steps_per_s']:.2f}",
                                    f"{again_new['steps_per_s'] / again_old['steps_per_s']:.2f}"])
    header = ["pairs", "prepare s", "prepare pairs/s", "encoding pass pairs/s", "bare encode_batch pairs/s",
              "encoding ÷ bound", "prepare peak RSS MiB", "train: first step s", "train peak RSS MiB",
              f"train RSS vs {args.sizes[0]:,}", "in-memory: first step s", "in-memory peak RSS MiB"]
    lines = [
        "# Corpus scale: prepare once, train from memory maps",
        "",
        f"Produced by `python -m bench.corpus_scale {' '.join(shlex.quote(a) for a in args.argv)}` "
        f"({available_cores()} cores).",
        "",
        *machine_description(),
        "",
        f"Model for the training rows: `{' '.join(MODEL)}`, stopped at step {STEPS}. The in-memory path is the code "
        f"of commit {args.old_rev} (`train --data SPEC` read every pair, learned its tokenizers on all of them and "
        "encoded them in memory), run with the same model; 'does not fit' where it would need more memory than "
        "this machine has. Peak RSS is the process's own (`wait4`), memory-mapped pages included.",
        "",
        markdown_table(header, rows),
        "",
        f"Training speed, the two paths interleaved (steps/s over steps {TIMED_FROM}-{STEPS}; same model, same "
        "corpus, same bucket plan, so steps/s ratio = tokens/s ratio):",
        "",
        markdown_table(["pairs", "round", "in-memory steps/s", "prepared steps/s", "prepared ÷ in-memory"],
                       tokens_rows),
    ]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.corpus_scale", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000, 5_000_000])
    parser.add_argument("--old-rev", default=OLD_REV)
    parser.add_argument("--repo", default=str(ROOT), help="the git checkout --old-rev is taken from")
    parser.add_argument("--work", default=str(ROOT / "runs" / "corpus-scale"))
    parser.add_argument("--out", default=str(ROOT / "bench" / "RESULTS-corpus-scale.md"))
    parser.add_argument("--smoke", action="store_true", help="sizes 2,000 and 4,000, 30 steps: checks it runs")
    args = parser.parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else list(argv)
    if args.smoke:
        global STEPS, TIMED_FROM
        args.sizes, STEPS, TIMED_FROM = [2_000, 4_000], 30, 10
    text = run(args)
    Path(args.out).write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
