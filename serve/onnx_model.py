"""The two onnxruntime sessions of a bundle, as a `serve.decoding.StepModel`.

`start(source_ids)` runs encoder.onnx once per batch; `step` runs decoder.onnx for one token with
the key/value cache; `select` gathers rows (drops finished sentences, expands beams) and
`reorder_beams` reorders beams within their sentences (moving only the self-attention cache). The decoding
state is a plain dict of numpy arrays keyed by the decoder's input names. With a shortlist bundle the step
computes the logits of the batch's candidate ids only (`vocab_ids`: the columns, kept whole by `select`),
from the output projection's operands that candidates.onnx gathers for them once per batch; as sentences
end, only the candidates some remaining row may produce are gathered again and computed (`LIVE`). Each row
masks the candidates that are not its own sentence's (`ALLOWED`, per row like the rest). (A bundle's
generate.onnx, whole searches inside onnxruntime, is `serve/graph_search.py`'s; the `Translator` holds both.)
"""

from __future__ import annotations

import numpy as np

from . import bundle_format as fmt
from .bundle import BundleConfig, check_graph_io
from .sessions import inference_session, session_options


ALLOWED = "shortlist_allowed"  # state, not a graph input: bool (B, C), the candidates each row may produce
LIVE = "shortlist_live"  # state, not a graph input: (columns (C',) some live row may still produce, their operands)


class OnnxStepModel:
    """Encoder and cached decoder step of a bundle. Thread-safe: sessions are shared, state is not."""

    def __init__(self, bundle: BundleConfig, threads: int | None = None, encoder_path=None, decoder_path=None):
        options = session_options(threads)
        self.bundle = bundle
        encoder_path = encoder_path or bundle.file(fmt.ENCODER_FILE)
        decoder_path = decoder_path or bundle.file(fmt.DECODER_FILE)
        self.encoder = inference_session(encoder_path, options)
        self.decoder = inference_session(decoder_path, options)
        check_graph_io(encoder_path, self.encoder, bundle.decoder_layers, fmt.encoder_io_names)
        self.shortlisted = bool(bundle.shortlist)  # the decoder then takes candidates.onnx's operands
        self.operands = bundle.shortlist_operands
        check_graph_io(decoder_path, self.decoder, bundle.decoder_layers,
                       lambda layers: fmt.decoder_io_names(layers, self.operands))
        self.every_id = np.zeros(0, np.int32)  # a shortlist decoder given no ids computes every logit
        self.per_batch = {fmt.VOCAB_IDS, LIVE, *self.operands}  # state that `select` keeps whole
        if self.shortlisted:
            candidates_path = bundle.file(fmt.CANDIDATES_FILE)
            self.candidates = inference_session(candidates_path, options)
            check_graph_io(candidates_path, self.candidates, bundle.decoder_layers,
                           lambda _: fmt.candidates_io_names(self.operands))
            self.every_logit = self.projection(self.every_id)
        layers = range(bundle.decoder_layers)
        self.cross_names = [n for i in layers for n in (fmt.cross_key_name(i), fmt.cross_value_name(i))]
        self.past_names = [n for i in layers for n in (fmt.past_key_name(i), fmt.past_value_name(i))]
        self.present_names = [n for i in layers for n in (fmt.present_key_name(i), fmt.present_value_name(i))]
        self.decoder_outputs = [fmt.LOGITS, *self.present_names]

    def encode(self, source_ids: np.ndarray) -> dict:
        """source_ids int32 (B, S) -> {encoder_output: (B, S, D), cross_key_i / cross_value_i: (B, H, S, Dh)}."""
        names = [fmt.ENCODER_OUTPUT, *self.cross_names]
        return dict(zip(names, self.encoder.run(names, {fmt.SOURCE_IDS: source_ids.astype(np.int32)})))

    def projection(self, vocab_ids: np.ndarray) -> dict:
        """candidates.onnx: vocab_ids int32 (C,) -> {operand name: array}, the output projection's operands for
        those ids (their rows, gathered once per batch), which the step takes; no ids: every logit."""
        return dict(zip(self.operands, self.candidates.run(self.operands, {fmt.VOCAB_IDS: vocab_ids})))

    def start(self, source_ids: np.ndarray, shortlist: tuple[np.ndarray, np.ndarray] | None = None) -> dict:
        """The decoding state for a batch: cross K/V, the source mask and empty caches (B, H, 0, Dh); with a
        shortlist (`Shortlist.for_batch`: vocab_ids (C,), allowed (B, C)) the logits are those ids'."""
        encoded = self.encode(source_ids)
        empty = np.zeros((source_ids.shape[0], self.bundle.num_heads, 0, self.bundle.head_dim), np.float32)
        state = {name: encoded[name] for name in self.cross_names}
        state.update({name: empty for name in self.past_names})
        state[fmt.SOURCE_MASK] = source_ids != fmt.PAD_ID
        if shortlist is not None:
            state[fmt.VOCAB_IDS], state[ALLOWED] = shortlist
            state.update(self.projection(state[fmt.VOCAB_IDS]))
        elif self.shortlisted:  # a shortlist bundle asked for every id (use_shortlist=False)
            state[fmt.VOCAB_IDS] = self.every_id
            state.update(self.every_logit)
        return state

    def step(self, token_ids, position, state):
        feeds = {name: value for name, value in state.items() if name not in (ALLOWED, LIVE, fmt.VOCAB_IDS)}
        feeds[fmt.TOKEN_IDS] = np.asarray(token_ids, np.int32).reshape(-1, 1)
        feeds[fmt.POSITION] = np.array(position, np.int32)
        live = state.get(LIVE)
        if live is not None:  # the operands of the candidates the rows still decoding may produce (`select`)
            feeds.update(live[1])
        logits, *present = self.decoder.run(self.decoder_outputs, feeds)
        if live is not None:  # (B, C') -> (B, C), the columns the decoding loop knows
            computed, logits = logits, np.full((len(logits), len(state[fmt.VOCAB_IDS])), -np.inf, np.float32)
            logits[:, live[0]] = computed
        if ALLOWED in state:
            logits = np.where(state[ALLOWED], logits, np.float32(-np.inf))  # (B, C): only the row's own candidates
        new_state = dict(state)
        new_state.update(zip(self.past_names, present))
        return logits, new_state

    def select(self, state, rows):
        """The state of rows `rows` (sentences dropped, beams expanded). With a shortlist the logits' columns
        stay the batch's, but the step computes only those some remaining row may produce (`LIVE`): as
        sentences end the batch's union of candidates shrinks, and candidates.onnx gathers those rows again
        (only when it shrank: one run per change, not per step)."""
        selected = {name: value if name in self.per_batch else np.take(value, rows, axis=0)
                    for name, value in state.items()}
        if ALLOWED in selected:
            live = np.flatnonzero(selected[ALLOWED].any(axis=0))
            before = state.get(LIVE)
            if len(live) == len(state[fmt.VOCAB_IDS]):
                selected[LIVE] = None
            elif before is None or len(before[0]) != len(live):  # rows only leave, so the same size = the same set
                selected[LIVE] = (live, self.projection(state[fmt.VOCAB_IDS][live]))
        return selected

    def reorder_beams(self, state, rows):
        """`select` for rows that stay within their sentence: only the per-beam self-attention cache
        moves; the per-sentence cross keys/values and source mask are the same in every beam."""
        moved = dict(state)
        moved.update({name: np.take(state[name], rows, axis=0) for name in self.past_names})
        return moved
