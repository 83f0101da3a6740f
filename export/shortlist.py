"""`export --shortlist K`: each source token's K likeliest target tokens, estimated from a run's training pairs
with IBM Model 1 (Brown et al., 1993), and the most frequent target tokens (serve/shortlist.py reads them).

IBM Model 1 learns t(target token | source token) by expectation-maximization over the sentence pairs,
each target token aligned to one source token or to NULL: it gives a word's translations rather than the
words that merely co-occur with it (co-occurrence counts favour frequent tokens everywhere). Marian's
lexical shortlists come from the same kind of table (fast_align, an IBM Model 2). The pairs are the run's
own training data (RUN/data, a prepared DATA_DIR, or its SPECs encoded again): for a distilled student
that is the teacher's output, the tokens the student learned to produce. A seeded sample of at most
`MAX_PAIRS` pairs is used, and the work is done a chunk of pairs at a time (memory bounded by the sample).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

DEFAULT_K = 50  # `export --shortlist` without K: candidates per source token (Marian's default too)
# The most frequent target tokens, every sentence's candidates. Marian's default is 50; on 8,000-token
# Multi30k models 50 left half the greedy outputs changed, and 500 is the smallest measured that keeps 95%
# of a distilled student's (experiments/shortlist_coverage.py, bench/RESULTS-edge.md).
DEFAULT_FREQUENT = 500
ITERATIONS = 5  # EM passes; Model 1's likelihood has one maximum and barely moves after a few
MAX_PAIRS = 500_000  # pairs the table is estimated from (a seeded sample beyond)
CHUNK_PAIRS = 2_000  # pairs whose alignment links are expanded at once


@dataclass(frozen=True)
class ShortlistTable:
    """frequent (N,) target ids; table (source vocabulary, K) each source id's likeliest target ids."""

    frequent: np.ndarray
    table: np.ndarray
    target_vocab_size: int

    def record(self, method: str) -> dict:
        """config.json's "shortlist" record (serve/shortlist.py)."""
        return {"file": "shortlist.bin", "k": int(self.table.shape[1]), "frequent": int(len(self.frequent)),
                "source_vocab_size": int(self.table.shape[0]), "target_vocab_size": self.target_vocab_size,
                "dtype": self.dtype.str.replace("<", ""), "method": method}

    @property
    def dtype(self) -> np.dtype:
        return np.dtype("<u2" if self.target_vocab_size <= 1 << 16 else "<u4")

    def save(self, path) -> None:
        np.concatenate([self.frequent, self.table.reshape(-1)]).astype(self.dtype).tofile(path)


def estimate(pairs: Iterable[tuple[np.ndarray, np.ndarray]], source_vocab_size: int, target_vocab_size: int,
             k: int, frequent: int, iterations: int = ITERATIONS) -> ShortlistTable:
    """IBM Model 1 over (source ids, target ids) pairs (tokens only: no BOS/EOS), then each source id's top k.

    `pairs` is read once into compact arrays (the caller bounds it: `MAX_PAIRS`). Source ids never seen
    get the frequent tokens as their candidates.
    """
    sources, targets = [], []
    target_counts = np.zeros(target_vocab_size, np.int64)
    for source, target in pairs:
        sources.append(np.asarray(source, np.int32))
        targets.append(np.asarray(target, np.int32))
        target_counts += np.bincount(targets[-1], minlength=target_vocab_size)
    null = source_vocab_size  # the NULL source token, an extra row
    keys = _link_keys(sources, targets, null, target_vocab_size)  # (links,) sorted unique s * V + t
    prob = np.ones(len(keys))  # t(t | s): uniform to start (the first E-step counts co-occurrences)
    for _ in range(iterations):
        counts = np.zeros(len(keys))
        for start in range(0, len(sources), CHUNK_PAIRS):
            index, position = _links(sources[start:start + CHUNK_PAIRS], targets[start:start + CHUNK_PAIRS], null,
                                     target_vocab_size, keys)
            weight = prob[index]  # (links,) each alignment link's current t(t | s)
            total = np.bincount(position, weights=weight)  # per target position: sum over its source tokens
            counts += np.bincount(index, weights=weight / total[position], minlength=len(keys))  # expected counts
        source_of = keys // target_vocab_size
        prob = counts / np.bincount(source_of, weights=counts, minlength=null + 1)[source_of]
    most_frequent = np.argsort(-target_counts, kind="stable")[:frequent]
    return ShortlistTable(most_frequent.astype(np.int64), _top_k(keys, prob, source_vocab_size, target_vocab_size,
                                                                k, most_frequent), target_vocab_size)


def _link_keys(sources, targets, null, target_vocab_size) -> np.ndarray:
    """Every (source id or NULL, target id) that co-occurs in a pair, as sorted unique s * V + t."""
    parts = []
    for start in range(0, len(sources), CHUNK_PAIRS):
        chunk = [(np.append(s, null).astype(np.int64)[:, None] * target_vocab_size + t[None, :]).reshape(-1)
                 for s, t in zip(sources[start:start + CHUNK_PAIRS], targets[start:start + CHUNK_PAIRS])]
        parts.append(np.unique(np.concatenate(chunk)))
        if len(parts) == 32:  # merge now and then: memory stays near the unique links
            parts = [np.unique(np.concatenate(parts))]
    return np.unique(np.concatenate(parts)) if parts else np.zeros(0, np.int64)


def _links(sources, targets, null, target_vocab_size, keys) -> tuple[np.ndarray, np.ndarray]:
    """For a chunk of pairs, every alignment link (a source token or NULL, a target position): its key's
    index in `keys` and its target position's number within the chunk."""
    index, position, offset = [], [], 0
    for s, t in zip(sources, targets):
        s = np.append(s, null).astype(np.int64)  # (S + 1,)
        index.append((s[:, None] * target_vocab_size + t[None, :]).reshape(-1))  # (S + 1) x T links
        position.append(np.tile(np.arange(offset, offset + len(t)), len(s)))
        offset += len(t)
    if not index:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.searchsorted(keys, np.concatenate(index)), np.concatenate(position)


def _top_k(keys, prob, source_vocab_size, target_vocab_size, k, fallback) -> np.ndarray:
    """(source vocabulary, k): each source id's k likeliest targets, best first; rows with fewer filled
    with `fallback` (the frequent tokens), then EOS."""
    source_of, target_of = keys // target_vocab_size, keys % target_vocab_size
    real = source_of < source_vocab_size  # NULL's row is not a candidate list
    order = np.lexsort((target_of[real], -prob[real], source_of[real]))  # by source, likeliest first
    sources, targets = source_of[real][order], target_of[real][order]
    starts = np.searchsorted(sources, np.arange(source_vocab_size))
    rank = np.arange(len(sources)) - starts[sources]  # 0 for each source's likeliest
    table = np.full((source_vocab_size, k), -1, np.int64)
    keep = rank < k
    table[sources[keep], rank[keep]] = targets[keep]
    filler = np.concatenate([fallback, np.full(k, 2)])[:k]  # EOS (id 2) last
    for row in np.flatnonzero((table < 0).any(axis=1)):
        missing = table[row] < 0
        table[row, missing] = filler[:missing.sum()]
    return table


def training_pairs(run, log=print) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """A run's training pairs as token ids: from its DATA_DIR when it has one (RUN/data, or the one given to
    `train --data DATA_DIR`), else its SPECs read and encoded again; a seeded sample of at most `MAX_PAIRS`
    pairs (each SPEC once, repeats aside)."""
    from keras_transformer.corpus import split_repeat
    from keras_transformer.prepared_data import PreparedData, is_data_dir

    specs = run.read_config().get("data", {}).get("train")
    given = [split_repeat(spec)[0] for spec in ([specs] if isinstance(specs, str) else list(specs or []))]
    data_dir = next((path for path in [run.data_path, *given] if is_data_dir(path)), None)
    if data_dir is not None:
        split = PreparedData.open(data_dir, verify_hashes=False).train
        count = len(split)
        chosen = range(count) if count <= MAX_PAIRS else np.sort(
            np.random.default_rng(0).choice(count, MAX_PAIRS, replace=False))
        log(f"Shortlist: IBM Model 1 on {len(chosen):,} of {count:,} pairs of {data_dir}")
        for i in chosen:
            yield split.pair(int(i))
        return
    yield from _pairs_from_specs(run, log)


def _pairs_from_specs(run, log) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    from keras_transformer.corpus import iter_parallel_corpus, split_repeat

    data = run.read_config().get("data", {})
    specs = data.get("train")
    specs = [specs] if isinstance(specs, str) else list(specs or [])
    if not specs:
        from keras_transformer.serve.errors import OptionError

        raise OptionError(f"{run.config_path}: expected the training data's SPEC to estimate a shortlist, got none")
    source_tokenizer, target_tokenizer = run.load_tokenizers()
    read = 0
    for spec in specs:
        name, _ = split_repeat(spec)
        chunk = []
        for pair in iter_parallel_corpus(name, data.get("source_column"), data.get("target_column"),
                                         data.get("max_pairs")):
            chunk.append(pair)
            read += 1
            if len(chunk) == CHUNK_PAIRS or read >= MAX_PAIRS:
                yield from _encoded(chunk, source_tokenizer, target_tokenizer)
                chunk = []
            if read >= MAX_PAIRS:
                break
        yield from _encoded(chunk, source_tokenizer, target_tokenizer)
    log(f"Shortlist: IBM Model 1 on {read:,} pairs of {', '.join(specs)}")


def _encoded(pairs, source_tokenizer, target_tokenizer):
    sources = source_tokenizer.encode_batch([s for s, _ in pairs]) if pairs else []
    targets = target_tokenizer.encode_batch([t for _, t in pairs]) if pairs else []
    yield from ((np.asarray(s, np.int32), np.asarray(t, np.int32)) for s, t in zip(sources, targets))


def vmap_lines(shortlist: ShortlistTable, source_tokens: list[str], target_tokens: list[str]) -> list[str]:
    """The same candidates as CTranslate2's vocabulary map (`use_vmap`): a first line with no source token
    lists the tokens always allowed (the frequent ones; CTranslate2 adds BOS, EOS and UNK itself, as
    serve/shortlist.py does), then `source token<TAB>its targets`."""
    always = sorted(set(shortlist.frequent.tolist()))
    lines = ["\t" + " ".join(target_tokens[i] for i in always)]
    for source_id, row in enumerate(shortlist.table.tolist()):
        lines.append(source_tokens[source_id] + "\t" + " ".join(target_tokens[i] for i in sorted(set(row))))
    return lines


def add_shortlist(directory, run, model, model_config, opset: int, int8_plan, k: int, frequent: int, sources,
                  log=print) -> dict:
    """Adds shortlist.bin to the bundle being written in `directory` and replaces its decoder.onnx (which
    computes every logit) by one that computes a batch's candidates' logits, from the projection's operands
    that candidates.onnx gathers once per batch (export/hoisting.py); returns config.json's "shortlist"
    record (with the operands' names).

    Checked on `sources` (the parity check's): given no ids (every logit) and given every id (every row
    gathered), the new decoder's greedy tokens are the old one's (else ParityError); the share of greedy
    outputs the shortlist leaves unchanged is recorded."""
    import onnx

    from keras_transformer.serve import bundle_format as fmt
    from keras_transformer.serve.batching import decode_sources
    from keras_transformer.serve.bundle import BundleConfig
    from keras_transformer.serve.decoding_options import DecodingOptions
    from keras_transformer.serve.onnx_model import OnnxStepModel
    from keras_transformer.serve.shortlist import Shortlist

    from .fused_graphs import convert_fused_decoder_step
    from .hoisting import split_per_batch
    from .parity import ParityError

    table = estimate(training_pairs(run, log), model_config.source_vocab_size, model_config.target_vocab_size, k,
                     frequent)
    table.save(directory / fmt.SHORTLIST_FILE)
    record = table.record(f"IBM Model 1 ({ITERATIONS} iterations) on the run's training pairs: each source token's "
                          f"{k} likeliest target tokens, and the {frequent} most frequent target tokens")
    options, cap = DecodingOptions(), model_config.max_target_length
    every = decode_sources(OnnxStepModel(BundleConfig(directory, {"model": model_config.to_dict()})), sources,
                           options, cap)
    decoder = convert_fused_decoder_step(model, opset, plain_cross_attention=int8_plan is not None, shortlist=True)
    onnx.save(decoder, directory / fmt.DECODER_FILE)
    if int8_plan is not None:  # quantized whole, so the gathered rows are the full projection's int8 rows
        from .quantize import quantize_int8

        quantize_int8(directory / fmt.DECODER_FILE, directory / fmt.DECODER_FILE, int8_plan)
    candidates, decoder, operands = split_per_batch(onnx.load(directory / fmt.DECODER_FILE), [fmt.VOCAB_IDS])
    onnx.save(candidates, directory / fmt.CANDIDATES_FILE)
    onnx.save(decoder, directory / fmt.DECODER_FILE)
    record["operands"] = operands
    shortlisted = OnnxStepModel(BundleConfig(directory, {"model": model_config.to_dict(), "shortlist": record}))
    vocabulary = np.arange(model_config.target_vocab_size)
    every_row = Shortlist(vocabulary, np.broadcast_to(vocabulary[:1], (model_config.source_vocab_size, 1)),
                          model_config.target_vocab_size)  # each sentence's candidates: the whole vocabulary
    for label, holding_every_id in (("no ids (the shortlist off)", None), ("every id", every_row)):
        given = decode_sources(shortlisted, sources, options, cap, shortlist=holding_every_id)
        identical = sum(a == b for a, b in zip(given, every))
        if identical != len(sources):
            raise ParityError(f"{fmt.DECODER_FILE} with vocab_ids: given {label}, {len(sources) - identical}/"
                              f"{len(sources)} greedy outputs differ from the decoder without them")
    shortlist = Shortlist.from_file(directory / fmt.SHORTLIST_FILE, record)
    restricted = decode_sources(shortlisted, sources, options, cap, shortlist=shortlist)
    unchanged = sum(a == b for a, b in zip(restricted, every))
    sizes = [len(shortlist.candidates(source)) for source in sources]
    log(f"Shortlist: {k} per source token + {frequent} frequent; {np.mean(sizes):.0f} candidates a sentence on "
        f"average of {model_config.target_vocab_size}; greedy outputs unchanged for {unchanged}/{len(sources)}")
    return {**record, "identical_given_every_id": f"{identical}/{len(sources)}",
            "greedy_unchanged": f"{unchanged}/{len(sources)}", "mean_candidates": float(np.mean(sizes))}
