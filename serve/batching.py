"""From source id lists to hypotheses, batch by batch: the rules every caller of the decoding loop shares.

- `encode_sources`: the encoder's input is the text's tokens + [EOS], cut to `max_source_length`.
- `pad_batch`: id lists -> one right-padded int32 matrix.
- `search_sources`: sort by source length, pad batches of `batch_size` sentences or tokens, run the model's encoder
  once per batch and the search (numpy loop, or onnxruntime's operator when it gives the same
  tokens), and return the hypotheses in input order.

The Translator, the export's parity checks and the benchmarks all go through these, so a sentence
is decoded the same way wherever it is decoded. Sorting by length only changes padding, which is
masked: a sentence's result never depends on its batch.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from . import bundle_format as fmt
from . import decoding
from .decoding_options import DecodingOptions
from .tokenizer import SubwordTokenizer


def encode_sources(tokenizer: SubwordTokenizer, texts: list[str], max_source_length: int
                   ) -> tuple[list[list[int]], list[int]]:
    """Source ids per text (tokens + [EOS], cut to `max_source_length` with EOS kept), and each
    text's untruncated length (tokens + EOS), so callers can tell which were cut."""
    encoded = tokenizer.encode_batch(texts) if texts else []
    limit = max_source_length - 1  # room for EOS
    return [ids[:limit] + [fmt.EOS_ID] for ids in encoded], [len(ids) + 1 for ids in encoded]


def pad_batch(rows: list[list[int]]) -> np.ndarray:
    """Token id lists -> int32 (B, S) with S the longest row, right-padded with PAD_ID."""
    out = np.full((len(rows), max(len(row) for row in rows)), fmt.PAD_ID, dtype=np.int32)  # (B, S)
    for i, row in enumerate(rows):
        out[i, :len(row)] = row
    return out


def search_sources(model: decoding.StepModel, sources: list[list[int]], options: DecodingOptions,
                   max_target_length: int, progress: Callable[[int], None] | None = None,
                   graph_search=None, shortlist=None) -> list[list[decoding.Hypothesis]]:
    """Each source's `num_hypotheses` best hypotheses, in input order.

    Args:
        model: the cached step model (`start`, `step`, `select`).
        sources: id lists, EOS included (`encode_sources`).
        max_target_length: the model's cap on generated tokens, EOS included.
        progress: called with the number of sentences finished after each batch.
        graph_search: a `serve.graph_search.GraphSearch` to run the whole search in onnxruntime for
            batches of at most its `max_batch` sentences whenever it `handles` these options.
        shortlist: a `serve.shortlist.Shortlist`: each sentence produces only its candidates, and the
            step computes the logits of the batch's candidates only.
    """
    max_length = options.capped_max_length(max_target_length)
    if graph_search is not None and not graph_search.handles(options, max_length):
        graph_search = None
    outputs: list = [[] for _ in sources]
    order = sorted(range(len(sources)), key=lambda j: (len(sources[j]), j))
    for batch in _batches(order, sources, options):
        batch_sources = [sources[j] for j in batch]
        if graph_search is not None and len(batch) <= graph_search.max_batch and (shortlist is None or len(batch) == 1):
            vocab_ids = None if shortlist is None else shortlist.candidates(batch_sources[0])
            found = graph_search.search(pad_batch(batch_sources), max_length, options, vocab_ids)
        elif shortlist is not None:
            vocab_ids, allowed = shortlist.for_batch(batch_sources)
            state = model.start(pad_batch(batch_sources), shortlist=(vocab_ids, allowed))
            found = decoding.search(model, state, len(batch), fmt.BOS_ID, fmt.EOS_ID, max_length, options,
                                    sampling_generators(batch_sources, options), vocab_ids)
        else:
            state = model.start(pad_batch(batch_sources))
            found = decoding.search(model, state, len(batch), fmt.BOS_ID, fmt.EOS_ID, max_length, options,
                                    sampling_generators(batch_sources, options))
        for j, hypotheses in zip(batch, found, strict=True):
            outputs[j] = hypotheses
        if progress is not None:
            progress(len(batch))
    return outputs


def _batches(order: list[int], sources: list[list[int]], options: DecodingOptions):
    """The sources in `order` (shortest first) cut into batches of `batch_size` sentences, or with
    batch_type "tokens" of at most `batch_size` padded tokens (sentences x longest; at least one sentence)."""
    if options.batch_type == "examples":
        yield from (order[start:start + options.batch_size] for start in range(0, len(order), options.batch_size))
        return
    batch: list[int] = []
    for j in order:
        if batch and (len(batch) + 1) * len(sources[j]) > options.batch_size:  # sorted: j is the longest
            yield batch
            batch = []
        batch.append(j)
    if batch:
        yield batch


def decode_sources(model: decoding.StepModel, sources: list[list[int]], options: DecodingOptions,
                   max_target_length: int, graph_search=None, shortlist=None) -> list[list[int]]:
    """The best hypothesis' token ids (no BOS/EOS) per source, in input order (parity checks use it)."""
    found = search_sources(model, sources, options, max_target_length, graph_search=graph_search,
                           shortlist=shortlist)
    return [hypotheses[0].tokens for hypotheses in found]


def sampling_generators(sources: list[list[int]], options: DecodingOptions) -> list | None:
    """One random generator per sentence when sampling: seeded with (seed, its source ids), so that
    a sentence's draws depend neither on its batch nor on its place in it; unseeded without a seed."""
    if not options.samples:
        return None
    if options.seed is None:
        return [np.random.default_rng() for _ in sources]
    return [np.random.default_rng([options.seed, *source]) for source in sources]
