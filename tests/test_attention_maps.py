"""`keras-transformer attention`: the weights drawn are the model's softmax rows, and the PNG shows them."""

from pathlib import Path

import numpy as np
import pytest

from keras_transformer.attention_maps import KINDS, attention_weights, draw_attention, render_attention
from keras_transformer.corpus import read_parallel_corpus
from keras_transformer.serve.decoding_options import DecodingOptions
from keras_transformer.translation import keras_translator
from keras_transformer.run_dir import RunDir
from keras_transformer.serve.bundle_format import BOS_ID, EOS_ID

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def model_and_tokenizers(tiny_run):
    run = RunDir(tiny_run)
    return (run.load_model(), *run.load_tokenizers())


@pytest.fixture(scope="module")
def pair(tiny_run):
    """A held-out pair as ids, with different source and target lengths: (S,), (T,) and their tokens."""
    source_tokenizer, target_tokenizer = RunDir(tiny_run).load_tokenizers()
    for source, target in read_parallel_corpus(str(tiny_run / "test.tsv"))[0]:
        source_ids = source_tokenizer.encode(source) + [EOS_ID]
        target_ids = [BOS_ID] + target_tokenizer.encode(target)
        if len(source_ids) != len(target_ids):
            break
    return (source_ids, target_ids, source_tokenizer.tokens(source) + ["[EOS]"],
            ["[BOS]"] + target_tokenizer.tokens(target))


def _check_weights(weights, num_layers, num_heads, source_length, target_length):
    expected_shapes = {"encoder_self": (num_heads, source_length, source_length),
                       "decoder_self": (num_heads, target_length, target_length),
                       "decoder_cross": (num_heads, target_length, source_length)}
    assert list(weights) == list(KINDS)
    for kind, shape in expected_shapes.items():
        assert len(weights[kind]) == num_layers
        for w in weights[kind]:
            assert w.shape == shape
            assert np.all(w >= 0)
            np.testing.assert_allclose(w.sum(axis=-1), 1.0, atol=1e-5)  # softmax rows
    for w in weights["decoder_self"]:  # causal: nothing above the diagonal
        assert np.all(np.triu(w, k=1) == 0.0)
        np.testing.assert_allclose(w[:, 0, 0], 1.0, atol=1e-6)  # [BOS] can only see itself


def test_attention_weights_are_softmax_rows_and_causal(model_and_tokenizers, pair):
    model = model_and_tokenizers[0]
    source_ids, target_ids, _, _ = pair
    weights = attention_weights(model, source_ids, target_ids)
    _check_weights(weights, 2, 2, len(source_ids), len(target_ids))
    # Not a constant picture: the trained encoder's heads do not attend uniformly.
    assert not np.allclose(weights["encoder_self"][0], 1.0 / len(source_ids), atol=1e-3)
    with pytest.raises(ValueError,
                       match=r"expected source_ids to be a non-empty 1-D sequence of ints, got shape \(0,\)"):
        attention_weights(model, [], target_ids)


def test_draw_attention_writes_one_panel_per_kind_layer_and_head(model_and_tokenizers, pair, tmp_path):
    source_ids, target_ids, source_tokens, target_tokens = pair
    weights = attention_weights(model_and_tokenizers[0], source_ids, target_ids)
    path = tmp_path / "maps.png"
    figure = draw_attention(weights, source_tokens, target_tokens, path)
    assert path.read_bytes()[:8] == PNG_MAGIC
    assert sorted(p.name for p in tmp_path.iterdir()) == ["maps.png"]  # no temporary file left
    panels, colorbar = figure.axes[:-1], figure.axes[-1]
    assert len(panels) == len(KINDS) * 2 * 2 and colorbar.get_ylabel() == "attention weight"
    # Row-major: (kind, layer) rows, head columns; each panel shows its head's weights.
    for index, ax in enumerate(panels):
        kind, layer, head = list(KINDS)[index // 4], index // 2 % 2, index % 2
        np.testing.assert_array_equal(ax.images[0].get_array(), weights[kind][layer][head])
        assert ax.get_title().endswith(f"layer {layer + 1}, head {head + 1}")
    cross = panels[-1]
    assert [t.get_text() for t in cross.get_xticklabels()] == source_tokens  # Latin script: drawn as is
    target_labels = [t.get_text() for t in cross.get_yticklabels()]
    assert len(target_labels) == len(target_tokens) and target_labels[0] == "[BOS]"
    # Devanagari shows as itself where a font has it, as its position "#i" where none does.
    assert all(label in (token, f"#{i}") for i, (label, token) in enumerate(zip(target_labels, target_tokens)))

    with pytest.raises(ValueError, match=r"expected encoder_self layer 1 weights of shape \(H, \d+, \d+\) "
                                         r"for source x source tokens, got \(2, "):
        draw_attention(weights, source_tokens[:-1], target_tokens, tmp_path / "bad.png")


def test_render_attention_translates_then_draws(tiny_run, model_and_tokenizers, tmp_path):
    text = "you do not call the good girls."
    drawn = render_attention(tiny_run, text, tmp_path / "a.png", max_length=4)
    assert (tmp_path / "a.png").read_bytes()[:8] == PNG_MAGIC
    model, source_tokenizer, target_tokenizer = model_and_tokenizers
    assert drawn["source_tokens"] == source_tokenizer.tokens(text) + ["[EOS]"]
    # The decoder inputs that greedy decoding fed: [BOS], then the outputs but one cut at max_length.
    (expected,) = keras_translator(model, source_tokenizer, target_tokenizer).translate_batch(
        [text], DecodingOptions(max_length=4))
    assert drawn["translation"] == expected.text
    generated = [target_tokenizer.tokenizer.id_to_token(i) for i in expected.target_ids]
    assert drawn["target_tokens"] == (["[BOS]"] + generated)[:4]
    _check_weights(drawn["weights"], 2, 2, len(drawn["source_tokens"]), len(drawn["target_tokens"]))


def test_attention_command(tiny_run, tmp_path, capsys):
    from keras_transformer.cli import main

    out = tmp_path / "maps.png"
    assert main(["attention", str(tiny_run), "do you call the girl?", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Translation:" in printed and "Source tokens: #0 ▁do #1 ▁you" in printed
    assert "Attention maps (3 kinds x 2 layers x 2 heads) written to" in printed
    assert out.read_bytes()[:8] == PNG_MAGIC

    for args, message in [
        (["--out", str(tmp_path / "maps.jpg")], "expected --out to be a .png, .svg or .html file, got"),
        (["--out", str(tmp_path / "missing" / "m.png")], f"cannot write {tmp_path / 'missing' / 'm.png'}: directory"),
        (["--out", str(out), "--max-length", "0"], "expected --max-length between 1 and 40"),
    ]:
        assert main(["attention", str(tiny_run), "do you call the girl?", *args]) == 2
        assert f"keras-transformer attention: error: {message}" in capsys.readouterr().err
    assert main(["attention", str(tiny_run), "  ", "--out", str(out)]) == 2
    assert "expected a non-empty sentence to translate" in capsys.readouterr().err


def test_a_devanagari_font_from_fontconfig_joins_the_font_family(monkeypatch):
    import matplotlib

    from keras_transformer import attention_maps

    find_font_file = attention_maps._devanagari_font_file
    stand_in = str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSerif.ttf")  # any real font file
    attention_maps._font_family.cache_clear()
    try:
        monkeypatch.setattr(attention_maps, "_devanagari_font_file", lambda: stand_in)
        assert attention_maps._font_family() == ("DejaVu Sans", "DejaVu Serif")
        attention_maps._font_family.cache_clear()
        monkeypatch.setattr(attention_maps, "_devanagari_font_file", lambda: "/no/such/font.ttf")
        assert attention_maps._font_family() == ("DejaVu Sans",)  # an unusable font is left out silently
    finally:
        attention_maps._font_family.cache_clear()
    monkeypatch.setattr(attention_maps.shutil, "which", lambda name: None)
    assert find_font_file() is None  # no fontconfig: no font, no error


# ---------------------------------------------------------------------------- any script: SVG / HTML / Chromium

CONJUNCTS = ["▁क्षत्रिय", "▁स्त्री", "▁विद्यार्थी", "▁कृष्ण", "▁पढ़ी", "▁हिन्दी", "।"]  # half forms, reph, matras, nukta


def _embedded_fonts_and_labels(svg_text):
    """The fonts embedded in the SVG's @font-face rules (fontTools objects) and its <text> strings."""
    import base64
    import io
    import re
    import xml.etree.ElementTree as ElementTree

    from fontTools.ttLib import TTFont

    root = ElementTree.fromstring(svg_text)
    namespace = "{http://www.w3.org/2000/svg}"
    style = root.find(f"{namespace}style").text
    fonts = [TTFont(io.BytesIO(base64.b64decode(data)))
             for data in re.findall(r"url\(data:font/[a-z0-9]+;base64,([A-Za-z0-9+/=]+)\)", style)]
    labels = ["".join(t.itertext()) for t in root.iter(f"{namespace}text")]
    return fonts, labels


def test_svg_labels_every_token_in_any_script_with_embedded_fonts(model_and_tokenizers, pair, tmp_path):
    from keras_transformer.attention_maps import draw_attention_svg

    source_ids, target_ids, source_tokens, target_tokens = pair
    target_tokens = target_tokens[:len(target_ids)]
    # Hindi conjuncts and vowel signs as the labels of the target side (same length as the weights').
    hindi = (CONJUNCTS * len(target_tokens))[:len(target_tokens)]
    weights = attention_weights(model_and_tokenizers[0], source_ids, target_ids)
    path = tmp_path / "maps.svg"
    layout = draw_attention_svg(weights, source_tokens, hindi, path)
    assert layout["fallback"] == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["maps.svg"]
    fonts, labels = _embedded_fonts_and_labels(path.read_text(encoding="utf-8").split("\n", 1)[1])
    # Every token is a label as itself (no "#i"), once per panel that shows it...
    for token in source_tokens + hindi:
        assert token in labels
    assert not any(label.startswith("#") for label in labels)
    # ...and no label falls back to the viewer's fonts: each character is in an embedded font.
    covered = set().union(*(set(font.getBestCmap()) for font in fonts))
    uncovered = {c for label in labels for c in label if not c.isspace() and ord(c) not in covered}
    assert uncovered == set()
    devanagari = [font for font in fonts if ord("क") in font.getBestCmap()]
    assert devanagari and "GSUB" in devanagari[0]  # shaping tables kept: conjuncts and matras still form

    page = tmp_path / "maps.html"
    draw_attention_svg(weights, source_tokens, hindi, page)
    text = page.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and '<meta charset="utf-8">' in text and "▁क्षत्रिय" in text


def test_needs_shaping():
    from keras_transformer.attention_maps import needs_shaping

    assert not needs_shaping(["▁the", "[EOS]", "café", "Straße"])
    assert needs_shaping(["▁की"]) and needs_shaping(["क"]) and needs_shaping(["مرحبا"])


@pytest.mark.skipif(__import__("keras_transformer.attention_svg", fromlist=["find_chromium"]).find_chromium() is None,
                    reason="needs a Chromium (apt-get install chromium)")
def test_hindi_png_is_rendered_by_chromium(tiny_run, model_and_tokenizers, pair, tmp_path, monkeypatch):
    from PIL import Image

    from keras_transformer import attention_maps

    source_ids, target_ids, source_tokens, target_tokens = pair
    hindi = (CONJUNCTS * len(target_ids))[:len(target_ids)]
    weights = attention_weights(model_and_tokenizers[0], source_ids, target_ids)
    out = tmp_path / "maps.png"
    layout = attention_maps.draw_attention_svg(weights, source_tokens, hindi, out)
    assert out.read_bytes()[:8] == PNG_MAGIC and layout["fallback"] == []
    with Image.open(out) as image:
        assert image.size == (layout["width"], layout["height"])
        assert image.convert("L").getextrema()[0] < 64  # something was drawn, not a blank page

    # render_attention sends a PNG whose tokens need shaping down this path, others to matplotlib.
    calls = []
    monkeypatch.setattr(attention_maps, "draw_attention_svg", lambda *args: calls.append("svg") or {})
    monkeypatch.setattr(attention_maps, "draw_attention", lambda *args: calls.append("matplotlib"))
    monkeypatch.setattr(attention_maps, "needs_shaping", lambda tokens: True)
    attention_maps.render_attention(tiny_run, "the girl reads.", out)
    monkeypatch.setattr(attention_maps, "needs_shaping", lambda tokens: False)
    attention_maps.render_attention(tiny_run, "the girl reads.", out)
    assert calls == ["svg", "matplotlib"]


def test_attention_command_writes_svg(tiny_run, tmp_path, capsys):
    from keras_transformer.cli import main

    out = tmp_path / "maps.svg"
    assert main(["attention", str(tiny_run), "do you call the girl?", "--out", str(out)]) == 0
    assert "written to" in capsys.readouterr().out
    assert out.read_text(encoding="utf-8").startswith('<?xml version="1.0" encoding="UTF-8"?>')


@pytest.mark.skipif(__import__("keras_transformer.attention_svg", fromlist=["find_chromium"]).find_chromium() is None,
                    reason="needs a Chromium (apt-get install chromium)")
def test_titles_stay_inside_their_panel_for_a_short_sentence(tmp_path):
    """Measured by the browser: with two tokens a side, each panel's title and subtitle end before
    the next head's panel begins (they used to run into it)."""
    pytest.importorskip("playwright")
    from playwright.sync_api import sync_playwright

    from keras_transformer.attention_maps import draw_attention_svg
    from keras_transformer.attention_svg import find_chromium

    rng = np.random.default_rng(0)
    softmax = lambda shape: (lambda x: x / x.sum(-1, keepdims=True))(rng.random(shape))  # noqa: E731
    weights = {"encoder_self": [softmax((4, 2, 2))] * 2, "decoder_self": [softmax((4, 2, 2))] * 2,
               "decoder_cross": [softmax((4, 2, 2))] * 2}
    page = tmp_path / "maps.html"
    draw_attention_svg(weights, ["▁hi", "[EOS]"], ["▁नमस्ते", "[EOS]"], page)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=find_chromium())
        try:
            tab = browser.new_page()
            tab.goto(page.as_uri())
            boxes = tab.evaluate("""() => [...document.querySelectorAll('text')]
                .filter(t => t.textContent.startsWith('layer ') || t.classList.contains('title'))
                .map(t => { const b = t.getBBox(); return [Number(t.getAttribute('x')), b.x + b.width]; })""")
        finally:
            browser.close()
    starts = sorted({x for x, _ in boxes})
    assert len(starts) == 4  # one column of panels per head
    panel_width = starts[1] - starts[0]
    assert all(right <= x - 6 + panel_width for x, right in boxes), boxes
