"""`python -m bench [--smoke] [--only NAME ...] [--run DIR] [--bundle DIR] [--int8-bundle DIR] [--out FILE]`

Runs the benchmarks (decoding, training, footprint, serving under load; `--only ctranslate2`, which needs
the `[bench]` extra, compares with CTranslate2 on the same weights) and writes their tables with the machine's
description to bench/RESULTS.md (or --out). `--smoke`: a tiny model and a few sentences, to check
in seconds that every benchmark still runs (tests/test_bench_smoke.py does this).
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
import time
import traceback
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

from bench.common import (Context, CpuContention, available_cores, load_average,  # noqa: E402
                          machine_description)

BENCHMARKS = ("decoding", "training", "footprint", "load")
OPTIONAL_BENCHMARKS = ("ctranslate2",)  # only with --only: they need the [bench] extra
DEFAULT_OUT = Path(__file__).resolve().parent / "RESULTS.md"
MODULES = {"ctranslate2": "ctranslate2_compare"}  # benchmark name -> bench/<module>.py when they differ
OWN_OUT = {("ctranslate2",): DEFAULT_OUT.with_name("RESULTS-ctranslate2.md")}  # a full run of these alone


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[1])
    parser.add_argument("--smoke", action="store_true", help="tiny model, a few sentences (seconds)")
    parser.add_argument("--only", nargs="+", choices=BENCHMARKS + OPTIONAL_BENCHMARKS, default=list(BENCHMARKS),
                        help="run only these benchmarks")
    parser.add_argument("--run", type=Path, help="a trained run dir to use instead of training the demo model")
    parser.add_argument("--bundle", type=Path, help="its fp32 bundle (else exported into a temp dir)")
    parser.add_argument("--int8-bundle", type=Path, help="its int8 bundle (else exported into a temp dir)")
    parser.add_argument("--sentences", metavar="SPEC",
                        help="decode the source side of this corpus (FILE.tsv, ...) instead of the run's test.tsv or "
                             "the demo's held-out sentences")
    parser.add_argument("--also-run", type=Path, action="append", default=[], metavar="DIR",
                        help="ctranslate2: one more trained run dir to compare on (repeatable); its bundles are "
                             "exported into a temp dir")
    parser.add_argument("--threads", type=int, default=1,
                        help="onnxruntime intra-op threads (default: 1, the Translator's default)")
    parser.add_argument("--out", type=Path, help=f"Markdown file to write (default: {DEFAULT_OUT} for a full run of "
                        "every benchmark, else bench/RESULTS.partial-smoke.md or bench/RESULTS.partial-<names>.md "
                        "(git-ignored), so a partial run never replaces the full results)")
    parser.add_argument("--note", default="", help="a line to add under the machine description")
    args = parser.parse_args(argv)
    for name in ("run", "bundle", "int8_bundle"):
        path = getattr(args, name)
        if path is not None and not path.is_dir():
            parser.error(f"--{name.replace('_', '-')}: expected a directory, got {path}")
    for path in args.also_run:
        if not path.is_dir():
            parser.error(f"--also-run: expected a directory, got {path}")
    if (args.bundle or args.int8_bundle) and not args.run:
        parser.error("--bundle/--int8-bundle: expected --run too (the Keras rows need the trained model)")
    if args.out is None and not args.smoke and tuple(args.only) in OWN_OUT:
        args.out = OWN_OUT[tuple(args.only)]
    if args.out is None:
        partial = "-".join(args.only) if list(args.only) != list(BENCHMARKS) else ""
        suffix = "-".join(part for part in ("smoke" if args.smoke else "", partial) if part)
        args.out = DEFAULT_OUT.with_name(f"RESULTS.partial-{suffix}.md") if suffix else DEFAULT_OUT
    return args


def main(argv=None, log=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    log = log or (lambda message: print(message, file=sys.stderr, flush=True))
    command = "python -m bench" + ("".join(f" {shlex.quote(a)}" for a in argv))
    started = time.perf_counter()
    load_before = load_average()
    contention = CpuContention()
    sections, failures = [], []
    with tempfile.TemporaryDirectory(prefix="bench-") as workdir:
        ctx = Context(smoke=args.smoke, workdir=Path(workdir), run_dir=args.run, fp32_bundle=args.bundle,
                      int8_bundle=args.int8_bundle, threads=args.threads, sentences=args.sentences, log=log,
                      also_runs=list(args.also_run))
        for name in args.only:
            module = __import__(f"bench.{MODULES.get(name, name)}", fromlist=["run"])
            section_started = time.perf_counter()
            log(f"[bench] {name} ...")
            try:
                text = module.run(ctx)
            except Exception:  # one broken benchmark must not hide the others' tables
                failures.append(name)
                text = f"## {name}\n\nFAILED:\n\n```\n{traceback.format_exc()}```\n"
                log(traceback.format_exc())
            seconds = time.perf_counter() - section_started
            log(f"[bench] {name} done in {seconds:.0f}s")
            sections.append(text + f"\n_({name}: {seconds:.0f}s, including preparing what it needs)_\n")
        artifacts = ctx.cache.get("artifacts")
    total = time.perf_counter() - started
    header = [
        "# Benchmark results" + (" (smoke run: tiny model, a few sentences — not meaningful figures)"
                                 if args.smoke else ""),
        "",
        f"Produced by `{command}` in {total / 60:.1f} min. Every comparison in a table was measured in this "
        "same run, on the same model and sentences; read ratios rather than absolute figures.",
        "",
        *machine_description(),
        f"- Load average (1/5/15 min) before: {load_before}; after: {load_average()} (this run alone accounts for "
        f"up to about {available_cores()})",
    ]
    others = contention.others_share()
    if others is not None:
        busy = others >= 0.10
        header.append(
            f"- Other processes used {others:.0%} of this machine's CPU time during the run"
            + (" — **the machine was shared and busy**: absolute figures are depressed and noisy; every timing is "
               "a best-of-several and every comparison is a ratio within this run, which keeps them usable"
               if busy else " (a quiet machine)"))
    if args.note:
        header.append(f"- Note: {args.note}")
    if artifacts is not None:
        model = (f"--run {args.run}" if args.run else
                 f"the {'smoke' if args.smoke else 'demo'} model, trained in this run")
        bundles = ", ".join(f"{flag} {path}" for flag, path in (("--bundle", args.bundle),
                                                               ("--int8-bundle", args.int8_bundle)) if path)
        bundles = bundles or "fp32 and int8 exported in this run"
        header.append(f"- Decoding/footprint model: {model}; bundles: {bundles}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(header) + "\n\n" + "\n".join(sections), encoding="utf-8")
    log(f"[bench] wrote {args.out} ({total:.0f}s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
