"""`keras-transformer export RUN --out BUNDLE`: a run directory to a checked ONNX bundle."""

from __future__ import annotations

from .tensorflow_import import import_tensorflow_quietly


def add_parsers(commands) -> None:
    from keras_transformer.export.shortlist import DEFAULT_FREQUENT, DEFAULT_K

    p = commands.add_parser("export", help="convert a run to an ONNX bundle (checked against Keras)")
    p.add_argument("run", metavar="RUN", help="run directory written by `train`")
    p.add_argument("--out", required=True, help="bundle directory to write")
    p.add_argument("--int8", action="store_true",
                   help="int8 weights for the MatMuls of 256x512 elements and more, activations quantized per row "
                        "(onnxruntime MatMulIntegerToFloat; a translation never depends on its batch); smaller "
                        "weights stay float32")
    p.add_argument("--opset", type=int, help="ONNX opset, 17 or later (default: export.onnx_graphs.OPSET = 17)")
    p.add_argument("--standard-ops", action="store_true",
                   help="decoder.onnx of standard ONNX operators only (converted by tf2onnx), for runtimes other "
                        "than onnxruntime; the default uses onnxruntime's fused attention and layer-norm operators")
    p.add_argument("--shortlist", type=int, nargs="?", const=DEFAULT_K, metavar="K",
                   help=f"add a vocabulary shortlist: each source token's K likeliest target tokens (default K "
                        f"{DEFAULT_K}), estimated from the run's training pairs; translating then computes only "
                        "the logits of a sentence's candidates (turn off with translate --no-shortlist)")
    p.add_argument("--shortlist-frequent", type=int, metavar="N",
                   help="with --shortlist: the N most frequent target tokens are every sentence's candidates too "
                        f"(default {DEFAULT_FREQUENT})")
    p.add_argument("--force", action="store_true", help="replace an existing bundle at --out")
    p.set_defaults(handler=run_export)


def run_export(args) -> int:
    import_tensorflow_quietly()
    from keras_transformer.export.exporter import export_bundle
    from keras_transformer.export.onnx_graphs import OPSET

    extra = {} if args.shortlist_frequent is None else {"shortlist_frequent": args.shortlist_frequent}
    export_bundle(args.run, args.out, int8=args.int8, opset=args.opset or OPSET, force=args.force,
                  standard_ops=args.standard_ops, shortlist=args.shortlist, **extra)
    return 0
