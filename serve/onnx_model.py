"""The two onnxruntime sessions of a bundle, as a `serve.decoding.StepModel`.

`start(source_ids)` runs encoder.onnx once per batch; `step` runs decoder.onnx for one token with
the key/value cache; `select` gathers rows (drops finished sentences, expands beams) and
`reorder_beams` reorders beams within their sentences (moving only the self-attention cache). The decoding
state is a plain dict of numpy arrays keyed by the decoder's input names. When the bundle has
generate.onnx, `graph_search` runs whole searches inside onnxruntime (serve/graph_search.py).
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort

from . import bundle_format as fmt
from .bundle import BundleConfig, check_graph_io
from .heap import retain_freed_heap


DEFAULT_THREADS = 1
# onnxruntime would fuse each Add & Norm (Add, Add, LayerNormalization) into SkipLayerNormalization,
# whose CPU kernel (onnxruntime 1.32) is 1.9-4x slower than the three from 32 rows on: a decoder
# step ran 1.08-1.21x faster without it at 32-128 rows and 1-4% slower at one row
# (bench/RESULTS-speed-changes.md). Names: onnxruntime's optimizer registry.
DISABLED_OPTIMIZERS = ("SkipLayerNormFusion",)


def session_options(threads: int | None = None) -> ort.SessionOptions:
    """Session options; `threads` = intra-op threads, default 1.

    A decoding step is a few dozen small kernels. One thread is the default: bench/RESULTS.md
    measured it 1.26x faster than two at batch 1 on the demo model (2.5-3.6x on a busy machine),
    and HTTP `--workers` (one session each) uses the cores better than threads. With more threads
    the pool's threads spin between kernels (onnxruntime's default) rather than sleep: waking them
    cost a Multi30k-size model's decoder step (d_model 256, one row) 565 µs against 386 µs. 2
    threads then translate single sentences 1.48-1.50x faster than 1 on that model, against
    1.15-1.19x with spinning off (bench/RESULTS-speed-changes.md). The cost: while a translation
    runs, the extra threads busy-wait between kernels.
    """
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


class OnnxStepModel:
    """Encoder and cached decoder step of a bundle. Thread-safe: sessions are shared, state is not."""

    def __init__(self, bundle: BundleConfig, threads: int | None = None, encoder_path=None, decoder_path=None,
                 graph_search: bool = True):
        """`graph_search`: load the bundle's generate.onnx, if it has one, as `self.graph_search`
        (else that is None and every search runs the numpy loop over `step`)."""
        retain_freed_heap()  # the loop's per-step cache tensors reuse heap pages (serve/heap.py)
        options = session_options(threads)
        self.bundle = bundle
        encoder_path = encoder_path or bundle.file(fmt.ENCODER_FILE)
        decoder_path = decoder_path or bundle.file(fmt.DECODER_FILE)
        self.encoder = inference_session(encoder_path, options)
        self.decoder = inference_session(decoder_path, options)
        check_graph_io(encoder_path, self.encoder, bundle.num_layers, fmt.encoder_io_names)
        check_graph_io(decoder_path, self.decoder, bundle.num_layers, fmt.decoder_io_names)
        layers = range(bundle.num_layers)
        self.cross_names = [n for i in layers for n in (fmt.cross_key_name(i), fmt.cross_value_name(i))]
        self.past_names = [n for i in layers for n in (fmt.past_key_name(i), fmt.past_value_name(i))]
        self.present_names = [n for i in layers for n in (fmt.present_key_name(i), fmt.present_value_name(i))]
        self.decoder_outputs = [fmt.LOGITS, *self.present_names]
        self.graph_search = None
        if graph_search and fmt.GENERATE_FILE in bundle.values.get("files", {}):
            from .graph_search import GraphSearch

            self.graph_search = GraphSearch(bundle.file(fmt.GENERATE_FILE), options, bundle.num_layers)

    def encode(self, source_ids: np.ndarray) -> dict:
        """source_ids int32 (B, S) -> {encoder_output: (B, S, D), cross_key_i / cross_value_i: (B, H, S, Dh)}."""
        names = [fmt.ENCODER_OUTPUT, *self.cross_names]
        return dict(zip(names, self.encoder.run(names, {fmt.SOURCE_IDS: source_ids.astype(np.int32)})))

    def start(self, source_ids: np.ndarray) -> dict:
        """The decoding state for a batch: cross K/V, the source mask and empty caches (B, H, 0, Dh)."""
        encoded = self.encode(source_ids)
        empty = np.zeros((source_ids.shape[0], self.bundle.num_heads, 0, self.bundle.head_dim), np.float32)
        state = {name: encoded[name] for name in self.cross_names}
        state.update({name: empty for name in self.past_names})
        state[fmt.SOURCE_MASK] = source_ids != fmt.PAD_ID
        return state

    def step(self, token_ids, position, state):
        feeds = dict(state)
        feeds[fmt.TOKEN_IDS] = np.asarray(token_ids, np.int32).reshape(-1, 1)
        feeds[fmt.POSITION] = np.array(position, np.int32)
        logits, *present = self.decoder.run(self.decoder_outputs, feeds)
        new_state = dict(state)
        new_state.update(zip(self.past_names, present))
        return logits, new_state

    def select(self, state, rows):
        return {name: np.take(value, rows, axis=0) for name, value in state.items()}

    def reorder_beams(self, state, rows):
        """`select` for rows that stay within their sentence: only the per-beam self-attention cache
        moves; the per-sentence cross keys/values and source mask are the same in every beam."""
        moved = dict(state)
        moved.update({name: np.take(state[name], rows, axis=0) for name in self.past_names})
        return moved
