"""The browser page of `keras-transformer web`: onnxruntime-web in headless Chromium, against Python.

The page (web/, built into web/dist by `make web`) is served by `keras_transformer.serve.web_server`
and driven by Playwright through its automation contract (`window.kt`). Translations are compared
on a small demo model (2 layers, d_model 64, 3 epochs on 3000 demo pairs: about 30 s to train and
export), whose outputs vary from sentence to sentence, unlike the tiny bundle's; the server and the
error pages use the tiny bundle. Needs Debian's chromium, the Python `playwright` package, node and
the built page; `make test` installs them all. Without them these tests skip, naming what is missing.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WEB = ROOT / "web"
DIST = WEB / "dist"
CHROMIUM = os.environ.get("KERAS_TRANSFORMER_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
HELD_OUT = 60  # held-out sentences compared with Python, greedy and beam
BEAM = 4
WEB_TRAIN_PAIRS = 3000

pytestmark = pytest.mark.slow


def _missing_for_browser() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the Python package playwright is not installed (make test installs it)"
    if not Path(CHROMIUM).exists():
        return f"no Chromium at {CHROMIUM} (make test installs Debian's chromium)"
    if not (DIST / "index.html").exists():
        return "web/dist is not built (make web)"
    return None


def _quiet(*args, **kwargs):
    pass


def _missing_for_node() -> str | None:
    if shutil.which("node") is None:
        return "node is not installed"
    if not (WEB / "node_modules" / "@huggingface" / "tokenizers").is_dir():
        return "web/node_modules is missing (make web runs npm ci)"
    return None


@pytest.fixture(scope="module")
def web_pairs():
    from keras_transformer.demo_corpus import generate_demo_corpus

    return generate_demo_corpus(seed=0, max_train_pairs=WEB_TRAIN_PAIRS, max_test_pairs=HELD_OUT)


@pytest.fixture(scope="module")
def held_out_texts(web_pairs):
    """English sentences of the demo corpus's test split: triples the model never saw."""
    return [en for en, _ in web_pairs.test]


@pytest.fixture(scope="module")
def web_run(tmp_path_factory, web_pairs):
    """A small run: 2 layers, d_model 64, 4 heads, 3 epochs on 3000 demo pairs."""
    from keras_transformer.config import ModelOptions
    from keras_transformer.training import TrainingSettings, train

    if _missing_for_browser():
        pytest.skip(_missing_for_browser())
    path = tmp_path_factory.mktemp("web") / "run"
    settings = TrainingSettings(epochs=3, batch_tokens=2048, warmup_steps=100, source_vocab_size=200,
                                target_vocab_size=300, seed=0, label_smoothing=0.0)
    options = ModelOptions(num_layers=2, hidden_dim=64, num_heads=4, intermediate_dim=128, dropout=0.0,
                           max_source_length=32, max_target_length=32)
    train(path, web_pairs.train, None, options, settings, {"train": "demo"}, log=_quiet, verbose=0)
    return path


@pytest.fixture(scope="module")
def web_bundle(web_run):
    from keras_transformer.export.exporter import export_bundle

    out = web_run.parent / "bundle"
    export_bundle(web_run, out, log=_quiet)
    return out


@pytest.fixture(scope="module")
def python_translator(web_bundle):
    from keras_transformer.serve.translator import Translator

    return Translator(web_bundle)


@pytest.fixture(scope="module")
def browser():
    missing = _missing_for_browser()
    if missing:
        pytest.skip(missing)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM)
        yield browser
        browser.close()


def _open_page(browser, url):
    """A page on `url` that may reach that server only: any other request is recorded and refused."""
    page = browser.new_page()
    errors, outside = [], []
    page.on("pageerror", lambda error: errors.append(str(error)))

    def local_only(route):
        if route.request.url.startswith(url):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", local_only)
    page.goto(url)
    page.errors, page.outside = errors, outside
    return page


@pytest.fixture(scope="module")
def page(browser, web_bundle):
    from keras_transformer.serve.web_server import start_web_server

    with start_web_server(web_bundle) as server:
        page = _open_page(browser, server.url)
        page.evaluate("kt.ready")
        yield page
        assert page.errors == []
        assert page.outside == []  # works offline: nothing fetched from elsewhere
        page.close()


def _translate_all(page, texts, **options):
    return page.evaluate(
        "async ([texts, options]) => { const out = []; "
        "for (const t of texts) out.push(await kt.translate(t, options)); return out; }",
        [texts, options])


# ---------------------------------------------------------------------------------------------- server


def _get(url, method="GET"):
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), b""


def test_server_serves_the_page_and_the_bundle_only(tiny_bundle):
    if not (DIST / "index.html").exists():
        pytest.skip("web/dist is not built (make web)")
    from keras_transformer.serve.web_server import start_web_server

    with start_web_server(tiny_bundle) as server:
        assert server.server.server_address[0] == "127.0.0.1"
        status, headers, body = _get(server.url)
        assert status == 200 and b'id="source"' in body
        assert headers["Cross-Origin-Opener-Policy"] == "same-origin"
        assert headers["Cross-Origin-Embedder-Policy"] == "require-corp"
        status, headers, body = _get(server.url + "ort/ort-wasm-simd-threaded.wasm")
        assert status == 200 and headers["Content-Type"] == "application/wasm" and body[:4] == b"\0asm"
        request = urllib.request.Request(server.url + "ort/ort-wasm-simd-threaded.wasm",
                                         headers={"Accept-Encoding": "gzip"})
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.headers["Content-Encoding"] == "gzip"
            assert gzip.decompress(response.read()) == body
        status, _, body = _get(server.url + "bundle/config.json")
        assert status == 200 and json.loads(body)["format_version"] == 1
        assert _get(server.url + "bundle/encoder.onnx", "HEAD")[0] == 200
        for path in ["bundle/../config.json", "bundle/%2e%2e/%2e%2e/pyproject.toml", "../pyproject.toml",
                     "bundle/", "bundle/missing.onnx", "etc/passwd", "%2fetc%2fpasswd", "ort/", "bundle/./config.json"]:
            assert _get(server.url + path)[0] == 404, path
        assert _get(server.url + "bundle/config.json", "POST")[0] == 405
        assert _get(server.url + "bundle/config.json", "PUT")[0] == 405


def test_server_refuses_what_it_cannot_serve(tmp_path, tiny_bundle):
    from keras_transformer.serve.web_server import WebServerError, make_web_server

    with pytest.raises(WebServerError, match="expected a bundle directory"):
        make_web_server(tmp_path / "nowhere", port=0)
    with pytest.raises(WebServerError, match="make web"):
        make_web_server(tiny_bundle, port=0, static_dir=tmp_path)


def test_web_server_imports_no_tensorflow():
    code = ("import sys, keras_transformer.serve.web_server; "
            "print(sorted(m for m in ('tensorflow', 'keras', 'onnxruntime', 'tf2onnx') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT.parent)
    assert result.stdout.strip() == "[]"


def test_cli_web_serves_the_page(tiny_bundle):
    """`keras-transformer web BUNDLE --port 0` prints its address and serves the page."""
    exe = Path(sys.executable).with_name("keras-transformer")
    if not exe.exists() or "web" not in subprocess.run([exe, "--help"], capture_output=True, text=True).stdout:
        pytest.skip("the keras-transformer command has no `web` subcommand")
    if not (DIST / "index.html").exists():
        pytest.skip("web/dist is not built (make web)")
    process = subprocess.Popen([exe, "web", str(tiny_bundle), "--port", "0"], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    try:
        line = ""
        for line in process.stdout:
            if "http://" in line:
                break
        url = line[line.index("http://"):].split()[0]
        assert url.startswith("http://127.0.0.1:")
        assert _get(url)[0] == 200
        assert _get(url + "bundle/decoder.onnx", "HEAD")[0] == 200
    finally:
        process.terminate()
        process.wait(timeout=10)


# ---------------------------------------------------------------------------------------------- tokenizer


def test_javascript_tokenizer_matches_python(tmp_path, tiny_bundle, demo_pairs):
    """web/src/tokenizer.js (tokenizers.js plus its adaptations) gives Python's ids and texts."""
    missing = _missing_for_node()
    if missing:
        pytest.skip(missing)
    import random

    from keras_transformer.serve.tokenizer import SubwordTokenizer

    source = SubwordTokenizer.from_file(Path(tiny_bundle) / "source.tokenizer.json")
    target = SubwordTokenizer.from_file(Path(tiny_bundle) / "target.tokenizer.json")
    rng = random.Random(0)
    alphabet = list("abcXYZ019 .,?!'\"-()[]{}<>$+=^`|~#&*/\\@") + [
        "\u00a0", "\u3000", "\u2003", "\x85", "\ufeff", "\u200b", "\u200d", "\t", "\n", "\r", "\x0b", "\x1c",
        "क", "ि", "्", "ड़", "\u093c", "।", "e\u0301", "A\u030a", "ﬁ", "😀", "▁", "[EOS]", "[UNK]", "[PAD]", "[BOS]",
        "—", "“", "”", "«", "¿", "、", "€", "\u00ad", "ß", "İ"]
    texts = [en for en, _ in demo_pairs.test] + [hi for _, hi in demo_pairs.test] + [
        "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 20))) for _ in range(400)]
    vocab = target.vocab_size
    ids = [target.encode(hi) for _, hi in demo_pairs.test] + [
        [rng.choice([0, 1, 2, 3] + list(range(4, vocab))) for _ in range(rng.randint(0, 20))] for _ in range(300)]
    cases = tmp_path / "cases.json"
    cases.write_text(json.dumps({"bundle": str(tiny_bundle), "texts": texts, "ids": ids}), encoding="utf-8")
    result = subprocess.run(["node", str(WEB / "scripts" / "tokenize_cases.mjs"), str(cases)], capture_output=True,
                            text=True, encoding="utf-8", check=True)
    got = json.loads(result.stdout)
    assert got["source"] == source.encode_batch(texts)
    assert got["target"] == target.encode_batch(texts)
    assert got["decoded"] == [target.decode(row) for row in ids]


def test_javascript_unit_tests_pass():
    """`npm test` in web/: the decoding helpers, SHA-256 and the ONNX output patch, in node."""
    missing = _missing_for_node()
    if missing:
        pytest.skip(missing)
    result = subprocess.run(["npm", "test", "--silent"], cwd=WEB, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


# ---------------------------------------------------------------------------------------------- browser


def _assert_page_translates_like(page, python_translator, texts, what=""):
    """Greedy and beam BEAM: the page's translations of `texts` equal `python_translator`'s."""
    for beam_size in (1, BEAM):
        expected = python_translator.translate(texts, beam_size=beam_size)
        assert len(set(expected)) > len(expected) // 2  # varied translations, not one repeated string
        got = _translate_all(page, texts, beamSize=beam_size, maxLength=None)
        mismatches = [(t, e, g) for t, e, g in zip(texts, expected, got) if e != g]
        assert not mismatches, f"{what}beam {beam_size}: {len(mismatches)} of {len(texts)} differ, e.g. {mismatches[0]}"


def test_page_translates_like_python_greedy_and_beam(page, python_translator, held_out_texts):
    assert len(held_out_texts) >= 50
    _assert_page_translates_like(page, python_translator, held_out_texts)


def test_page_options_and_blank_text(page, python_translator, held_out_texts):
    texts = held_out_texts[:5]
    for beam_size, max_length in [(1, 3), (3, 5), (2, 1)]:
        expected = python_translator.translate(texts, beam_size=beam_size, max_length=max_length)
        assert _translate_all(page, texts, beamSize=beam_size, maxLength=max_length) == expected
    assert _translate_all(page, ["", "   ", "\t\n\u3000 "], beamSize=1) == ["", "", ""]
    assert _translate_all(page, ["", " "], beamSize=4) == ["", ""]
    # Typed special tokens are text, as in Python (encode_special_tokens).
    odd = ["[EOS] the boy", "a\ufeffb c"]
    assert _translate_all(page, odd, beamSize=1) == python_translator.translate(odd)
    # Lone surrogates (built in the page: JSON transport would not carry them) are replaced as in Python.
    lone = page.evaluate("kt.translate(String.fromCharCode(0xd800) + ' the boy ' + String.fromCharCode(0xdc00))")
    assert lone == python_translator.translate(["\ud800 the boy \udc00"])[0]
    mixed = page.evaluate("kt.translate('the ' + String.fromCharCode(0xdfff) + '\\u{1F600} boy')")
    assert mixed == python_translator.translate(["the \udfff\U0001F600 boy"])[0]
    error = page.evaluate("kt.translate('x', {beamSize: 0}).then(() => null, e => e.message)")
    assert "beamSize" in error


def test_page_truncates_long_text_with_a_notice(page, python_translator, held_out_texts):
    from keras_transformer.serve.translator import TruncationWarning

    text = " ".join(held_out_texts[:12])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        expected = python_translator.translate([text])[0]
    assert any(issubclass(w.category, TruncationWarning) for w in caught)
    detailed = page.evaluate("t => kt.translateDetailed(t, {beamSize: 1})", text)
    assert detailed["truncated"] and detailed["text"] == expected
    assert len(detailed["sourceIds"]) == python_translator.max_source_length

    page.fill("#source", text)
    page.select_option("#beam-size", "1")
    page.fill("#max-length", "")
    page.click("#translate")
    page.wait_for_selector("#truncation:not([hidden])")
    assert "max_source_length" in page.text_content("#truncation")
    page.wait_for_function("document.querySelector('#output').textContent === " + json.dumps(expected))


def test_page_ui_streams_the_translation_and_draws_cross_attention(page, python_translator, held_out_texts,
                                                                    web_run):
    import numpy as np

    text = held_out_texts[0]
    expected = python_translator.translate([text], beam_size=BEAM)[0]
    page.fill("#source", text)
    page.select_option("#beam-size", str(BEAM))
    page.fill("#max-length", "")
    page.click("#translate")
    page.wait_for_function("document.querySelector('#output').textContent === " + json.dumps(expected)
                           + " && !document.querySelector('#translate').disabled")
    assert "tokens/s" in page.text_content("#timing")
    assert page.is_hidden("#truncation")
    page.click("#show-attention")
    page.wait_for_selector("#attention tr")
    detailed = page.evaluate("t => kt.translateDetailed(t, {beamSize: %d})" % BEAM, text)
    rows = page.locator("#attention tr").count()
    assert rows == 1 + len(detailed["outputIds"]) + (1 if detailed["endedWithEos"] else 0)
    assert page.locator("#attention tr").first.locator("th").count() == 1 + len(detailed["sourceIds"])

    # The weights equal those of the Keras model (keras_transformer.attention_maps) for the same ids.
    from keras_transformer.attention_maps import attention_weights
    from keras_transformer.run_dir import RunDir

    attention = page.evaluate("t => kt.attention(t, {beamSize: %d})" % BEAM, text)
    model = RunDir(web_run).load_model()
    target_ids = [1] + detailed["outputIds"]
    keras_cross = attention_weights(model, np.array(detailed["sourceIds"]), np.array(target_ids))["decoder_cross"]
    for layer, per_head in enumerate(attention["weights"]):
        got = np.array(per_head)  # (H, T', S)
        np.testing.assert_allclose(got.sum(axis=-1), 1.0, atol=1e-5)
        np.testing.assert_allclose(got, keras_cross[layer][:, : got.shape[1]], atol=1e-4)


@pytest.fixture(scope="module")
def web_int8_bundle(web_run):
    """web_run's int8 bundle, every weight int8 (the real size threshold, 2^17 elements, is for wider
    models than web_run's d_model 64: lowered here as in tests/test_int8_batch_invariance.py) in the
    default form, row int8."""
    from keras_transformer.export.exporter import export_bundle
    from keras_transformer.export.quantize import Int8Plan

    out = web_run.parent / "bundle-int8"
    export_bundle(web_run, out, int8=True, int8_plan=Int8Plan(min_weight_elements=64 * 64), log=_quiet)
    return out


def test_page_translates_an_int8_bundle_like_python(browser, web_int8_bundle, held_out_texts):
    """The --int8 bundle's row int8 (onnxruntime's MatMulIntegerToFloat, exact integer sums) runs in
    onnxruntime-web too and gives Python's tokens. (MatMulNBits, the form row int8 replaced, did not:
    onnxruntime-web 1.30 rounds it differently from native onnxruntime; bench/RESULTS-speed-changes.md,
    last section.)"""
    import onnx

    from keras_transformer.serve import bundle_format as fmt
    from keras_transformer.serve.translator import Translator
    from keras_transformer.serve.web_server import start_web_server

    op_types = {node.op_type for node in onnx.load(web_int8_bundle / fmt.DECODER_FILE).graph.node}
    assert "MatMulIntegerToFloat" in op_types and "MatMulNBits" not in op_types
    with start_web_server(web_int8_bundle) as server:
        page = _open_page(browser, server.url)
        page.evaluate("kt.ready")
        _assert_page_translates_like(page, Translator(web_int8_bundle), held_out_texts, what="int8, ")
        assert page.errors == [] and page.outside == []
        page.close()


@pytest.fixture(scope="module")
def web_shortlist_bundle(tmp_path_factory, web_pairs):
    """A 2+1 model (a deep encoder, a shallow decoder, as edge students are) exported with --shortlist."""
    from keras_transformer.config import ModelOptions
    from keras_transformer.export.exporter import export_bundle
    from keras_transformer.training import TrainingSettings, train

    if _missing_for_browser():
        pytest.skip(_missing_for_browser())
    path = tmp_path_factory.mktemp("web") / "run-2-1"
    settings = TrainingSettings(epochs=2, batch_tokens=2048, warmup_steps=100, source_vocab_size=200,
                                target_vocab_size=300, seed=0, label_smoothing=0.0)
    options = ModelOptions(encoder_layers=2, decoder_layers=1, hidden_dim=64, num_heads=4, intermediate_dim=128,
                           dropout=0.0, max_source_length=32, max_target_length=32)
    train(path, web_pairs.train, None, options, settings, {"train": "demo"}, log=_quiet, verbose=0)
    out = path.parent / "bundle-shortlist"
    export_bundle(path, out, shortlist=10, shortlist_frequent=20, log=_quiet)
    return out


def test_page_translates_a_shortlist_bundle_of_other_depths_like_python(browser, web_shortlist_bundle,
                                                                        held_out_texts):
    """The page computes the sentence's shortlist (shortlist.bin), candidates.onnx gathers their rows once and
    decoder.onnx computes their logits, on a 2+1 model: the tokens of Python's Translator, shortlist on and off."""
    _assert_page_translates_shortlist_bundle_like_python(browser, web_shortlist_bundle, held_out_texts[:40],
                                                         "shortlist, ")


def test_page_translates_an_int8_shortlist_bundle_like_python(browser, web_shortlist_bundle, held_out_texts):
    """int8 and the shortlist together in onnxruntime-web: the If on the ids given, the int8 rows gathered by
    candidates.onnx (MatMulIntegerToFloat on a weight fed as an input): Python's tokens, shortlist on and off."""
    from keras_transformer.export.exporter import export_bundle
    from keras_transformer.export.quantize import Int8Plan

    out = web_shortlist_bundle.parent / "bundle-int8-shortlist"
    export_bundle(web_shortlist_bundle.parent / "run-2-1", out, int8=True,
                  int8_plan=Int8Plan(min_weight_elements=64 * 64), shortlist=10, shortlist_frequent=20, log=_quiet)
    _assert_page_translates_shortlist_bundle_like_python(browser, out, held_out_texts[:40], "int8 shortlist, ")


def _assert_page_translates_shortlist_bundle_like_python(browser, bundle, texts, what):
    """The page gives Python's Translator's tokens on a shortlist bundle, shortlist on and off."""
    from keras_transformer.serve.translator import Translator
    from keras_transformer.serve.web_server import start_web_server

    python = Translator(bundle)
    with start_web_server(bundle) as server:
        page = _open_page(browser, server.url)
        page.evaluate("kt.ready")
        _assert_page_translates_like(page, python, texts, what=what)
        full = python.translate(texts, use_shortlist=False)
        assert _translate_all(page, texts, beamSize=1, useShortlist=False) == full
        assert page.errors == [] and page.outside == []
        page.close()


def _bundle_copy(tiny_bundle, tmp_path, name):
    copy = tmp_path / name
    shutil.copytree(tiny_bundle, copy)
    return copy


def _error_shown(browser, bundle):
    from keras_transformer.serve.web_server import start_web_server

    with start_web_server(bundle) as server:
        page = _open_page(browser, server.url)
        rejection = page.evaluate("kt.ready.then(() => null, e => e.message)")
        page.wait_for_selector("#error:not([hidden])")
        shown = page.text_content("#error")
        assert rejection and rejection in shown
        assert page.is_disabled("#translate")
        page.close()
        return shown


def test_page_reports_a_missing_or_corrupt_bundle_file(browser, tiny_bundle, tmp_path):
    import hashlib

    missing = _bundle_copy(tiny_bundle, tmp_path, "missing")
    (missing / "decoder.onnx").unlink()
    shown = _error_shown(browser, missing)
    assert "decoder.onnx" in shown and "missing" in shown

    truncated = _bundle_copy(tiny_bundle, tmp_path, "truncated")
    data = (truncated / "encoder.onnx").read_bytes()
    (truncated / "encoder.onnx").write_bytes(data[: len(data) // 2])
    shown = _error_shown(browser, truncated)
    assert "encoder.onnx" in shown and "sha256 mismatch" in shown

    # A corrupt graph whose checksum config.json agrees with: onnxruntime-web's own error, named.
    garbage = _bundle_copy(tiny_bundle, tmp_path, "garbage")
    (garbage / "encoder.onnx").write_bytes(b"not an onnx model" * 10)
    config = json.loads((garbage / "config.json").read_text())
    config["files"]["encoder.onnx"] = hashlib.sha256((garbage / "encoder.onnx").read_bytes()).hexdigest()
    (garbage / "config.json").write_text(json.dumps(config))
    shown = _error_shown(browser, garbage)
    assert "encoder.onnx" in shown and "cannot load" in shown

    broken = _bundle_copy(tiny_bundle, tmp_path, "broken")
    (broken / "config.json").write_text("{not json")
    assert "config.json" in _error_shown(browser, broken)
