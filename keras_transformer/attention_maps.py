"""The seed's attention pictures for one sentence (`keras-transformer attention`).

Three kinds of attention (paper §3.2.3), each per layer and per head:

    encoder self-attention            source tokens attend to source tokens          (S, S)
    decoder masked self-attention     target tokens attend to earlier target tokens  (T, T)
    decoder cross-attention           target tokens attend to source tokens          (T, S)

The weights come from the trained model's own layers (`return_attention_weights=True`), not from
a second copy of the attention code: translate greedily, then run the encoder and the decoder once on
(source ids, [BOS] + output ids) and keep every softmax.

Rows are queries, columns keys. The decoder's rows are its inputs: the row of [BOS] is the query
that produced the first output token, the row of output token t the one that produced token t + 1
(or [EOS]).

Output: `.svg` or `.html` is drawn by a browser with the label fonts embedded (any script shapes
correctly: Devanagari conjuncts and vowel signs, Arabic; `keras_transformer.attention_svg`); `.png`
is drawn by matplotlib for scripts it can lay out, and for those it cannot (combining marks, Indic
or right-to-left scripts) is the SVG rendered by headless Chromium when one is installed (else
matplotlib, with `#i` for labels no font can draw).

Example:
    >>> maps = render_attention("runs/demo", "He runs a company.", "attention.png")
    >>> maps["weights"]["decoder_cross"][0].shape      # layer 1: (H, T, S)
    (4, 9, 7)
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import subprocess
import warnings
from pathlib import Path

import numpy as np

from keras_transformer.atomic_files import atomic_path
from keras_transformer.serve.bundle_format import BOS_ID
from keras_transformer.serve.decoding_options import DecodingOptions
from keras_transformer.serve.errors import OptionError

# Drawing order and titles; the keys of `attention_weights`' result.
KINDS = {
    "encoder_self": "encoder self-attention",
    "decoder_self": "decoder masked self-attention",
    "decoder_cross": "decoder cross-attention",
}
_BASE_FONT = "DejaVu Sans"
_INCH_PER_TOKEN = 0.22
_PANEL_MARGIN_INCHES = 1.3  # room for one panel's tick labels and title


def attention_weights(model, source_ids, target_ids) -> dict[str, list[np.ndarray]]:
    """Attention weights of one sentence pair, from one pass of the model's encoder and decoder.

    Args:
        model: a `build_transformer` model (loaded from a run).
        source_ids: 1-D ints (S,): the source tokens and [EOS], as decoding saw them.
        target_ids: 1-D ints (T,): the decoder input, [BOS] + output tokens.

    Returns:
        {"encoder_self": N arrays (H, S, S), "decoder_self": N arrays (H, T, T),
         "decoder_cross": N arrays (H, T, S)}, float32, one per layer; every row sums to 1.

    Raises:
        ValueError: ids that are not one non-empty sentence.
    """
    from keras_transformer.model import decoder_of, encoder_of

    source = _one_sentence(source_ids, "source_ids")[None]  # (1, S)
    target = _one_sentence(target_ids, "target_ids")[None]  # (1, T)
    encoder_output, encoder_self = encoder_of(model)(source, training=False, return_attention_weights=True)
    _, decoder_self, decoder_cross = decoder_of(model)(target, encoder_output, source, training=False,
                                                       return_attention_weights=True)
    first = lambda per_layer: [np.asarray(w)[0] for w in per_layer]  # noqa: E731  (1, H, ., .) -> (H, ., .)
    return {"encoder_self": first(encoder_self), "decoder_self": first(decoder_self),
            "decoder_cross": first(decoder_cross)}


def _one_sentence(ids, name) -> np.ndarray:
    ids = np.asarray(ids)
    if ids.ndim != 1 or ids.size == 0 or not np.issubdtype(ids.dtype, np.integer):
        raise OptionError(f"expected {name} to be a non-empty 1-D sequence of ints, got shape {ids.shape} "
                         f"of {ids.dtype}")
    return ids.astype(np.int32)


def draw_attention(weights, source_tokens, target_tokens, path):
    """Draws `attention_weights`' result as heatmaps and writes a PNG atomically.

    One row of panels per (kind, layer), one column per head; colours run from 0 to 1 on one
    shared scale (a colorbar on the right). Labels that the available fonts cannot show (Devanagari
    without a Devanagari font) become their position, `#i`, so no label is a row of boxes.

    Args:
        weights: {"encoder_self": [(H, S, S)], "decoder_self": [(H, T, T)], "decoder_cross": [(H, T, S)]}.
        source_tokens: S labels. target_tokens: T labels.
        path: the `.png` to write.

    Returns:
        The `matplotlib.figure.Figure` (drawn with Agg, not registered with pyplot): panels, then the colorbar.
    """
    import matplotlib
    from matplotlib.figure import Figure

    tokens = {"source": list(source_tokens), "target": list(target_tokens)}
    axes_of = AXES_OF
    _check_shapes(weights, tokens["source"], tokens["target"])
    num_layers = len(weights["encoder_self"])
    num_heads = weights["encoder_self"][0].shape[0]

    font_family = _font_family()
    labels = {side: _labels(side_tokens, font_family) for side, side_tokens in tokens.items()}
    panel = _PANEL_MARGIN_INCHES + _INCH_PER_TOKEN * max(len(tokens["source"]), len(tokens["target"]))
    with _quiet_glyph_warnings(), matplotlib.rc_context({"font.family": list(font_family), "font.size": 8}):
        figure = Figure(figsize=(panel * num_heads + 0.8, panel * len(KINDS) * num_layers + 0.4),
                        layout="constrained")
        grid = figure.subplots(len(KINDS) * num_layers, num_heads, squeeze=False)
        for kind_index, (kind, title) in enumerate(KINDS.items()):
            rows, columns = axes_of[kind]
            for layer, layer_weights in enumerate(weights[kind]):
                for head in range(num_heads):
                    ax = grid[kind_index * num_layers + layer, head]
                    image = ax.imshow(layer_weights[head], vmin=0.0, vmax=1.0, cmap="viridis",
                                      interpolation="nearest")
                    ax.set_title(f"{title}\nlayer {layer + 1}, head {head + 1}")
                    ax.set_xticks(range(len(labels[columns])), labels[columns], rotation=90)
                    ax.set_yticks(range(len(labels[rows])), labels[rows])
                    ax.set_xlabel(f"{columns} (key)", fontsize=7)
                    ax.set_ylabel(f"{rows} (query)", fontsize=7)
        figure.colorbar(image, ax=grid, shrink=0.3, label="attention weight")
        with atomic_path(path, suffix=".png") as tmp:
            figure.savefig(tmp, format="png", dpi=100)
    os.chmod(path, 0o644)  # the temporary file was created 0o600
    return figure


AXES_OF = {"encoder_self": ("source", "source"), "decoder_self": ("target", "target"),
           "decoder_cross": ("target", "source")}  # (rows = queries, columns = keys)
OUTPUT_SUFFIXES = (".png", ".svg", ".html", ".htm")


def needs_shaping(tokens) -> bool:
    """True when some token has a character that matplotlib cannot lay out by itself: a combining
    mark (Devanagari vowel signs, virama), an Indic script, or a right-to-left script."""
    import unicodedata

    for character in "".join(tokens):
        if (unicodedata.category(character) in ("Mn", "Mc") or 0x0900 <= ord(character) <= 0x0DFF
                or unicodedata.bidirectional(character) in ("R", "AL")):
            return True
    return False


def draw_attention_svg(weights, source_tokens, target_tokens, path) -> dict:
    """Writes the attention maps as an SVG (`.svg`), an HTML page around it (`.html`), or a PNG
    rendered from it by headless Chromium (`.png`), atomically: a browser shapes every label, with
    the fonts embedded in the file (see `keras_transformer.attention_svg`).

    Returns:
        The layout: {"labels": {"source", "target"}, "fonts": [(font file, characters)],
        "fallback": characters no font had (then the viewer's fonts draw them), "width", "height"}.
    """
    from keras_transformer import attention_svg

    _check_shapes(weights, list(source_tokens), list(target_tokens))
    svg, layout = attention_svg.attention_svg(weights, source_tokens, target_tokens, KINDS, AXES_OF)
    suffix = Path(path).suffix.lower()
    if suffix == ".png":
        attention_svg.svg_to_png(svg, layout["width"], layout["height"], path)
    else:
        text = svg if suffix == ".svg" else attention_svg.html_page(svg, "attention maps")
        with atomic_path(path, suffix=suffix) as tmp:
            Path(tmp).write_text(text if suffix != ".svg" else '<?xml version="1.0" encoding="UTF-8"?>\n' + text,
                                 encoding="utf-8")
    if layout["fallback"]:
        warnings.warn(f"no font found for {''.join(layout['fallback'])!r}: the viewer's fonts will draw them")
    return layout


def _check_shapes(weights, source_tokens, target_tokens):
    tokens = {"source": source_tokens, "target": target_tokens}
    for kind, (rows, columns) in AXES_OF.items():
        for layer, w in enumerate(weights[kind]):
            w = np.asarray(w)
            expected = (len(tokens[rows]), len(tokens[columns]))
            if w.ndim != 3 or w.shape[1:] != expected:
                raise OptionError(f"expected {kind} layer {layer + 1} weights of shape (H, {expected[0]}, "
                                 f"{expected[1]}) for {rows} x {columns} tokens, got {w.shape}")


def render_attention(run, text, out, max_length=None, beam_size=1) -> dict:
    """Translates `text` with the run's Keras model (the `Translator` front end over its cached step,
    greedy or beam search) and draws the attention maps of the output to `out`.

    Args:
        run: a run directory written by `train`.
        text: one source sentence.
        out: the file to write (its directory must exist): `.svg` or `.html` (drawn by a browser,
            fonts embedded: readable in any script), or `.png` (matplotlib for scripts it can draw;
            for Devanagari, Arabic and other scripts that need shaping, the SVG rendered by
            headless Chromium when one is installed, else matplotlib with `#i` labels).
        max_length: most generated tokens, [EOS] included (default: the model's max_target_length).
        beam_size: 1 for greedy decoding, K > 1 for beam search.

    Returns:
        {"translation": str, "source_tokens": [S], "target_tokens": [T], "weights": as `attention_weights`,
         "layout": `draw_attention_svg`'s result, or None when matplotlib drew the PNG}.

    Raises:
        ValueError: an empty text, an --out that is not .png/.svg/.html, or a max_length out of range.
        FileNotFoundError: the directory of `out` does not exist.
        RunDirError: a run that cannot be loaded.
    """
    from keras_transformer.model import config_of
    from keras_transformer.run_dir import RunDir
    from keras_transformer.translation import keras_translator

    out = Path(out)
    if out.suffix.lower() not in OUTPUT_SUFFIXES:
        raise OptionError(f"expected --out to be a .png, .svg or .html file, got {str(out)!r}")
    if not out.parent.is_dir():
        raise FileNotFoundError(f"cannot write {out}: directory {out.parent} does not exist")
    if not isinstance(text, str) or not text.strip():
        raise OptionError(f"expected a non-empty sentence to translate, got {text!r}")
    run = RunDir(run)
    model = run.load_model()
    config = config_of(model)
    if max_length is not None and not 1 <= max_length <= config.max_target_length:
        raise OptionError(f"expected --max-length between 1 and {config.max_target_length} (the model's "
                         f"max_target_length), got {max_length}")
    source_tokenizer, target_tokenizer = run.load_tokenizers()
    ids = source_tokenizer.encode(text)
    if not ids:
        raise OptionError(f"expected a sentence with at least one source token, got {text!r}")

    translator = keras_translator(model, source_tokenizer, target_tokenizer, path=run.path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # truncation is shown by the labels: the source ends at [EOS]
        (translation,) = translator.translate_batch([text], DecodingOptions(beam_size=beam_size, max_length=max_length))
    limit = config.max_source_length - 1  # the truncation the Translator applied
    source_ids = translation.source_ids
    # The decoder inputs that decoding fed: [BOS] and every output token, except a last one that
    # was cut at max_length (it was generated, never fed).
    target_ids = ([BOS_ID] + translation.target_ids)[: max_length or config.max_target_length]
    weights = attention_weights(model, source_ids, target_ids)
    source_tokens = source_tokenizer.tokens(text)[:limit] + ["[EOS]"]
    target_tokens = [target_tokenizer.tokenizer.id_to_token(i) for i in target_ids]
    layout = None
    from keras_transformer.attention_svg import find_chromium

    if out.suffix.lower() != ".png" or (needs_shaping(source_tokens + target_tokens) and find_chromium()):
        layout = draw_attention_svg(weights, source_tokens, target_tokens, out)  # a browser shapes the labels
    else:
        draw_attention(weights, source_tokens, target_tokens, out)
    return {"translation": translation.text, "source_tokens": source_tokens, "target_tokens": target_tokens,
            "weights": weights, "layout": layout}


# ---------------------------------------------------------------------------- fonts


@functools.lru_cache(maxsize=None)
def _font_family() -> tuple[str, ...]:
    """DejaVu Sans, then a Devanagari font when fontconfig knows one (matplotlib falls back per glyph)."""
    family = [_BASE_FONT]
    devanagari = _devanagari_font_file()
    if devanagari:
        from matplotlib import font_manager

        try:
            font_manager.fontManager.addfont(devanagari)
            family.append(font_manager.FontProperties(fname=devanagari).get_name())
        except Exception:  # an unreadable font file: draw without it
            pass
    return tuple(family)


def _devanagari_font_file() -> str | None:
    """The first file of `fc-list :lang=hi`, or None (no fontconfig, no such font, any failure)."""
    if shutil.which("fc-list") is None:
        return None
    try:
        listing = subprocess.run(["fc-list", ":lang=hi", "file"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    files = sorted(line.strip().rstrip(":") for line in listing.stdout.splitlines() if line.strip())
    files = [f for f in files if f.lower().endswith((".ttf", ".otf")) and os.path.isfile(f)]
    return files[0] if files else None


@functools.lru_cache(maxsize=None)
def _covered_characters(font_family: tuple[str, ...]) -> frozenset[int]:
    from matplotlib import font_manager

    covered = set()
    for name in font_family:
        path = font_manager.findfont(font_manager.FontProperties(family=name), fallback_to_default=False)
        covered.update(font_manager.get_font(path).get_charmap())
    return frozenset(covered)


def _labels(tokens, font_family) -> list[str]:
    """Tokens as tick labels; one with a character no font can draw becomes `#i` (its position)."""
    try:
        covered = _covered_characters(font_family)
    except Exception:  # cannot inspect the fonts: label with the tokens as they are
        return list(tokens)
    return [token if all(ord(c) in covered for c in token) else f"#{i}" for i, token in enumerate(tokens)]


@contextlib.contextmanager
def _quiet_glyph_warnings():
    """Silences matplotlib's "Glyph ... missing from font(s)" (labels fall back to `#i` instead)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Glyph \d+ .*missing from")
        yield
