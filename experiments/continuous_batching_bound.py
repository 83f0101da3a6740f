"""How much continuous batching could buy over the server's dynamic batching, measured as an upper bound.

    python -m experiments.continuous_batching_bound --bundle B [--batch 16] [--sentences SPEC] [--out FILE]

The dynamic batcher (serve/batching_translator.py) decodes a batch until its last sentence ends; the
numpy loop drops each sentence as it ends, so a batch runs its last steps with few rows, and the
requests that arrived meanwhile wait. Continuous batching (TGI, vLLM) would refill the freed rows at
the next step. Its best case keeps every step at the full `--batch` rows: the same tokens in fewer,
fuller steps. This measures both on the same sentences, greedy, 1 thread:

- dynamic: consecutive groups of `--batch` sentences (mixed lengths, as requests arrive), each group
  sorted and decoded as the batcher does (`Translator.translate_batch(group)`); wall time, and the
  decoder steps with the rows each had;
- the continuous bound: the encoder and detokenizing as measured, plus every generated token at the
  per-row cost of a full `--batch`-row step (the mean time of the measured steps that had all rows).
  Joining a running batch costs nothing in this bound (no padding to a common cache length, no
  per-row positions): a real one can only be slower.

The ratio dynamic ÷ bound is the most continuous batching could speed decoding up at this batch
size; it is recorded in bench/RESULTS-throughput.md.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from bench.common import markdown_table
from experiments.common import print_and_save


def measure(bundle, texts: list[str], batch: int) -> dict:
    from keras_transformer.serve import Translator

    translator = Translator(bundle)
    model = translator.model
    steps = []  # (rows, seconds) of each decoder step
    untimed_step = model.step

    def timed_step(tokens, position, state):
        started = time.perf_counter()
        result = untimed_step(tokens, position, state)
        steps.append((len(tokens), time.perf_counter() - started))
        return result

    groups = [texts[i:i + batch] for i in range(0, len(texts) - batch + 1, batch)]
    translator.translate_batch(groups[0])  # warm-up
    model.step = timed_step
    started = time.perf_counter()
    for group in groups:
        translator.translate_batch(group, batch_size=batch)
    dynamic = time.perf_counter() - started
    model.step = untimed_step
    rows = np.array([r for r, _ in steps])
    seconds = np.array([s for _, s in steps])
    full = seconds[rows == batch]
    tokens = int(rows.sum())  # a row of a step = one generated token (EOS included)
    step_time = float(seconds.sum())
    bound = dynamic - step_time + tokens * float(full.mean()) / batch
    return {"sentences": len(groups) * batch, "dynamic_s": dynamic, "steps": len(steps),
            "full_steps": len(full), "tokens": tokens, "step_s": step_time, "full_step_ms": 1000 * float(full.mean()),
            "mean_rows": float(rows.mean()), "bound_s": bound}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.continuous_batching_bound",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", required=True)
    parser.add_argument("--batch", type=int, nargs="+", default=[8, 16, 32])
    parser.add_argument("--sentences", help="corpus SPEC whose sources are decoded (default: bench.load's)")
    parser.add_argument("--count", type=int, default=2048)
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    from bench.load import SENTENCES, client_requests

    texts = SENTENCES
    if args.sentences:
        from keras_transformer.corpus import read_parallel_corpus

        texts = [source for source, _ in read_parallel_corpus(args.sentences)[0]]
    texts = [t for client in client_requests(texts, 1, args.count, 1) for request in client for t in request]
    rows = []
    for batch in args.batch:
        runs = [measure(args.bundle, texts, batch) for _ in range(args.passes)]
        best = min(runs, key=lambda r: r["dynamic_s"])
        rows.append([batch, f"{best['sentences']:,}", f"{best['mean_rows']:.1f}",
                     f"{best['step_s'] / best['dynamic_s']:.0%}", f"{best['full_step_ms']:.2f}",
                     f"{best['sentences'] / best['dynamic_s']:,.0f}", f"{best['sentences'] / best['bound_s']:,.0f}",
                     f"{best['dynamic_s'] / best['bound_s']:.2f}"])
    text = "\n".join([
        "### Continuous batching: the bound "
        f"(`python -m experiments.continuous_batching_bound --bundle {args.bundle}`)",
        "",
        markdown_table(["batch", "sentences", "mean rows a step", "share of time in steps", "full step ms",
                        "dynamic sent/s", "continuous bound sent/s", "bound ÷ dynamic"], rows),
        "",
    ])
    print_and_save(text, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
