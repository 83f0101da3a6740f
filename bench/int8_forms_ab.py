"""A/B of the int8 forms on a whole model: MatMulNBits for every weight (the int8 export before row
int8), the default split (`export/quantize.py`: row int8 from ROW_INT8_MIN_ELEMENTS elements), and
row int8 for every weight.

    python -m bench.int8_forms_ab --run RUN [--sentences SPEC] [--max-pairs 100] [--passes 5] [--out FILE]

Exports RUN's int8 bundle three times, with `quantize.ROW_INT8_MIN_ELEMENTS` set to "never", the
default and 0, and translates the same sentences through `Translator` (text in, text out), 1 thread:
greedy and beam 4, one call per sentence (batch 1: generate.onnx) and one call for all (batch 32:
the numpy loop), every configuration of the three interleaved in each pass; the best pass counts.
Outputs may differ (each form rounds differently); the table counts identical ones.
"""

from __future__ import annotations

import sys

from bench.common import ab_report, ab_setup, interleaved_ab

NEVER = 1 << 62


def main(argv=None) -> int:
    from keras_transformer.export import quantize
    from keras_transformer.export.exporter import export_bundle
    from keras_transformer.serve import Translator

    args, work, sentences, texts = ab_setup("int8_forms_ab", __doc__.splitlines()[0], argv)
    default = quantize.ROW_INT8_MIN_ELEMENTS
    thresholds = {"MatMulNBits only": NEVER, "default": default, "row int8 only": 0}
    translators = {}
    for variant, threshold in thresholds.items():
        out = work / variant.replace(" ", "-")
        quantize.ROW_INT8_MIN_ELEMENTS = threshold
        try:
            export_bundle(args.run, out, int8=True, force=True, log=lambda *a, **k: None)
        finally:
            quantize.ROW_INT8_MIN_ELEMENTS = default
        translators[variant, "int8"] = Translator(out, threads=1)
    for translator in translators.values():  # warm-up: first runs allocate
        translator.translate(texts[:3], beam_size=4)

    configs = [("int8", beam, batch) for beam in (1, 4) for batch in (1, 32)]
    best, outputs = interleaved_ab(translators, tuple(thresholds), configs, texts, args.passes)
    description = (f"Run {args.run}, {len(texts)} sentences of {sentences}, 1 thread, best of {args.passes} "
                   f"interleaved passes, text in and text out; the default threshold is {default} elements.")
    for other in ("default", "row int8 only"):
        ab_report("int8_forms_ab", argv, args, f"int8: MatMulNBits only against {other}", description,
                  ("MatMulNBits only", other), ("MatMulNBits only", other), configs, best, outputs, texts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
