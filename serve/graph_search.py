"""Greedy and beam search inside onnxruntime: one `session.run` of generate.onnx per batch.

generate.onnx (built by `export/generation_graph.py` from the bundle's encoder.onnx and
decoder.onnx) is one onnxruntime `BeamSearch` node: the loop, the cache reordering and the
hypothesis bookkeeping of `serve/decoding.py` run in C++ instead of numpy, with the same graphs
computing each step. It is used only where its search is exactly `decoding.search` (`handles`):
greedy or beam search with patience 1, without sampling, penalties or n-gram bans (the operator's
own forms of those differ from ours). Both rank by log-prob / length ** length_penalty with the
same lengths; the operator sums in float32.

The Translator sends it one sentence at a time (`MAX_BATCH`): the operator computes every row of
a batch until its last sentence ends, while the numpy loop drops finished sentences, so for larger
batches the numpy loop is faster (bench/RESULTS-graph-search.md). Correct at any batch size.
"""

from __future__ import annotations

import math

import numpy as np
import onnxruntime as ort

from . import bundle_format as fmt
from .bundle import check_graph_io
from .decoding import Hypothesis, length_penalty_term
from .decoding_options import DecodingOptions
from .sessions import inference_session


MAX_BATCH = 1  # sentences per batch sent to the operator (see the module docstring)


class GraphSearch:
    """An onnxruntime session of generate.onnx. Thread-safe (onnxruntime sessions are)."""

    def __init__(self, path, options: ort.SessionOptions, decoder_layers: int, max_batch: int = MAX_BATCH,
                 shortlist: bool = False):
        self.session = inference_session(path, options)
        self.max_batch = max_batch  # the Translator uses the numpy loop for larger batches
        self.shortlisted = shortlist  # generate.onnx then takes vocab_ids, one sentence's candidates
        self.every_id = np.zeros(0, np.int32)  # no ids: every logit (the shortlist off)
        check_graph_io(path, self.session, decoder_layers, lambda layers: fmt.generate_io_names(layers, shortlist))

    @staticmethod
    def handles(options: DecodingOptions, max_length: int) -> bool:
        """True when the operator's search is exactly `decoding.search` with these options.

        max_length 1 is left to the numpy loop: onnxruntime 1.32's BeamSearch then runs a decoder
        step on uninitialized token ids (its loop assumes a second token)."""
        return not options.samples and not options.changes_logits and options.patience == 1.0 and max_length >= 2

    def search(self, source_ids: np.ndarray, max_length: int, options: DecodingOptions,
               vocab_ids: np.ndarray | None = None) -> list[list[Hypothesis]]:
        """source_ids int32 (B, S), PAD-padded -> per sentence its `num_hypotheses` best, best first
        (as `decoding.search`; log-probabilities are summed in float32 here, in float64 there). With a
        shortlist bundle, `vocab_ids` int32 (C,) are the batch's candidates (`Shortlist.candidates`: the
        operator has no per-row mask, so the Translator sends one sentence a call); None: every id."""
        if not self.handles(options, max_length):
            raise ValueError("GraphSearch: these settings need the numpy decoding loop (see GraphSearch.handles)")
        feeds = {}
        if self.shortlisted:
            feeds[fmt.VOCAB_IDS] = self.every_id if vocab_ids is None else np.asarray(vocab_ids, np.int32)
        sequences, scores = self.session.run(None, {**feeds,
            fmt.SOURCE_IDS: np.ascontiguousarray(source_ids, dtype=np.int32),
            fmt.GENERATE_MAX_LENGTH: np.array([max_length + 1], np.int32),  # BOS counts
            fmt.GENERATE_NUM_BEAMS: np.array([options.beam_size], np.int32),
            fmt.GENERATE_NUM_RETURN: np.array([options.num_hypotheses], np.int32),
            fmt.GENERATE_LENGTH_PENALTY: np.array([options.length_penalty], np.float32),
        })  # (B, N, T) int32, (B, N) float32
        greedy_without_scores = options.beam_size == 1 and not options.return_scores
        found = []
        for rows, row_scores in zip(sequences[:, :, 1:], scores):
            hypotheses = []
            for tokens, score in zip(rows.tolist(), row_scores.tolist()):  # scores: log-prob / length ** alpha
                tokens = tokens[:tokens.index(fmt.EOS_ID)] if fmt.EOS_ID in tokens else tokens
                if greedy_without_scores:
                    hypotheses.append(Hypothesis(tokens, math.nan, math.nan))
                    continue
                term = length_penalty_term(len(tokens) + 1, options.length_penalty)  # the operator's length
                hypotheses.append(Hypothesis(tokens, score, score * term))
            found.append(hypotheses)
        return found
