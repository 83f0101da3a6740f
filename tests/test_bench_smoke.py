"""`python -m bench --smoke`: every benchmark still runs end to end (tiny model, a few sentences),
so the benchmarks cannot rot. The results go to tmp_path, never over bench/RESULTS.md.

Runs in a subprocess, exactly as `make bench` would (plus --smoke), on the session's tiny run and
fp32 bundle; the int8 bundle is exported by the benchmark itself.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "RESULTS.md"


@pytest.mark.slow
def test_bench_smoke_runs_every_benchmark(tmp_path, tiny_run, tiny_bundle):
    out = tmp_path / "RESULTS.md"
    before = RESULTS.read_bytes() if RESULTS.is_file() else None
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", KERAS_BACKEND="tensorflow")
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--run", str(tiny_run), "--bundle", str(tiny_bundle),
         "--out", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]

    text = out.read_text(encoding="utf-8")
    assert "FAILED" not in text
    assert f"python -m bench --smoke --run {tiny_run}" in text  # says which command produced it
    for heading in ("## Decoding speed", "### Goals", "### How far from the hardware",
                    "### Where a decoding step spends its time", "## Training throughput (`model.fit`)",
                    "## Footprint"):
        assert heading in text
    assert "- CPU: " in text and "- Libraries: " in text and "onnxruntime" in text
    assert "keras.io-style loop" in text and "Keras' own layers" in text and "int8" in text
    assert (RESULTS.read_bytes() if RESULTS.is_file() else None) == before  # the full results are untouched


def test_bench_cli_rejects_bundle_without_run(tmp_path):
    result = subprocess.run([sys.executable, "-m", "bench", "--smoke", "--bundle", str(tmp_path)], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "--bundle/--int8-bundle: expected --run too" in result.stderr


def test_machine_description_names_the_widest_vector_extension():
    """Results headers say whether the CPU has AVX-512: same-named machines differed by 3.7x in
    TensorFlow's matmul peak with and without it."""
    from bench.common import cpu_model, vector_extensions

    assert vector_extensions("fpu sse2 avx avx2 fma avx512f avx512bw".split()) == "AVX-512"
    assert vector_extensions("fpu sse2 avx fma avx2".split()) == "AVX2, no AVX-512"
    assert vector_extensions("fpu sse2 avx".split()) == "AVX, no AVX2"
    assert vector_extensions("fp asimd".split()) == ""
    if Path("/proc/cpuinfo").is_file() and " avx2" in Path("/proc/cpuinfo").read_text():
        assert "AVX" in cpu_model()
