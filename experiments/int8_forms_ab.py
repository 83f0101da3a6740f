"""A/B of int8 plans on a whole model: the default `Int8Plan` (export/quantize.py: weights of 2^17
elements and more as row int8 with 7-bit weights, smaller ones float32) against every weight of 256
elements and more int8, and against 8-bit uint8 weights (`weight_levels` 127).

    python -m experiments.int8_forms_ab --run RUN [--sentences SPEC] [--max-pairs 100] [--passes 5] [--out FILE]

Exports RUN's int8 bundle once per plan (`export_bundle(..., int8_plan=...)`) and translates the
same sentences through `Translator` (text in, text out), 1 thread: greedy and beam 4, one call per
sentence (batch 1) and one call for all (batch 32), every configuration of every plan interleaved
in each pass; the best pass counts. Outputs may differ (each plan rounds differently); the table
counts identical ones, and since a different output can be longer or shorter, a speed-up here mixes
arithmetic and output length. So a first table times each plan's decoder step alone (decoder.onnx,
the same random inputs for all, 1, 4, 32 and 128 rows, 8 positions cached, a 12-token source).
bench/RESULTS-speed-changes.md (sections 4 and 6) holds the runs, which also timed the MatMulNBits
form, since dropped.
"""

from __future__ import annotations

import sys

from bench.common import markdown_table
from experiments.common import (ab_report, ab_setup, best_microseconds, decoder_step_feeds, interleaved_ab,
                                print_and_save)

STEP_ROWS = (1, 4, 32, 128)


def step_table(bundles: dict, baseline: str) -> str:
    """Markdown: µs per decoder step of each {variant: bundle dir}, and the speed of `baseline`'s
    step ÷ each variant's (> 1: the variant is faster)."""
    from keras_transformer.serve.sessions import inference_session, session_options

    sessions = {name: inference_session(f"{bundle}/decoder.onnx", session_options(1))
                for name, bundle in bundles.items()}
    rows = []
    for count in STEP_ROWS:
        feeds = decoder_step_feeds(sessions[baseline], count, past=8, source_length=12)
        best = best_microseconds(sessions, feeds, max(10, 1000 // count))
        rows.append([count, *(f"{best[name]:.0f}" for name in bundles),
                     *(f"{best[baseline] / best[name]:.2f}×" for name in bundles if name != baseline)])
    header = ["rows", *(f"{name} µs" for name in bundles),
              *(f"{name}, speed-up" for name in bundles if name != baseline)]
    return markdown_table(header, rows)


def main(argv=None) -> int:
    from keras_transformer.export.exporter import export_bundle
    from keras_transformer.export.quantize import Int8Plan
    from keras_transformer.serve import Translator

    args, work, sentences, texts = ab_setup("int8_forms_ab", __doc__.splitlines()[0], argv)
    plans = {"default": Int8Plan(), "every weight int8": Int8Plan(min_weight_elements=256),
             "uint8 x uint8 weights": Int8Plan(weight_levels=127)}
    translators, bundles = {}, {}
    for variant, plan in plans.items():
        out = work / variant.replace(" ", "-")
        export_bundle(args.run, out, int8=True, int8_plan=plan, force=True, log=lambda *a, **k: None)
        translators[variant, "int8"] = Translator(out, threads=1)
        bundles[variant] = out
    steps = step_table(bundles, "default")
    for translator in translators.values():  # warm-up: first runs allocate
        translator.translate(texts[:3], beam_size=4)

    configs = [("int8", beam, batch) for beam in (1, 4) for batch in (1, 32)]
    best, outputs = interleaved_ab(translators, tuple(plans), configs, texts, args.passes)
    description = (f"Run {args.run}, {len(texts)} sentences of {sentences}, 1 thread, best of {args.passes} "
                   "interleaved passes, text in and text out. Plans: "
                   + "; ".join(f"{name} {plan}" for name, plan in plans.items()) + ".")
    print_and_save("\n".join([f"## int8 plans: the decoder step ({args.run})", "", f"{description} µs per decoder "
                              "step (best of 5 interleaved rounds); speed-up: the default's time ÷ the plan's.", "",
                              steps]), args.out)
    for other in ("every weight int8", "uint8 x uint8 weights"):
        ab_report("int8_forms_ab", argv, args, f"int8: {other} against the default", description,
                  (other, "default"), (other, "default"), configs, best, outputs, texts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
