"""onnxruntime sessions for a bundle's graphs: one place for the options every graph runs with.

One intra-op thread by default: a decoding step is a few dozen small kernels, too small to split
across cores, so more cores pay through more sessions run side by side (replicas), not more threads
per kernel. With more threads the pool's threads spin between kernels, which measured faster than
letting them sleep. onnxruntime's SkipLayerNormalization fusion is turned off: its CPU kernel was
slower than the Add, Add, LayerNormalization it replaces from 32 rows on. Figures:
bench/RESULTS-speed-changes.md.
"""

from __future__ import annotations

import onnxruntime as ort

DEFAULT_THREADS = 1
DISABLED_OPTIMIZERS = ("SkipLayerNormFusion",)  # names from onnxruntime's optimizer registry


def session_options(threads: int | None = None) -> ort.SessionOptions:
    """Session options; `threads` = intra-op threads, default `DEFAULT_THREADS`."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads or DEFAULT_THREADS
    options.inter_op_num_threads = 1
    if options.intra_op_num_threads > 1:  # spin between kernels (onnxruntime's default, said explicitly)
        options.add_session_config_entry("session.intra_op.allow_spinning", "1")
    return options


def inference_session(path, options: ort.SessionOptions) -> ort.InferenceSession:
    """A CPU session of one of the bundle's graphs, with `DISABLED_OPTIMIZERS` off."""
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"],
                                disabled_optimizers=list(DISABLED_OPTIMIZERS))
