"""A/B of the decoding loop: this checkout's `serve/decoding.py` against the one of an earlier commit,
on the same bundle, sentences and onnxruntime session, interleaved.

    python -m experiments.decoding_ab --bundle runs/demo/bundle --sentences runs/demo/test.tsv --rev 1654ed0 \
        [--max-pairs 300] [--beam-size 4] [--length-penalty 1.0] [--batch-size 1] [--passes 3] [--same-heap]

Prints seconds (best of the passes), the speed ratio, decoder steps and how many outputs are
identical. It measures what a change to the search bought; the model and its graphs are the same
on both sides. The earlier module is REV's `serve/` (from `git archive`, imported as `old_serve`
with its own sibling modules: `serve/` imports nothing else of ours); REV's
`search(model, state, B, bos, eos, max_length, settings)` is used where it has one (any batch
size), else its `beam_search(model, state, B, bos, eos, max_length, K, alpha)` (batch 1). Sentences
are sorted by length and cut into batches of `--batch-size`, as `Translator` does.

The heap: "before" runs with glibc's default `M_TOP_PAD` (128 KiB) and "now" with
`serve/heap.py`'s, switched with `mallopt` before each timed run, so the ratio includes what that
setting buys; `--same-heap` keeps `serve/heap.py`'s for both (the search change alone).
"""

from __future__ import annotations

import argparse
import importlib
import io
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from keras_transformer.serve import heap

ROOT = Path(__file__).resolve().parents[1]
GLIBC_TOP_PAD = 128 << 10  # glibc's default M_TOP_PAD (DEFAULT_TOP_PAD)


def set_top_pad(value: int) -> None:
    """glibc's M_TOP_PAD for this process (see serve/heap.py); nothing where there is no glibc."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if name and "libc.so" in name:
        ctypes.CDLL(name).mallopt(heap.M_TOP_PAD, value)


class CountingModel:
    """Counts decoder steps; passes everything else through (reorder_beams only when asked)."""

    def __init__(self, model, with_reorder):
        self.model, self.steps = model, 0
        if with_reorder:
            self.reorder_beams = model.reorder_beams

    def start(self, source_ids):
        return self.model.start(source_ids)

    def step(self, *args):
        self.steps += 1
        return self.model.step(*args)

    def select(self, *args):
        return self.model.select(*args)


def load_old_decoding(rev: str):
    """REV's serve/decoding.py, imported from REV's whole `serve/` as the package `old_serve`."""
    archive = subprocess.run(["git", "archive", rev, "serve"], cwd=ROOT, capture_output=True, check=True).stdout
    root = Path(tempfile.mkdtemp(prefix="decoding-ab-"))
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(root, filter="data")
    (root / "serve").rename(root / "old_serve")
    sys.path.insert(0, str(root))
    return importlib.import_module("old_serve.decoding")


def main(argv=None) -> int:
    from keras_transformer.corpus import read_parallel_corpus
    from keras_transformer.serve import Translator, decoding
    from keras_transformer.serve import bundle_format as fmt
    from keras_transformer.serve.batching import pad_batch
    from keras_transformer.serve.decoding_options import DecodingOptions

    parser = argparse.ArgumentParser(prog="python -m experiments.decoding_ab", description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", required=True)
    parser.add_argument("--sentences", required=True, help="corpus SPEC whose source side is decoded")
    parser.add_argument("--rev", required=True, help="the earlier commit")
    parser.add_argument("--max-pairs", type=int, default=300)
    parser.add_argument("--beam-size", type=int, default=4)
    parser.add_argument("--length-penalty", type=float, default=1.0)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--same-heap", action="store_true", help="serve/heap.py's M_TOP_PAD on both sides")
    args = parser.parse_args(argv)

    old = load_old_decoding(args.rev)
    translator = Translator(args.bundle)
    pairs, _ = read_parallel_corpus(args.sentences, max_pairs=args.max_pairs)
    sources = translator._source_ids([source for source, _ in pairs], list(range(len(pairs))))
    K, alpha, max_length = args.beam_size, args.length_penalty, translator.max_target_length
    options = DecodingOptions(beam_size=K, length_penalty=alpha)

    order = sorted(sources, key=len)
    batches = [order[i:i + args.batch_size] for i in range(0, len(order), args.batch_size)]
    if not hasattr(old, "search") and args.batch_size != 1:
        parser.error(f"--batch-size: {args.rev}'s serve/decoding.py has no batched search(); use --batch-size 1")

    def run_old(model):
        if not hasattr(old, "search"):
            return [old.beam_search(model, model.start(pad_batch(b)), 1, fmt.BOS_ID, fmt.EOS_ID, max_length, K,
                                    alpha)[0] for b in batches]
        old_settings = old.SearchSettings(beam_size=K, length_penalty=alpha)
        return [h[0].tokens for b in batches for h in old.search(model, model.start(pad_batch(b)), len(b), fmt.BOS_ID,
                                                                  fmt.EOS_ID, max_length, old_settings)]

    def run_new(model):
        return [h[0].tokens for b in batches for h in decoding.search(model, model.start(pad_batch(b)), len(b),
                                                                       fmt.BOS_ID, fmt.EOS_ID, max_length, options)]

    top_pads = {"before": heap.RETAINED_BYTES if args.same_heap else GLIBC_TOP_PAD, "now": heap.RETAINED_BYTES}
    best, outputs, steps = {}, {}, {}
    for _ in range(args.passes):
        for name, run, with_reorder in (("before", run_old, hasattr(old, "search")), ("now", run_new, True)):
            model = CountingModel(translator.model, with_reorder)
            set_top_pad(top_pads[name])
            started = time.perf_counter()
            outputs[name] = run(model)
            best[name] = min(best.get(name, float("inf")), time.perf_counter() - started)
            steps[name] = model.steps
    identical = sum(a == b for a, b in zip(outputs["before"], outputs["now"]))
    heap_note = ("same heap" if args.same_heap
                 else f"M_TOP_PAD {GLIBC_TOP_PAD >> 10} KiB -> {heap.RETAINED_BYTES >> 20} MiB")
    print(f"{len(sources)} sentences, beam {K}, alpha {alpha:g}, batch {args.batch_size} ({heap_note}): "
          f"{args.rev} {best['before']:.3f}s, "
          f"now {best['now']:.3f}s, speed-up {best['before'] / best['now']:.2f}x; decoder steps {steps['before']} -> "
          f"{steps['now']}; identical outputs {identical}/{len(sources)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
