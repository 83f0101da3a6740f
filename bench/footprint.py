"""Footprint: cold start and resident memory of a `serve` process against a TensorFlow/Keras one,
and the bundle's file sizes in fp32 and int8.

Cold start is measured in fresh subprocesses (same interpreter, same machine, same sentence):
process spawn → Python ready → imports → load (bundle sessions, or `model.keras`) → first
translation done. Memory is the child's own VmRSS (now) and VmHWM (peak) from /proc/self/status
after the first translation. Each process kind runs several times; the table shows medians.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.common import fmt_num, fmt_ratio, markdown_table

ROOT = Path(__file__).resolve().parents[1]

_MEMORY = '''
def _memory():
    values = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0]) / 1024  # MiB
    return values
'''

SERVE_CHILD = '''
import time
ready = time.time()
import json, sys
''' + _MEMORY + '''
spawned, bundle, text, threads = float(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
from keras_transformer.serve import Translator
imported = time.time()
translator = Translator(bundle, threads=threads)
loaded = time.time()
output = translator.translate([text])
done = time.time()
print(json.dumps({"python": ready - spawned, "import": imported - ready, "load": loaded - imported,
                  "first": done - loaded, "total": done - spawned, **_memory(),
                  "tensorflow": "tensorflow" in sys.modules, "output": output[0]}))
'''

KERAS_CHILD = '''
import time
ready = time.time()
import json, sys
''' + _MEMORY + '''
spawned, run_dir, text = float(sys.argv[1]), sys.argv[2], sys.argv[3]
import tensorflow, keras, keras_transformer.keras_objects
from keras_transformer.translation import keras_translator
from keras_transformer.run_dir import RunDir
imported = time.time()
run = RunDir(run_dir)
model = run.load_model()
source_tokenizer, target_tokenizer = run.load_tokenizers()
loaded = time.time()
output = keras_translator(model, source_tokenizer, target_tokenizer).translate([text], batch_size=1)
done = time.time()
print(json.dumps({"python": ready - spawned, "import": imported - ready, "load": loaded - imported,
                  "first": done - loaded, "total": done - spawned, **_memory(),
                  "tensorflow": "tensorflow" in sys.modules, "output": output[0]}))
'''


def _child(script: str, *args) -> dict:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", KERAS_BACKEND="tensorflow",
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    spawned = time.time()
    result = subprocess.run([sys.executable, "-c", script, f"{spawned:.6f}", *map(str, args)], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        raise RuntimeError(f"footprint child failed (exit {result.returncode}):\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def _median(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def _mb(path: Path) -> float:
    return path.stat().st_size / 1e6


def run(ctx) -> str:
    from keras_transformer.serve import bundle_format as fmt

    art = ctx.artifacts()
    text = art.sentences[0]
    repeats = 1 if ctx.smoke else 3
    kinds = [
        ("`serve` (onnxruntime), fp32 bundle", SERVE_CHILD, (art.fp32_bundle, text, ctx.threads)),
        ("`serve` (onnxruntime), int8 bundle", SERVE_CHILD, (art.int8_bundle, text, ctx.threads)),
        ("TensorFlow + Keras, model.keras", KERAS_CHILD, (art.run_dir, text)),
    ]
    measured = {}
    for _ in range(repeats):  # interleaved, so a burst of load from elsewhere hits all kinds alike
        for name, script, args in kinds:
            measured.setdefault(name, []).append(_child(script, *args))
    serve_runs, keras_runs = measured[kinds[0][0]], measured[kinds[2][0]]
    rows = []
    for name, _, _ in kinds:
        runs = measured[name]
        rows.append([name, fmt_num(1e3 * _median(runs, "python"), 0), fmt_num(_median(runs, "import"), 2),
                     fmt_num(_median(runs, "load"), 2), fmt_num(_median(runs, "first"), 2),
                     fmt_num(_median(runs, "total"), 2), fmt_num(_median(runs, "VmRSS")),
                     fmt_num(_median(runs, "VmHWM")), "yes" if runs[0]["tensorflow"] else "no"])
    rows.append(["TensorFlow + Keras ÷ `serve` fp32", "", "", "", "",
                 fmt_ratio(_median(keras_runs, "total") / _median(serve_runs, "total")),
                 fmt_ratio(_median(keras_runs, "VmRSS") / _median(serve_runs, "VmRSS")),
                 fmt_ratio(_median(keras_runs, "VmHWM") / _median(serve_runs, "VmHWM")), ""])

    size_rows = []
    for name in (fmt.ENCODER_FILE, fmt.DECODER_FILE):
        fp32, int8 = _mb(art.fp32_bundle / name), _mb(art.int8_bundle / name)
        size_rows.append([name, fmt_num(fp32, 2), fmt_num(int8, 2), fmt_ratio(fp32 / int8)])
    bundle_files = [fmt.CONFIG_FILE, fmt.ENCODER_FILE, fmt.DECODER_FILE, fmt.SOURCE_TOKENIZER_FILE,
                    fmt.TARGET_TOKENIZER_FILE]
    fp32_total = sum(_mb(art.fp32_bundle / n) for n in bundle_files)
    int8_total = sum(_mb(art.int8_bundle / n) for n in bundle_files)
    size_rows.append(["whole bundle (with tokenizers, config.json)", fmt_num(fp32_total, 2), fmt_num(int8_total, 2),
                      fmt_ratio(fp32_total / int8_total)])
    model_keras = art.run_dir / "model.keras"
    if model_keras.is_file():
        size_rows.append(["for comparison: the run's model.keras", fmt_num(_mb(model_keras), 2), "", ""])

    return "\n".join([
        "## Footprint",
        "",
        f"Fresh subprocesses, median of {repeats} (interleaved); one sentence translated greedily "
        f"({text!r}). Python: spawn → interpreter ready; import: `from keras_transformer.serve import Translator` vs "
        "`import tensorflow, keras, keras_transformer`; load: `Translator(bundle)` (three onnxruntime sessions: "
        "encoder, decoder, generate; tokenizers, sha256 checks) vs `keras.saving.load_model` + tokenizers; "
        "first translation: includes "
        "`tf.function` tracing on the Keras side. Memory from /proc/self/status after the first translation.",
        "",
        markdown_table(["process", "Python start (ms)", "import (s)", "load (s)", "first translation (s)",
                        "cold start total (s)", "VmRSS (MiB)", "peak RSS VmHWM (MiB)", "TensorFlow loaded"], rows),
        "",
        "Bundle sizes (MB = 10⁶ bytes):",
        "",
        markdown_table(["file", "fp32 (MB)", "int8 (MB)", "fp32 ÷ int8"], size_rows),
    ]) + "\n"
