"""The browser page's decoding speed against Python's `Translator`, same bundle, same sentences.

    python -m bench.web_speed --bundle runs/demo/bundle --sentences runs/demo/test.tsv [--n 100]
        [--threads 1 2] [--out bench/RESULTS-web.md]

Both translate one sentence at a time (batch 1), greedy and beam 4; after a warm-up pass over all the
sentences (V8 and WebAssembly compile hot code in tiers: the page's first pass is much slower), the
best (least total time) of `--passes` passes is kept, as bench/decoding.py does:
- the page: `keras-transformer web`'s page in headless Chromium (Debian's chromium driven by
  Playwright), timed inside the page with performance.now() (`kt.translateDetailed`), so the
  automation round trip is not counted; `?threads=N` sets onnxruntime-web's WebAssembly threads;
- Python: `keras_transformer.serve.Translator(bundle).translate([text])` (onnxruntime, 1 thread).

Generated tokens count EOS (as bench/decoding.py does); first-token latency is the time from the
call to the first decoder step's token (tokenize + encoder + one decoder step). Outputs are checked to
be identical. Also reported: what the page downloads (bundle and page files, bytes on the wire:
the server does not compress) and how long the page takes to be ready.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
BEAM = 4


def _read_sentences(path, n):
    texts = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.strip():
            texts.append(line.split("\t")[0])
    return texts[:n]


def _python_run(translator, texts, beam_size):
    """Per sentence: (seconds, first-token seconds, text)."""
    model = translator.model
    original = model.step
    first = []

    def step(*args, **kwargs):
        result = original(*args, **kwargs)
        if not first:
            first.append(time.perf_counter())
        return result

    model.step = step
    rows = []
    try:
        for text in texts:
            first.clear()
            started = time.perf_counter()
            out = translator.translate([text], beam_size=beam_size)[0]
            ended = time.perf_counter()
            rows.append((ended - started, (first[0] - started) if first else None, out))
    finally:
        model.step = original
    return rows


PAGE_RUN = """async ([texts, beamSize]) => {
  const rows = [];
  for (const t of texts) {
    const r = await kt.translateDetailed(t, {beamSize});
    rows.push([r.seconds, r.firstTokenSeconds, r.text, r.outputIds.length + (r.endedWithEos ? 1 : 0)]);
  }
  return rows;
}"""


def _summary(rows, tokens):
    seconds = sum(r[0] for r in rows)
    firsts = [r[1] for r in rows if r[1] is not None]
    latencies = sorted(r[0] for r in rows)
    return {
        "tokens_per_s": tokens / seconds,
        "sentences_per_s": len(rows) / seconds,
        "first_ms": 1000 * statistics.median(firsts),
        "p50_ms": 1000 * statistics.median(latencies),
        "p95_ms": 1000 * latencies[int(0.95 * (len(latencies) - 1))],
    }


def _sizes(bundle, dist):
    bundle_files = ["config.json", "encoder.onnx", "decoder.onnx", "source.tokenizer.json", "target.tokenizer.json"]
    bundle_bytes = sum((Path(bundle) / f).stat().st_size for f in bundle_files)
    page_files = ["index.html", "style.css", "app.js", "ort/ort.wasm.min.mjs", "ort/ort-wasm-simd-threaded.mjs",
                  "ort/ort-wasm-simd-threaded.wasm"]
    page_bytes = {f: (Path(dist) / f).stat().st_size for f in page_files}
    wire_bytes = {f: (Path(dist) / (f + ".gz")).stat().st_size if (Path(dist) / (f + ".gz")).exists() else n
                  for f, n in page_bytes.items()}
    return bundle_bytes, page_bytes, wire_bytes


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", required=True)
    parser.add_argument("--sentences", required=True, help="TSV (source in the first column) or text file")
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--threads", type=int, nargs="+", default=[1])
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--out", help="write the markdown table here too")
    args = parser.parse_args(argv)

    from playwright.sync_api import sync_playwright

    from keras_transformer.serve.translator import Translator
    from keras_transformer.serve.web_server import default_static_dir, start_web_server

    texts = _read_sentences(args.sentences, args.n)
    translator = Translator(args.bundle)
    results = {}
    with start_web_server(args.bundle) as server, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM)
        versions = {"chromium": browser.version}
        pages = {}
        for threads in args.threads:
            page = browser.new_page()
            started = time.perf_counter()
            page.goto(f"{server.url}?threads={threads}")
            page.evaluate("kt.ready")
            results[("ready", threads)] = time.perf_counter() - started
            versions["onnxruntime-web"] = page.evaluate("kt.ort.env.versions.web")
            pages[threads] = page
        for beam in (1, BEAM):
            for page in pages.values():
                page.evaluate(PAGE_RUN, [texts, beam])  # warm-up
            _python_run(translator, texts, beam)
            runs = {key: [] for key in [("python", 1, beam)] + [("page", t, beam) for t in args.threads]}
            for _ in range(args.passes):  # engines alternate, so a busy spell hits them alike
                for threads, page in pages.items():
                    runs[("page", threads, beam)].append(page.evaluate(PAGE_RUN, [texts, beam]))
                runs[("python", 1, beam)].append(_python_run(translator, texts, beam))
            tokens = sum(r[3] for r in runs[("page", args.threads[0], beam)][0])
            for key, passes in runs.items():  # identical outputs, so the page's token counts serve Python too
                rows = min(passes, key=lambda rows: sum(r[0] for r in rows))
                results[key] = (_summary(rows, tokens), [r[2] for r in rows], tokens)
        browser.close()
    import onnxruntime

    bundle_bytes, page_bytes, wire_bytes = _sizes(args.bundle, default_static_dir())
    lines = [
        "# The browser page against Python: decoding speed",
        "",
        f"`python -m bench.web_speed --bundle {args.bundle} --sentences {args.sentences} --n {args.n} "
        f"--threads {' '.join(map(str, args.threads))} --passes {args.passes}` "
        f"on {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC "
        f"(load average {os.getloadavg()[0]:.1f} at the end); "
        f"{platform.processor() or platform.machine()}, {_cpus()} CPUs; Chromium {versions['chromium']}, "
        f"onnxruntime-web {versions['onnxruntime-web']} (WebAssembly, SIMD), "
        f"Python onnxruntime {onnxruntime.__version__} (1 thread).",
        "",
        f"{len(texts)} held-out sentences, one at a time (batch 1), best of {args.passes} passes after a warm-up "
        "pass. Tokens include EOS; "
        "first token = tokenize + encoder + first decoder step.",
        "",
        "| engine | search | tokens/s | sentences/s | first token (median) | p50 / p95 per sentence "
        "| same output as Python |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for beam in (1, BEAM):
        python = results[("python", 1, beam)]
        for key in [("python", 1, beam)] + [("page", t, beam) for t in args.threads]:
            summary, outputs, _ = results[key]
            name = "Python Translator (onnxruntime)" if key[0] == "python" else f"browser page, {key[1]} thread(s)"
            same = sum(a == b for a, b in zip(outputs, python[1]))
            lines.append(f"| {name} | {'greedy' if beam == 1 else f'beam {beam}'} | {summary['tokens_per_s']:.0f} | "
                         f"{summary['sentences_per_s']:.1f} | {summary['first_ms']:.1f} ms | "
                         f"{summary['p50_ms']:.1f} / {summary['p95_ms']:.1f} ms | {same}/{len(outputs)} |")
    for beam in (1, BEAM):
        page_summary = results[("page", args.threads[0], beam)][0]
        ratio = results[("python", 1, beam)][0]["tokens_per_s"] / page_summary["tokens_per_s"]
        lines.append(f"\n{'Greedy' if beam == 1 else f'Beam {beam}'}: Python is {ratio:.1f}x the page's tokens/s "
                     f"({args.threads[0]} thread).")
    page_total, wire_total = sum(page_bytes.values()), sum(wire_bytes.values())
    wasm = "ort/ort-wasm-simd-threaded.wasm"
    lines += [
        "",
        f"**Download**: the bundle {bundle_bytes / 1e6:.2f} MB (config, encoder.onnx, decoder.onnx, two tokenizers; "
        f"sent as is) + the page {wire_total / 1e6:.2f} MB gzipped ({page_total / 1e6:.2f} MB uncompressed; "
        f"onnxruntime-web's .wasm {wire_bytes[wasm] / 1e6:.2f} MB gzipped, {page_bytes[wasm] / 1e6:.2f} MB raw; "
        f"app.js {page_bytes['app.js'] / 1e3:.0f} kB raw) = {(bundle_bytes + wire_total) / 1e6:.2f} MB on the first "
        f"visit. Page ready (download, sha256 checks, sessions) in {results[('ready', args.threads[0])]:.2f} s "
        "from 127.0.0.1.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
    return 0


def _cpus():
    return os.cpu_count()


if __name__ == "__main__":
    sys.exit(main())
