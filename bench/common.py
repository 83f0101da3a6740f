"""What every benchmark shares: the settings of a run (full or smoke), the machine's description,
hardware reference figures measured in the same run (memory bandwidth, matmul peak), timing
statistics and Markdown tables.

Nothing here imports TensorFlow; the model and bundles are prepared lazily by `bench.artifacts`.
"""

from __future__ import annotations

import datetime
import os
import platform
import resource
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import numpy as np

LIBRARIES = ("numpy", "onnxruntime", "tensorflow-cpu", "tensorflow", "keras", "tf2onnx", "onnx", "tokenizers")


# ---------------------------------------------------------------------------------------- settings


@dataclass
class Context:
    """One benchmark run: its options, its scratch directory and what was prepared so far."""
    smoke: bool
    workdir: Path
    run_dir: Path | None = None  # --run, else trained on first use
    fp32_bundle: Path | None = None  # --bundle, else exported on first use
    int8_bundle: Path | None = None  # --int8-bundle, else exported on first use
    threads: int = 1  # the Translator's default
    sentences: str | None = None  # --sentences SPEC: a corpus whose source side is decoded
    also_runs: list = field(default_factory=list)  # --also-run DIR ...: more models (ctranslate2)
    log: object = print
    cache: dict = field(default_factory=dict)  # figures shared between benchmarks (peak, bandwidth)

    def artifacts(self):
        from bench import artifacts

        return artifacts.prepare(self)


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


# ---------------------------------------------------------------------------------------- machine


def cpu_model() -> str:
    """The CPU's name and its widest float vector instructions, e.g. "AMD EPYC (AVX2, no AVX-512)".

    The name alone hides what matters most for these figures: machines of this workplace called
    "AMD EPYC" came both with and without AVX-512, which changed TensorFlow's matmul peak and the
    training speed severalfold (README, Results)."""
    name, flags = None, ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and name is None:
                name = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and not flags:
                flags = line.split(":", 1)[1]
    except OSError:
        pass
    name = name or platform.processor() or platform.machine()
    extensions = vector_extensions(flags.split())
    return f"{name} ({extensions})" if extensions else name


def vector_extensions(flags: list[str]) -> str:
    """/proc/cpuinfo flags -> the widest x86 float vector extension, said so that its absence shows:
    "AVX-512", "AVX2, no AVX-512", "AVX, no AVX2" or "" (no AVX, or not x86)."""
    flags = set(flags)
    if "avx512f" in flags:
        return "AVX-512"
    if "avx2" in flags:
        return "AVX2, no AVX-512"
    if "avx" in flags:
        return "AVX, no AVX2"
    return ""


def total_ram_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return None


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def load_average() -> str:
    try:
        return " / ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def machine_description() -> list[str]:
    """Markdown bullet lines describing the machine and software."""
    ram = total_ram_gib()
    versions = ", ".join(f"{k} {v}" for k, v in library_versions().items())
    return [
        f"- CPU: {cpu_model()}, {available_cores()} cores usable by this process "
        f"({os.cpu_count()} online)",
        f"- RAM: {ram:.1f} GiB" if ram else "- RAM: unknown",
        f"- OS: {platform.platform()}",
        f"- Libraries: {versions}",
        f"- Date: {datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}",
    ]


class CpuContention:
    """How much CPU time other processes took while this run was going (Linux /proc/stat): the
    machine's busy time minus this process' and its finished children's CPU time."""

    def __init__(self):
        self.started = time.perf_counter()
        self.busy, self.own = self._busy(), self._own()

    @staticmethod
    def _busy():
        try:
            fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        except (OSError, ValueError, IndexError):
            return None
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
        return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")  # user..steal, seconds

    @staticmethod
    def _own():
        usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
        return sum(u.ru_utime + u.ru_stime for u in usage)

    def others_share(self) -> float | None:
        """Share of all CPUs' time used by other processes since the start (0..1)."""
        busy = self._busy()
        if busy is None or self.busy is None:
            return None
        lines = Path("/proc/stat").read_text().splitlines()
        cpus = sum(1 for line in lines if line.startswith("cpu") and line[3:4].isdigit())
        elapsed = time.perf_counter() - self.started
        others = (busy - self.busy) - (self._own() - self.own)
        return max(0.0, others / (elapsed * max(cpus, 1)))


# ---------------------------------------------------------------------------------------- hardware


def memory_bandwidth(ctx: Context) -> float:
    """Bytes/s of a numpy copy of a large float32 array (read + write counted), best of several.

    Measured once per run and cached in `ctx.cache`."""
    if "bandwidth" not in ctx.cache:
        size = (16 if ctx.smoke else 64) * 2**20  # float32 elements: 64 or 256 MiB per array
        source = np.ones(size, np.float32)
        target = np.empty_like(source)
        np.copyto(target, source)  # touch the pages first
        best = min(_timed(lambda: np.copyto(target, source)) for _ in range(3 if ctx.smoke else 7))
        ctx.cache["bandwidth"] = 2 * source.nbytes / best
    return ctx.cache["bandwidth"]


def matmul_peak(ctx: Context, again: bool = False) -> float:
    """FLOP/s of numpy float32 n×n @ n×n matmuls (2n³ FLOPs), the best over n = 512, 1024, 2048 and
    several tries each (a shared machine preempts long multi-threaded runs); cached per run.
    `again` measures once more and keeps the better figure."""
    if "matmul_peak" not in ctx.cache or again:
        rng = np.random.default_rng(0)
        for n in ((256, 512) if ctx.smoke else (512, 1024, 2048)):
            a = rng.standard_normal((n, n), dtype=np.float32)
            b = rng.standard_normal((n, n), dtype=np.float32)
            a @ b  # warm-up (thread pool start)
            best = min(_timed(lambda: a @ b) for _ in range(3 if ctx.smoke else 5))
            if 2 * n**3 / best > ctx.cache.get("matmul_peak", 0.0):
                ctx.cache["matmul_peak"], ctx.cache["matmul_n"] = 2 * n**3 / best, n
    return ctx.cache["matmul_peak"]


def tf_matmul_peak(ctx: Context, again: bool = False) -> float:
    """The same measurement with TensorFlow's `tf.linalg.matmul` (oneDNN kernels on CPU, which may use
    wider vector units than numpy's BLAS): the ceiling that TensorFlow training can approach."""
    if "tf_matmul_peak" not in ctx.cache or again:
        import tensorflow as tf

        n = 512 if ctx.smoke else 2048
        ctx.cache["tf_matmul_n"] = n
        rng = np.random.default_rng(0)
        a = tf.constant(rng.standard_normal((n, n), dtype=np.float32))
        b = tf.constant(rng.standard_normal((n, n), dtype=np.float32))
        tf.linalg.matmul(a, b).numpy()  # warm-up
        best = min(_timed(lambda: tf.linalg.matmul(a, b).numpy()) for _ in range(3 if ctx.smoke else 5))
        ctx.cache["tf_matmul_peak"] = max(ctx.cache.get("tf_matmul_peak", 0.0), 2 * n**3 / best)
    return ctx.cache["tf_matmul_peak"]


def _timed(function) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


# ---------------------------------------------------------------------------------------- figures


def percentile(values, q) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) if len(values) else float("nan")


def max_rss_mib() -> float:
    """Peak resident memory of this process (ru_maxrss is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def fmt_num(value, digits=1) -> str:
    """Readable figures: 12,345 / 123 / 12.3 / 1.23 / 0.0123."""
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "—"
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:,.0f}"
    if magnitude >= 100:
        return f"{value:.0f}"
    if magnitude >= 10 or digits == 0:
        return f"{value:.{digits}f}"
    if magnitude >= 0.1:
        return f"{value:.{digits + 1}f}"
    return f"{value:.2g}"


def fmt_ratio(value) -> str:
    return "—" if value is None or not np.isfinite(value) else f"{fmt_num(value)}×"


def markdown_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def pass_fail(ok: bool) -> str:
    return "PASS" if ok else "**FAIL**"
