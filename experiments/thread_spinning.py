"""Two intra-op threads, with the pool's threads spinning between kernels (onnxruntime's default,
what `serve/sessions.py` sets for threads > 1) or sleeping (`session.intra_op.allow_spinning` 0,
what it used before), against one thread.

    python -m experiments.thread_spinning --bundle BUNDLE [--bundle ...] [--sentences SPEC] [--max-pairs 40] \
        [--out FILE]

Part 1, each BUNDLE's decoder.onnx alone: one cached step (random inputs, past 8 positions,
source 12) at 1, 4 and 32 rows, µs per `session.run`, best of 5 interleaved rounds. Part 2,
`Translator` text in and text out on the sentences (default: the first column of SPEC, else the
demo corpus): greedy and beam 4, one call per sentence (batch 1, generate.onnx) and one call for
all (batch 32, the numpy loop), best of 3 interleaved passes; outputs must be identical.
"""

from __future__ import annotations

import argparse
import sys
import time

from bench.common import cpu_model, markdown_table
from experiments.common import best_microseconds, bundle_label, decoder_step_feeds, interleaved_ab, print_and_save

VARIANTS = ("1 thread", "2 threads, sleeping", "2 threads, spinning")


def _options(variant: str, session_options=None):
    """`serve/sessions.py`'s options (or `session_options`'s) with the variant's threads and spinning."""
    if session_options is None:
        from keras_transformer.serve.sessions import session_options
    threads = 1 if variant == "1 thread" else 2
    options = session_options(threads)
    if threads > 1:
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if "spinning" in variant else "0")
    return options


def step_rows(bundle) -> list[list]:
    import onnxruntime as ort

    from keras_transformer.serve.sessions import DISABLED_OPTIMIZERS

    path = f"{bundle}/decoder.onnx"
    sessions = {v: ort.InferenceSession(path, _options(v), providers=["CPUExecutionProvider"],
                                        disabled_optimizers=list(DISABLED_OPTIMIZERS)) for v in VARIANTS}
    rows_out = []
    for rows in (1, 4, 32):
        feeds = decoder_step_feeds(sessions[VARIANTS[0]], rows, past=8, source_length=12)
        best = best_microseconds(sessions, feeds, max(20, 1000 // rows))
        one = best[VARIANTS[0]]
        rows_out.append([bundle_label(bundle), rows, *(f"{best[v]:.0f}" for v in VARIANTS),
                         *(f"{one / best[v]:.2f}×" for v in VARIANTS[1:])])
    return rows_out


def translator_rows(bundle, texts, passes=3) -> list[list]:
    from keras_transformer.serve import Translator, onnx_model, sessions

    translators, original = {}, sessions.session_options
    try:  # the options of both the step model's sessions and generate.onnx's
        for variant in VARIANTS:
            patched = lambda threads=None, v=variant: _options(v, original)  # noqa: E731
            onnx_model.session_options = sessions.session_options = patched
            translators[variant, "fp32"] = Translator(bundle, threads=1 if variant == "1 thread" else 2)
    finally:
        onnx_model.session_options = sessions.session_options = original
    for translator in translators.values():
        translator.translate(texts[:3], beam_size=4)
    configs = [("fp32", beam, batch) for beam in (1, 4) for batch in (1, 32)]
    best, outputs = interleaved_ab(translators, VARIANTS, configs, texts, passes)
    rows_out = []
    for precision, beam, batch in configs:
        seconds = {v: best[v, precision, beam, batch] for v in VARIANTS}
        reference = outputs[VARIANTS[0], precision, beam, batch]
        same = all(outputs[v, precision, beam, batch] == reference for v in VARIANTS)
        rows_out.append([bundle_label(bundle), "greedy" if beam == 1 else f"beam {beam}", batch,
                         *(f"{len(texts) / seconds[v]:,.1f}" for v in VARIANTS),
                         *(f"{seconds[VARIANTS[0]] / seconds[v]:.2f}×" for v in VARIANTS[1:]),
                         "yes" if same else "NO"])
    return rows_out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.thread_spinning", description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", action="append", required=True)
    parser.add_argument("--sentences", help="corpus SPEC whose source side is translated (default: demo)")
    parser.add_argument("--max-pairs", type=int, default=40)
    parser.add_argument("--out", help="also append the tables to this file")
    args = parser.parse_args(argv)
    from keras_transformer.corpus import read_parallel_corpus

    texts = [source for source, _ in read_parallel_corpus(args.sentences or "demo", max_pairs=args.max_pairs)[0]]
    steps = [row for bundle in args.bundle for row in step_rows(bundle)]
    translations = [row for bundle in args.bundle for row in translator_rows(bundle, texts)]
    command = "python -m experiments.thread_spinning " + " ".join(argv if argv is not None else sys.argv[1:])
    text = "\n".join([
        "## Two threads: spinning or sleeping between kernels", "",
        f"`{command}`, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, CPU: {cpu_model()}.", "",
        markdown_table(["bundle", "rows", *(f"{v} µs" for v in VARIANTS), "sleeping ÷ 1 thread, speed",
                        "spinning ÷ 1 thread, speed"], steps), "",
        f"`Translator`, {len(texts)} sentences, fp32:", "",
        markdown_table(["bundle", "decoding", "batch", *(f"{v} sent/s" for v in VARIANTS), "sleeping ÷ 1 thread",
                        "spinning ÷ 1 thread", "identical outputs"], translations)])
    print_and_save(text, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
