"""`keras-transformer attention` and `curves`: the pictures, one sentence's attention maps and a run's
learning curves."""

from __future__ import annotations

from .options import add_decoding_options
from .tensorflow_import import import_tensorflow_quietly


def add_parsers(commands) -> None:
    p = commands.add_parser("attention", help="draw one sentence's attention maps (encoder, decoder, cross)")
    p.add_argument("run", metavar="RUN", help="run directory written by `train`")
    p.add_argument("text", metavar="TEXT", help="the source sentence")
    p.add_argument("--out", required=True,
                   help="file to write: .svg or .html (a browser draws it, fonts embedded: any script), or .png "
                        "(scripts that need shaping, e.g. Hindi, are rendered by headless Chromium if installed)")
    add_decoding_options(p, only=("beam_size", "max_length"))
    p.set_defaults(handler=run_attention)

    p = commands.add_parser("curves", help="draw a run's learning curves (loss, validation score per epoch) as PNG")
    p.add_argument("run", metavar="RUN", help="run directory written by `train` (or its history.csv)")
    p.add_argument("--out", required=True, help="PNG file to write")
    p.add_argument("--title", help="title above the two panels")
    p.set_defaults(handler=run_curves)


def run_attention(args) -> int:
    """Draws, then prints the translation and the tokens with their positions (the `#i` a label shows
    when no font can draw the token)."""
    import_tensorflow_quietly()
    from keras_transformer.attention_maps import render_attention

    drawn = render_attention(args.run, args.text, args.out, max_length=args.max_length,
                             beam_size=args.beam_size or 1)
    print(f"Translation: {drawn['translation']}")
    for side in ("source", "target"):
        print(f"{side.capitalize()} tokens: " + " ".join(f"#{i} {token}" for i, token in
                                                          enumerate(drawn[f"{side}_tokens"])))
    layers = drawn["weights"]["encoder_self"]
    print(f"Attention maps (3 kinds x {len(layers)} layers x {layers[0].shape[0]} heads) written to {args.out}")
    return 0


def run_curves(args) -> int:
    from keras_transformer.learning_curves import plot_learning_curves

    plot_learning_curves(args.run, args.out, title=args.title)
    print(f"Learning curves written to {args.out}")
    return 0
