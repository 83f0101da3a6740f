"""Greedy and beam search inside onnxruntime: one `session.run` of generate.onnx per batch.

generate.onnx (built by `export/generation_graph.py` from the bundle's encoder.onnx and
decoder.onnx) is one onnxruntime `BeamSearch` node: the loop, the cache reordering and the
hypothesis bookkeeping of `serve/decoding.py` run in C++ instead of numpy, with the same graphs
computing each step. Its search equals `decoding.search` whenever `handles(settings)`: greedy or
beam search with patience 1 (the operator stops a sentence once beam_size hypotheses finished),
without sampling, repetition penalty or n-gram bans (the operator has its own forms of these two,
not the same as ours); the Translator falls back to the numpy loop otherwise. Both rank by
log-prob / length ** length_penalty with the same lengths; the operator sums in float32.

The Translator sends it batches of at most `max_batch` sentences (default 1). The operator keeps
computing every row of a batch until its last sentence ends, while the numpy loop drops finished
sentences; where lengths differ, that lost more than the operator saves: on a Multi30k-size model
(3+3 layers, vocabulary 8000) 16 sentences in one batch ran 0.45-0.52x as fast as the numpy loop,
one sentence at a time 1.08-1.56x faster (bench/RESULTS-graph-search.md). Correct at any batch size.
On the demo model, one sentence per call, text in and text out: greedy 1.24x and 4-beam search
1.78x faster than the numpy loop (int8: 1.24x and 2.10x), identical tokens.
"""

from __future__ import annotations

import math

import numpy as np
import onnxruntime as ort

from . import bundle_format as fmt
from .bundle import check_graph_io
from .decoding import Hypothesis, SearchSettings, length_penalty_term
from .onnx_model import inference_session


MAX_BATCH = 1  # sentences per batch the Translator sends to the operator (see the module docstring)


class GraphSearch:
    """An onnxruntime session of generate.onnx. Thread-safe (onnxruntime sessions are)."""

    def __init__(self, path, options: ort.SessionOptions, num_layers: int, max_batch: int = MAX_BATCH):
        self.session = inference_session(path, options)
        self.max_batch = max_batch  # the Translator uses the numpy loop for larger batches
        check_graph_io(path, self.session, num_layers, fmt.generate_io_names)

    @staticmethod
    def handles(settings: SearchSettings, max_length: int) -> bool:
        """True when the operator's search is exactly `decoding.search` with these settings.

        max_length 1 is left to the numpy loop: onnxruntime 1.32's BeamSearch then runs a decoder
        step on uninitialized token ids (its loop assumes a second token)."""
        logits = settings.logits
        return (not logits.samples and not logits.changes_logits and settings.patience == 1.0
                and max_length >= 2)

    def search(self, source_ids: np.ndarray, max_length: int, settings: SearchSettings) -> list[list[Hypothesis]]:
        """source_ids int32 (B, S), PAD-padded -> per sentence its `num_hypotheses` best, best first
        (as `decoding.search`; log-probabilities are summed in float32 here, in float64 there)."""
        if not self.handles(settings, max_length):
            raise ValueError("GraphSearch: these settings need the numpy decoding loop (see GraphSearch.handles)")
        sequences, scores = self.session.run(None, {
            fmt.SOURCE_IDS: np.ascontiguousarray(source_ids, dtype=np.int32),
            fmt.GENERATE_MAX_LENGTH: np.array([max_length + 1], np.int32),  # BOS counts
            fmt.GENERATE_NUM_BEAMS: np.array([settings.beam_size], np.int32),
            fmt.GENERATE_NUM_RETURN: np.array([settings.num_hypotheses], np.int32),
            fmt.GENERATE_LENGTH_PENALTY: np.array([settings.length_penalty], np.float32),
        })  # (B, N, T) int32, (B, N) float32
        greedy_without_scores = settings.beam_size == 1 and not settings.return_scores
        found = []
        for rows, row_scores in zip(sequences[:, :, 1:], scores):
            hypotheses = []
            for tokens, score in zip(rows.tolist(), row_scores.tolist()):  # scores: log-prob / length ** alpha
                tokens = tokens[:tokens.index(fmt.EOS_ID)] if fmt.EOS_ID in tokens else tokens
                if greedy_without_scores:
                    hypotheses.append(Hypothesis(tokens, math.nan, math.nan))
                    continue
                term = length_penalty_term(len(tokens) + 1, settings.length_penalty)  # the operator's length
                hypotheses.append(Hypothesis(tokens, score, score * term))
            found.append(hypotheses)
        return found
