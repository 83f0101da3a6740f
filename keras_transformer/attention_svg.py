"""Attention maps as SVG (or an HTML page around it), drawn by a browser: readable in any script.

matplotlib draws text glyph by glyph, without complex text layout: Devanagari vowel signs and
conjuncts (क्षि, स्त्र) come out wrong even with a Devanagari font. A browser shapes text (HarfBuzz), so
here every token label is SVG <text>, and the fonts that draw them travel inside the file: for
each label character the first font that has it, among

    DejaVu Sans (matplotlib's own font, for Latin and much more),
    Noto Sans Devanagari (shipped in keras_transformer/fonts, SIL Open Font License 1.1, OFL.txt),
    any font fontconfig finds for the character (`fc-list :charset=...`),

is embedded as a subset (fontTools, with its OpenType layout tables, so conjuncts and vowel signs
still shape) in an @font-face rule. No label depends on the viewer's fonts; `layout["fallback"]`
lists the characters that no font had (the test asserts it is empty for Hindi).

`svg_to_png` renders the HTML with headless Chromium (`chromium --screenshot`), when one is
installed: the PNG path for scripts matplotlib cannot shape.
"""

from __future__ import annotations

import base64
import functools
import html
import io
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from keras_transformer.serve.errors import KerasTransformerError

FONT_DIR = Path(__file__).resolve().parent / "fonts"
PACKAGED_FONTS = (FONT_DIR / "NotoSansDevanagari-Regular.ttf",)
CELL = 18  # px per attention cell
FONT_SIZE = 12
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


class RenderError(KerasTransformerError, RuntimeError):
    """The attention maps could not be rendered to PNG (no Chromium, or it failed)."""


def _base_fonts() -> list[Path]:
    import matplotlib

    dejavu = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    return [path for path in (dejavu, *PACKAGED_FONTS) if path.is_file()]


@functools.lru_cache(maxsize=None)
def _cmap(path: str) -> frozenset[int]:
    from fontTools.ttLib import TTFont

    with TTFont(path, lazy=True) as font:
        return frozenset(font.getBestCmap() or {})


def _fontconfig_font_for(character: str) -> Path | None:
    """A font file that fontconfig says has `character`, or None."""
    if shutil.which("fc-list") is None:
        return None
    try:
        listing = subprocess.run(["fc-list", f":charset={ord(character):x}", "file"], capture_output=True,
                                 text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    files = sorted(line.strip().rstrip(":") for line in listing.stdout.splitlines() if line.strip())
    files = [f for f in files if f.lower().endswith((".ttf", ".otf")) and os.path.isfile(f)]
    preferred = [f for f in files if "Regular" in Path(f).name] or files
    return Path(preferred[0]) if preferred else None


def choose_fonts(labels) -> tuple[list[tuple[Path, str]], list[str]]:
    """For the characters of `labels`: [(font file, the characters it will draw)], and the
    characters no font has (would fall back to whatever the viewer has)."""
    fonts = _base_fonts()
    assigned: dict[Path, set[str]] = {}
    missing = []
    for character in sorted({c for label in labels for c in label if not c.isspace()}):
        font = next((f for f in fonts if ord(character) in _cmap(str(f))), None)
        if font is None:
            found = _fontconfig_font_for(character)
            if found is not None and ord(character) in _cmap(str(found)):
                fonts.append(found)
                font = found
        if font is None:
            missing.append(character)
        else:
            assigned.setdefault(font, set()).add(character)
    return [(font, "".join(sorted(chars))) for font, chars in assigned.items()], missing


def _subset_woff2_or_ttf(path: Path, text: str) -> tuple[bytes, str]:
    """The glyphs of `text` (and what OpenType layout needs to shape them) as a font file."""
    import logging

    from fontTools import subset

    logging.getLogger("fontTools").setLevel(logging.ERROR)  # "FFTM NOT subset; ... dropped" and the like
    options = subset.Options()
    options.layout_features = ["*"]  # keep every shaping feature (Devanagari: half forms, conjuncts, matras)
    options.name_IDs = ["*"]
    options.notdef_outline = True
    try:
        import brotli  # noqa: F401

        options.flavor, kind = "woff2", "font/woff2"
    except ImportError:
        kind = "font/ttf"
    font = subset.load_font(str(path), options)
    subsetter = subset.Subsetter(options)
    # Dotted circle and joiners: shaping engines insert or use them around marks.
    subsetter.populate(text=text + "\u25cc\u200c\u200d")
    subsetter.subset(font)
    buffer = io.BytesIO()
    subset.save_font(font, buffer, options)
    return buffer.getvalue(), kind


def _colour(value: float, colormap) -> str:
    r, g, b, _ = colormap(float(np.clip(value, 0.0, 1.0)))
    return f"#{int(r * 255):02x}{int(g * 255):02x}{int(b * 255):02x}"


def _text_width(label: str) -> float:
    """A generous width estimate in px (the browser measures the real one)."""
    return FONT_SIZE * 0.68 * max(len(label), 1) + 6


def attention_svg(weights, source_tokens, target_tokens, kinds, axes_of) -> tuple[str, dict]:
    """The SVG document of the panels (one row per kind and layer, one column per head), and a layout
    dict: {"labels": {"source": [...], "target": [...]}, "fonts": [(file, chars)], "fallback": [chars],
    "width": px, "height": px}."""
    import matplotlib

    colormap = matplotlib.colormaps["viridis"]
    tokens = {"source": list(source_tokens), "target": list(target_tokens)}
    num_layers = len(weights[next(iter(kinds))])
    num_heads = np.asarray(weights[next(iter(kinds))][0]).shape[0]
    fixed_text = [*kinds.values(), "layer 0123456789, head: rows source target (query), columns (key)", "attention"]
    fonts, missing = choose_fonts(tokens["source"] + tokens["target"] + fixed_text)
    families = [f"attn-font-{i}" for i in range(len(fonts))]
    faces = []
    for family, (path, chars) in zip(families, fonts):
        data, kind = _subset_woff2_or_ttf(path, chars)
        faces.append(f"@font-face {{ font-family: '{family}'; src: url(data:{kind};base64,"
                     f"{base64.b64encode(data).decode('ascii')}); }}")
    family_list = ", ".join([f"'{f}'" for f in families] + ["sans-serif"])

    label_margin = max(_text_width(t) for t in tokens["source"] + tokens["target"]) + 8
    longest = max(len(tokens["source"]), len(tokens["target"]))
    subtitles = [f"layer {num_layers}, head {num_heads}: rows {rows} (query), columns {columns} (key)"
                 for rows, columns in (axes_of[kind] for kind in kinds)]
    # A panel is as wide as its grid, and never narrower than its titles (the subtitle is drawn at 10 px),
    # so a short sentence's titles do not run into the next head's panel.
    title_w = max(max(_text_width(t) for t in kinds.values()), *(_text_width(t) * 10 / FONT_SIZE for t in subtitles))
    panel_w = max(label_margin + CELL * longest + 24, title_w + 12)
    panel_h = {kind: 34 + label_margin + CELL * len(tokens[axes_of[kind][0]]) + 20 for kind in kinds}
    row_tops, top = [], 0.0  # one row of panels per (kind, layer)
    for kind in kinds:
        for _ in range(num_layers):
            row_tops.append(top)
            top += panel_h[kind]
    legend_w = 90
    width = int(panel_w * num_heads + legend_w)
    height = int(top + 10)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="{html.escape(family_list)}" font-size="{FONT_SIZE}">',
           "<style>" + " ".join(faces) + " text { fill: #111; } .title { font-weight: bold; }</style>",
           f'<rect width="{width}" height="{height}" fill="white"/>']
    for kind_index, (kind, title) in enumerate(kinds.items()):
        rows, columns = axes_of[kind]
        for layer, layer_weights in enumerate(weights[kind]):
            for head in range(num_heads):
                x0 = head * panel_w
                y0 = row_tops[kind_index * num_layers + layer]
                grid_x, grid_y = x0 + label_margin, y0 + 34 + label_margin
                out.append(f'<text class="title" x="{x0 + 6}" y="{y0 + 14}">{html.escape(title)}</text>')
                out.append(f'<text x="{x0 + 6}" y="{y0 + 28}" font-size="10">layer {layer + 1}, head {head + 1}: '
                           f'rows {rows} (query), columns {columns} (key)</text>')
                w = np.asarray(layer_weights[head])
                for i, row_label in enumerate(tokens[rows]):
                    y = grid_y + i * CELL
                    out.append(f'<text x="{grid_x - 4}" y="{y + CELL * 0.72:.1f}" text-anchor="end">'
                               f"{html.escape(row_label)}</text>")
                    for j in range(len(tokens[columns])):
                        out.append(f'<rect x="{grid_x + j * CELL}" y="{y}" width="{CELL}" height="{CELL}" '
                                   f'fill="{_colour(w[i, j], colormap)}"><title>{w[i, j]:.3f}</title></rect>')
                for j, column_label in enumerate(tokens[columns]):
                    x = grid_x + j * CELL + CELL * 0.72
                    out.append(f'<text transform="translate({x:.1f},{grid_y - 4}) rotate(-90)">'
                               f"{html.escape(column_label)}</text>")
    # Colour scale: 0 at the bottom, 1 at the top.
    lx, ly, lh = width - legend_w + 20, 40, 200
    stops = "".join(f'<stop offset="{v:.2f}" stop-color="{_colour(1.0 - v, colormap)}"/>'
                    for v in np.linspace(0, 1, 11))
    out += [f'<defs><linearGradient id="scale" x1="0" y1="0" x2="0" y2="1">{stops}</linearGradient></defs>',
            f'<rect x="{lx}" y="{ly}" width="16" height="{lh}" fill="url(#scale)" stroke="#444"/>',
            f'<text x="{lx + 20}" y="{ly + 8}">1</text>', f'<text x="{lx + 20}" y="{ly + lh}">0</text>',
            f'<text x="{lx}" y="{ly - 10}" font-size="10">attention</text>', "</svg>"]
    layout = {"labels": tokens, "fonts": fonts, "fallback": missing, "width": width, "height": height}
    return "\n".join(out), layout


def html_page(svg: str, title: str) -> str:
    return ('<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>' + html.escape(title) +
            '</title><style>body { margin: 0; background: white; }</style></head><body>\n' + svg + "\n</body></html>\n")


def find_chromium() -> str | None:
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


def svg_to_png(svg: str, width: int, height: int, path, chromium: str | None = None, timeout: float = 120):
    """Renders `svg` to the PNG `path` with headless Chromium (a browser shapes every script).

    Raises:
        RuntimeError: no Chromium, or it failed (its last stderr line in the message).
    """
    chromium = chromium or find_chromium()
    if chromium is None:
        raise RenderError("no Chromium found to render the attention maps to PNG (apt-get install chromium); "
                           "write --out FILE.html or FILE.svg instead, and open it in a browser")
    with tempfile.TemporaryDirectory(prefix="attention-") as work:
        page = Path(work) / "maps.html"
        page.write_text(html_page(svg, "attention maps"), encoding="utf-8")
        shot = Path(work) / "maps.png"
        command = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                   "--force-device-scale-factor=1", f"--user-data-dir={work}/profile",
                   # Web fonts (the embedded ones) load asynchronously: let the page settle first.
                   "--virtual-time-budget=10000", "--run-all-compositor-stages-before-draw",
                   # A window larger than the picture (headless Chromium's viewport can be smaller
                   # than a small window), cropped to the picture below.
                   f"--window-size={max(width, 800) + 100},{max(height, 600) + 200}", f"--screenshot={shot}",
                   page.as_uri()]
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        except (OSError, subprocess.SubprocessError) as error:
            raise RenderError(f"{chromium}: could not render the attention maps ({error})") from None
        if not shot.is_file():
            last = (result.stderr.strip().splitlines() or ["no output"])[-1]
            raise RenderError(f"{chromium}: wrote no screenshot (exit {result.returncode}: {last})")
        from keras_transformer.atomic_files import atomic_path

        from PIL import Image

        with Image.open(shot) as image, atomic_path(path, suffix=".png") as tmp:
            image.crop((0, 0, width, height)).save(tmp, format="png")
