"""CTranslate2 on the same weights: greedy token parity and speed, ours ÷ CT2, measured in one run.

    python -m bench --only ctranslate2 [--run DIR] [--also-run DIR ...] [--smoke]
    python -m bench.ctranslate2_compare --run RUN --out CT2_MODEL_DIR      # conversion only

`convert_run` copies a run's Keras weights (model.keras + its two tokenizers) into a CTranslate2
model directory through CTranslate2's spec API (`ctranslate2.specs.TransformerSpec`), float32. The
mapping, checked against the Keras code and CTranslate2's sources (transformer_spec.py,
src/layers/{transformer,attention,common}.cc):

- post-norm (`pre_norm=False`, no final norms) or pre-norm (`norm_first`: final norms), ReLU/GELU;
- embeddings × √d_model (CT2's `scale_embeddings`, applied before the positions are added, as ours);
- positions: our own table (`PositionalEmbedding.positional_encoding`, sin on even and cos on odd
  dimensions, position 0 first) stored as `position_encodings/encodings`: CT2's built-in sinusoid
  is laid out differently ([sin | cos] halves, positions from 1, another frequency step);
- self-attention Q/K/V fused into one linear, cross-attention K/V fused (Keras kernels are (in, out),
  CT2 weights (out, in)); queries scaled by 1/√d_k in both;
- the tied output layer: the target embedding matrix as `projection/weight` plus our separate
  output bias as `projection/bias`;
- layer-norm epsilon 1e-6 (CT2's default with a beta would be 1e-5);
- vocabularies: the tokenizers' id → token strings, [BOS]/[EOS]/[UNK] as CT2's special tokens. The
  source gets [EOS] appended by the caller, as `Translator` does, and CT2 starts decoding from [BOS].

Timing: text in, text out on both sides (our `Translator.translate_batch`, which tokenizes, decodes
and detokenizes; for CT2 the same tokenizer's tokens, `translate_batch`, tokens → ids → our
detokenizer). Same sentences, same thread count (CT2 `intra_threads`, ours `Translator(threads=)`),
CT2 `min_decoding_length=0` and `max_decoding_length` = the model's cap, as ours. Batch 1 is one call
per sentence (each sentence keeps its best time over the passes), batch 32 is one call for all
sentences (`batch_size=32` / `max_batch_size=32`, both sort by length; the best pass counts). Every
pass runs every configuration of both engines, in alternating order, so a burst of load on this
shared machine hits all of them alike. int8: our `--int8` bundle against CT2 `compute_type="int8"`
(weights quantized when the model is loaded). Beam: each engine's default length penalty (both
log-prob / (tokens + 1) ** 1.0 since our switch from GNMT in 2026-12) and α = 0 (raw log-probability sums) on both.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench.common import Context, available_cores, fmt_num, fmt_ratio, markdown_table, pass_fail

GOAL = 1.0  # ours ÷ CT2, sentences/s, every row
GOAL_TWO_THREADS = 1.5  # our batch-1 speed with 2 threads ÷ with 1


@dataclass(frozen=True)
class Sizes:
    single: int  # sentences of the batch-1 rows
    batched: int  # sentences of the batched rows
    batch: int  # the batched rows' batch size
    passes: int  # interleaved timed passes; the best counts
    warm: int  # sentences translated untimed by every configuration first
    beam: int


FULL = Sizes(single=40, batched=128, batch=32, passes=5, warm=3, beam=4)
SMOKE = Sizes(single=3, batched=8, batch=4, passes=1, warm=1, beam=2)


# ------------------------------------------------------------------------------ conversion


def _np(variable) -> np.ndarray:
    from keras import ops

    return np.asarray(ops.convert_to_numpy(variable), dtype=np.float32)


def _set_linear(spec, dense):
    """A Keras Dense (kernel (in, out), bias) into a CT2 LinearSpec (weight (out, in), bias)."""
    spec.weight = np.ascontiguousarray(_np(dense.kernel).T)
    spec.bias = _np(dense.bias)


def _fuse_linear(spec, denses):
    spec.weight = np.ascontiguousarray(np.concatenate([_np(d.kernel).T for d in denses], axis=0))
    spec.bias = np.concatenate([_np(d.bias) for d in denses], axis=0)


def _set_norm(spec, norm):
    spec.gamma = _np(norm.gamma)
    spec.beta = _np(norm.beta)


def _set_ffn(spec, add_norm, feed_forward):
    _set_norm(spec.layer_norm, add_norm.norm)
    _set_linear(spec.linear_0, feed_forward.expand)
    _set_linear(spec.linear_1, feed_forward.contract)


def _set_self_attention(spec, add_norm, attention):
    _set_norm(spec.layer_norm, add_norm.norm)
    _fuse_linear(spec.linear[0], [attention.query_dense, attention.key_dense, attention.value_dense])
    _set_linear(spec.linear[1], attention.output_dense)


def _set_cross_attention(spec, add_norm, attention):
    _set_norm(spec.layer_norm, add_norm.norm)
    _set_linear(spec.linear[0], attention.query_dense)
    _fuse_linear(spec.linear[1], [attention.key_dense, attention.value_dense])
    _set_linear(spec.linear[2], attention.output_dense)


def vocabulary(tokenizer) -> list[str]:
    """id -> token string for every id of a `SubwordTokenizer` (the order CT2's vocabulary needs)."""
    tokens = [tokenizer.tokenizer.id_to_token(i) for i in range(tokenizer.vocab_size)]
    if any(t is None for t in tokens) or len(set(tokens)) != len(tokens):
        raise ValueError("expected a tokenizer with one distinct token string per id")
    return tokens


def build_spec(model, config, source_tokenizer, target_tokenizer):
    """The CTranslate2 `TransformerSpec` holding the Keras model's weights (float32)."""
    from ctranslate2.specs import common_spec, transformer_spec

    from keras_transformer.model import decoder_of, encoder_of

    activation = {"relu": common_spec.Activation.RELU, "gelu": common_spec.Activation.GELU}[config.activation]
    encoder_spec = transformer_spec.TransformerEncoderSpec(config.encoder_layers, config.num_heads,
                                                           pre_norm=config.norm_first, activation=activation)
    decoder_spec = transformer_spec.TransformerDecoderSpec(config.decoder_layers, config.num_heads,
                                                           pre_norm=config.norm_first, activation=activation)
    spec = transformer_spec.TransformerSpec(encoder_spec, decoder_spec)
    encoder, decoder = encoder_of(model), decoder_of(model)

    encoder_spec.embeddings[0].weight = _np(encoder.embedding.embeddings)
    encoder_spec.position_encodings.encodings = np.asarray(encoder.embedding.positional_encoding, np.float32)
    for layer_spec, layer in zip(encoder_spec.layer, encoder.encoder_layers, strict=True):
        _set_self_attention(layer_spec.self_attention, layer.self_attention_norm, layer.self_attention)
        _set_ffn(layer_spec.ffn, layer.feed_forward_norm, layer.feed_forward)
    if config.norm_first:
        _set_norm(encoder_spec.layer_norm, encoder.final_norm)

    target_embeddings = _np(decoder.embedding.embeddings)
    decoder_spec.embeddings.weight = target_embeddings
    decoder_spec.position_encodings.encodings = np.asarray(decoder.embedding.positional_encoding, np.float32)
    for layer_spec, layer in zip(decoder_spec.layer, decoder.decoder_layers, strict=True):
        _set_self_attention(layer_spec.self_attention, layer.self_attention_norm, layer.self_attention)
        _set_cross_attention(layer_spec.attention, layer.cross_attention_norm, layer.cross_attention)
        _set_ffn(layer_spec.ffn, layer.feed_forward_norm, layer.feed_forward)
    if config.norm_first:
        _set_norm(decoder_spec.layer_norm, decoder.final_norm)
    if config.tie_output_embedding:
        decoder_spec.projection.weight = target_embeddings  # (V, D): CT2 computes x @ weightᵀ + bias
        decoder_spec.projection.bias = _np(decoder.output_bias)
    else:
        _set_linear(decoder_spec.projection, decoder.output_projection)

    spec.config.unk_token, spec.config.bos_token, spec.config.eos_token = "[UNK]", "[BOS]", "[EOS]"
    spec.config.decoder_start_token = "[BOS]"
    spec.config.add_source_bos = spec.config.add_source_eos = False  # the caller appends [EOS], as Translator
    spec.config.layer_norm_epsilon = float(config.layer_norm_epsilon)
    spec.register_source_vocabulary(vocabulary(source_tokenizer))
    spec.register_target_vocabulary(vocabulary(target_tokenizer))
    return spec


def convert_run(run_dir, out_dir, force: bool = True, vmap=None) -> Path:
    """Writes run `run_dir` (Keras weights + tokenizers) as a float32 CTranslate2 model at `out_dir`, with the
    vocabulary map file `vmap` (`use_vmap`) when given."""
    from ctranslate2.converters.converter import Converter

    from keras_transformer.run_dir import RunDir

    run = RunDir(run_dir)
    model, config = run.load_model(), run.transformer_config()
    source_tokenizer, target_tokenizer = run.load_tokenizers()
    spec = build_spec(model, config, source_tokenizer, target_tokenizer)

    class _SpecConverter(Converter):
        def _load(self):
            return spec

    _SpecConverter().convert(str(out_dir), force=force, vmap=None if vmap is None else str(vmap))
    return Path(out_dir)


# ------------------------------------------------------------------------------ CT2 engine


class Ct2Engine:
    """A CTranslate2 translator behind the same front end as ours: our tokenizers, [EOS] appended
    to the source, cut to max_source_length, text in and text out."""

    def __init__(self, model_dir, source_tokenizer, target_tokenizer, max_source_length, max_target_length,
                 compute_type="float32", threads=1, use_vmap=False):
        import ctranslate2

        self.translator = ctranslate2.Translator(str(model_dir), device="cpu", compute_type=compute_type,
                                                 inter_threads=1, intra_threads=threads)
        self.source_tokenizer, self.target_tokenizer = source_tokenizer, target_tokenizer
        self.max_source_length, self.max_target_length = max_source_length, max_target_length
        self.target_ids = {token: i for i, token in enumerate(vocabulary(target_tokenizer))}
        self.compute_type, self.threads, self.use_vmap = compute_type, threads, use_vmap

    def translate_batch(self, texts, beam_size=1, batch_size=32, length_penalty=1.0):
        """(texts, token id lists) for `texts`; ids without BOS/EOS, like `Translation.target_ids`."""
        encodings = self.source_tokenizer.tokenizer.encode_batch(list(texts), add_special_tokens=False)
        limit = self.max_source_length - 1
        sources = [encoding.tokens[:limit] + ["[EOS]"] for encoding in encodings]
        results = self.translator.translate_batch(
            sources, max_batch_size=batch_size, beam_size=beam_size, length_penalty=length_penalty,
            max_decoding_length=self.max_target_length, min_decoding_length=0, use_vmap=self.use_vmap)
        ids = [[self.target_ids[token] for token in result.hypotheses[0]] for result in results]
        return self.target_tokenizer.decode_batch(ids), ids


def ours_default_length_penalty() -> float:
    from keras_transformer.serve.decoding_options import DecodingOptions

    return float(DecodingOptions().length_penalty)


def ct2_default_length_penalty() -> float:
    """CT2's own default for `translate_batch(length_penalty=...)` (1.0 in CTranslate2 4.x)."""
    import ctranslate2

    doc = ctranslate2.Translator.translate_batch.__doc__ or ""
    marker = "length_penalty: float = "
    if marker in doc:
        try:
            return float(doc.split(marker, 1)[1].split(",", 1)[0])
        except ValueError:
            pass
    return 1.0


# ------------------------------------------------------------------------------ configurations


@dataclass(frozen=True)
class Config:
    threads: int
    batch: int
    beam: int
    precision: str  # "fp32" | "int8"
    penalty: str  # "-" (greedy), "default", "0"

    @property
    def decoding(self):
        if self.beam == 1:
            return "greedy"
        return f"beam {self.beam}, " + ("α = 0" if self.penalty == "0" else "default length penalty")


@dataclass
class Timing:
    """One engine on one configuration: best times and the outputs of the last pass."""
    batch: int
    best: object = None  # per-sentence list at batch 1, one float otherwise
    ids: list = field(default_factory=list)

    def record(self, seconds, ids):
        if self.batch == 1:
            self.best = seconds if self.best is None else [min(a, b) for a, b in zip(self.best, seconds)]
        else:
            self.best = seconds if self.best is None else min(self.best, seconds)
        self.ids = ids

    @property
    def seconds(self):
        return sum(self.best) if self.batch == 1 else self.best


def configurations(sizes: Sizes) -> list[Config]:
    configs = []
    for batch in (1, sizes.batch):
        for precision in ("fp32", "int8"):
            configs.append(Config(1, batch, 1, precision, "-"))
        for penalty in ("default", "0"):
            for precision in ("fp32", "int8"):
                configs.append(Config(1, batch, sizes.beam, precision, penalty))
    for precision in ("fp32", "int8"):
        configs.append(Config(2, 1, 1, precision, "-"))
    configs.append(Config(2, 1, sizes.beam, "fp32", "default"))
    configs.append(Config(2, 1, sizes.beam, "fp32", "0"))
    return configs


@dataclass
class ModelResult:
    name: str
    description: str
    sentences: str
    single: list[str]
    batched: list[str]
    timings: dict  # (Config, "ours" | "ct2") -> Timing
    parity: dict  # name -> (identical, total)
    conversion_seconds: float


def _time_ours(translator, texts, config: Config, penalty: float):
    from keras_transformer.serve.decoding_options import DecodingOptions

    options = DecodingOptions(beam_size=config.beam, batch_size=config.batch, length_penalty=penalty)
    if config.batch == 1:
        seconds, ids = [], []
        for text in texts:
            started = time.perf_counter()
            result = translator.translate_batch([text], options)[0]
            seconds.append(time.perf_counter() - started)
            ids.append(result.target_ids)
        return seconds, ids
    started = time.perf_counter()
    results = translator.translate_batch(texts, options)
    return time.perf_counter() - started, [r.target_ids for r in results]


def _time_ct2(engine: Ct2Engine, texts, config: Config, penalty: float):
    if config.batch == 1:
        seconds, ids = [], []
        for text in texts:
            started = time.perf_counter()
            ids.append(engine.translate_batch([text], config.beam, 1, penalty)[1][0])
            seconds.append(time.perf_counter() - started)
        return seconds, ids
    started = time.perf_counter()
    _, ids = engine.translate_batch(texts, config.beam, config.batch, penalty)
    return time.perf_counter() - started, ids


def measure_model(name, run_dir, fp32_bundle, int8_bundle, sentences, sentences_description, workdir: Path,
                  sizes: Sizes, log=print) -> ModelResult:
    """Converts `run_dir`, checks greedy parity, times every configuration of both engines."""
    from keras_transformer.run_dir import RunDir
    from keras_transformer.serve import Translator

    started = time.perf_counter()
    ct2_dir = convert_run(run_dir, workdir / f"ct2-{name}")
    conversion_seconds = time.perf_counter() - started
    log(f"[ctranslate2] {name}: converted in {conversion_seconds:.1f}s")
    run = RunDir(run_dir)
    model_config = run.transformer_config()
    source_tokenizer, target_tokenizer = run.load_tokenizers()
    sentences = [s for s in sentences if s.strip()]
    single = sentences[: sizes.single]
    batched = sentences[: sizes.batched]
    warm = sentences[-sizes.warm:] if len(sentences) > sizes.single + sizes.warm else sentences[: sizes.warm]

    configs = configurations(sizes)
    ours, ct2 = {}, {}
    for threads in sorted({c.threads for c in configs}):
        for precision, bundle in (("fp32", fp32_bundle), ("int8", int8_bundle)):
            if any(c.threads == threads and c.precision == precision for c in configs):
                ours[threads, precision] = Translator(bundle, threads=threads)
                ct2[threads, precision] = Ct2Engine(
                    ct2_dir, source_tokenizer, target_tokenizer, model_config.max_source_length,
                    model_config.max_target_length, compute_type="float32" if precision == "fp32" else "int8",
                    threads=threads)
    penalties = {"ours": {"default": ours_default_length_penalty(), "0": 0.0, "-": 0.0},
                 "ct2": {"default": ct2_default_length_penalty(), "0": 0.0, "-": 0.0}}

    def run_one(engine_name, config, texts):
        penalty = penalties[engine_name][config.penalty]
        if engine_name == "ours":
            return _time_ours(ours[config.threads, config.precision], texts, config, penalty)
        return _time_ct2(ct2[config.threads, config.precision], texts, config, penalty)

    for config in configs:  # warm-up: sessions' arenas, CT2's packed weights, tokenizer caches
        for engine_name in ("ours", "ct2"):
            run_one(engine_name, config, warm)
    timings = {(c, e): Timing(c.batch) for c in configs for e in ("ours", "ct2")}
    for number in range(sizes.passes):
        pass_started = time.perf_counter()
        for k, config in enumerate(configs):
            order = ("ours", "ct2") if (number + k) % 2 == 0 else ("ct2", "ours")
            texts = single if config.batch == 1 else batched
            for engine_name in order:
                timings[config, engine_name].record(*run_one(engine_name, config, texts))
        log(f"[ctranslate2] {name}: pass {number + 1}/{sizes.passes} in {time.perf_counter() - pass_started:.0f}s")

    parity = {}
    for config in configs:
        a, b = timings[config, "ours"].ids, timings[config, "ct2"].ids
        parity[config] = (sum(x == y for x, y in zip(a, b, strict=True)), len(a))
    c = model_config
    description = (f"{c.encoder_layers}+{c.decoder_layers} layers, d_model {c.hidden_dim}, {c.num_heads} heads, "
                   f"d_ff {c.intermediate_dim}, vocab {c.source_vocab_size}/{c.target_vocab_size}, "
                   f"{'pre' if c.norm_first else 'post'}-norm")
    return ModelResult(name, description, sentences_description, single, batched, timings, parity,
                       conversion_seconds)


# ------------------------------------------------------------------------------ report


def _speed(result: ModelResult, config: Config, engine: str) -> float:
    timing = result.timings[config, engine]
    texts = result.single if config.batch == 1 else result.batched
    return len(texts) / timing.seconds


def ratio(result: ModelResult, config: Config) -> float:
    return _speed(result, config, "ours") / _speed(result, config, "ct2")


def agreement(result: ModelResult, a: Config, b: Config, engine: str) -> float:
    x, y = result.timings[a, engine].ids, result.timings[b, engine].ids
    return sum(p == q for p, q in zip(x, y, strict=True)) / max(len(x), 1)


def report(results: list[ModelResult], sizes: Sizes) -> str:
    beam = sizes.beam
    lines = ["## CTranslate2 on the same weights (ours ÷ CT2, sentences/s)", "",
             "Each engine translates the same sentences, text in and text out, in the same run, every configuration "
             f"of both engines interleaved in each of {sizes.passes} passes; best pass (batch {sizes.batch}) or "
             "best time per sentence (batch 1, one call per sentence). Ratios > 1: ours is faster. fp32 is compared "
             "with CT2 `float32`, int8 (our `--int8` bundle) with CT2 `int8`. Default length penalty: ours "
             f"α = {ours_default_length_penalty():g}, CT2 `length_penalty={ct2_default_length_penalty():g}`, both "
             "log-prob / (tokens + 1) ** α; α = 0 on both ranks by the raw log-probability sum.", ""]
    columns = [(1, "fp32", "-"), (1, "int8", "-"), (beam, "fp32", "0"), (beam, "int8", "0"),
               (beam, "fp32", "default"), (beam, "int8", "default")]
    header = ["model", "threads", "batch", "greedy fp32", "greedy int8", f"beam {beam} fp32, α = 0",
              f"beam {beam} int8, α = 0", f"beam {beam} fp32, default penalties",
              f"beam {beam} int8, default penalties"]
    rows = []
    for result in results:
        configs = list(dict.fromkeys(c for c, _ in result.timings))
        for threads, batch in dict.fromkeys((c.threads, c.batch) for c in configs):
            cells = []
            for beam_size, precision, penalty in columns:
                match = [c for c in configs if (c.threads, c.batch, c.beam, c.precision, c.penalty) ==
                         (threads, batch, beam_size, precision, penalty)]
                cells.append(fmt_ratio(ratio(result, match[0])) if match else "")
            rows.append([result.name, threads, batch, *cells])
    lines += [markdown_table(header, rows), ""]

    lines += ["### Every configuration", "",
              markdown_table(
                  ["model", "threads", "batch", "decoding", "precision", "ours sent/s", "CT2 sent/s", "ours ÷ CT2",
                   "same tokens as CT2"],
                  [[r.name, c.threads, c.batch, c.decoding, c.precision, fmt_num(_speed(r, c, "ours")),
                    fmt_num(_speed(r, c, "ct2")), fmt_ratio(ratio(r, c)), f"{r.parity[c][0]}/{r.parity[c][1]}"]
                   for r in results for c in dict.fromkeys(c for c, _ in r.timings)]), ""]

    lines += ["### Parity and goals", ""]
    goal_rows = []
    for r in results:
        configs = list(dict.fromkeys(c for c, _ in r.timings))
        greedy = [c for c in configs if c.beam == 1 and c.precision == "fp32"]
        same = sum(r.parity[c][0] for c in greedy)
        total = sum(r.parity[c][1] for c in greedy)
        goal_rows.append([r.name, "greedy fp32 token ids identical to CT2 float32 (all batches, threads)",
                          f"{same}/{total}", pass_fail(same == total)])
        one = [c for c in configs if c.threads == 1]
        below = [c for c in one if ratio(r, c) < GOAL]
        goal_rows.append([r.name, f"every 1-thread row ≥ {GOAL:g}× CT2", f"{len(one) - len(below)}/{len(one)}",
                          pass_fail(not below)])
        for c in configs:
            if c.threads == 2:
                base = [b for b in configs if (b.threads, b.batch, b.beam, b.precision, b.penalty) ==
                        (1, c.batch, c.beam, c.precision, c.penalty)]
                if base:
                    gain = _speed(r, c, "ours") / _speed(r, base[0], "ours")
                    ct2_gain = _speed(r, c, "ct2") / _speed(r, base[0], "ct2")
                    goal_rows.append([r.name, f"2 threads ÷ 1 thread, ours, batch 1, {c.decoding} {c.precision} "
                                      f"(CT2: {fmt_ratio(ct2_gain)})", fmt_ratio(gain),
                                      pass_fail(gain >= GOAL_TWO_THREADS)])
    lines += [markdown_table(["model", "check", "figure", "result"], goal_rows), ""]

    lines += ["### int8 and beam agreement (share of sentences with the same token ids)", ""]
    agree_rows = []
    for r in results:
        configs = list(dict.fromkeys(c for c, _ in r.timings))
        for c in configs:
            if c.threads != 1 or c.precision != "int8":
                continue
            fp32 = [b for b in configs if (b.threads, b.batch, b.beam, b.penalty, b.precision) ==
                    (c.threads, c.batch, c.beam, c.penalty, "fp32")][0]
            agree_rows.append([r.name, c.batch, c.decoding, f"{agreement(r, c, fp32, 'ours'):.0%}",
                               f"{agreement(r, c, fp32, 'ct2'):.0%}"])
        batch_one = [c for c in configs if c.threads == 1 and c.batch == 1]
        for c in batch_one:  # a sentence's translation must not depend on its batch
            other = [b for b in configs if (b.threads, b.beam, b.penalty, b.precision) ==
                     (1, c.beam, c.penalty, c.precision) and b.batch != 1]
            if other:
                n = len(r.single)
                same = sum(x == y for x, y in zip(r.timings[c, "ours"].ids, r.timings[other[0], "ours"].ids[:n]))
                same_ct2 = sum(x == y for x, y in zip(r.timings[c, "ct2"].ids, r.timings[other[0], "ct2"].ids[:n]))
                agree_rows.append([r.name, f"1 vs {other[0].batch}", f"{c.decoding}, {c.precision}: batch-invariance",
                                   f"{same}/{n}", f"{same_ct2}/{n}"])
    lines += [markdown_table(["model", "batch", "what", "ours", "CT2"], agree_rows), ""]
    lines += ["Models and sentences:", ""]
    lines += [f"- {r.name}: {r.description}; {len(r.single)} sentences at batch 1, {len(r.batched)} batched, from "
              f"{r.sentences}; conversion to CTranslate2 {r.conversion_seconds:.1f}s" for r in results]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------ bench entry


def sentences_of_run(run_dir) -> tuple[list[str], str]:
    """Source sentences for a run: its test.tsv, else its validation data, else the demo's held-out sources."""
    from bench.artifacts import _sentences
    from keras_transformer.corpus import read_parallel_corpus
    from keras_transformer.run_dir import RunDir

    run = RunDir(run_dir)
    data = run.read_config().get("data", {})
    if not run.test_path.is_file() and data.get("valid"):
        try:
            pairs = read_parallel_corpus(data["valid"])[0]
            return [s for s, _ in pairs], f"the run's validation data {data['valid']}"
        except (OSError, ValueError):
            pass
    return _sentences(Path(run_dir), None)


def _export(run_dir, out, int8):
    from keras_transformer.export.exporter import export_bundle

    export_bundle(run_dir, out, int8=int8, force=True, log=lambda *a, **k: None)
    return out


def run(ctx: Context) -> str:
    try:
        import ctranslate2
    except ImportError:
        return ("## CTranslate2 on the same weights\n\nSkipped: CTranslate2 is not installed "
                "(`pip install -e '.[bench]'`).\n")
    sizes = SMOKE if ctx.smoke else FULL
    artifacts = ctx.artifacts()
    models = [("demo" if artifacts.trained_here else Path(artifacts.run_dir).name, artifacts.run_dir,
               artifacts.fp32_bundle, artifacts.int8_bundle, artifacts.sentences, artifacts.sentences_description)]
    for k, extra in enumerate(getattr(ctx, "also_runs", None) or []):
        started = time.perf_counter()
        fp32 = _export(extra, ctx.workdir / f"ct2-extra-{k}-fp32", int8=False)
        int8 = _export(extra, ctx.workdir / f"ct2-extra-{k}-int8", int8=True)
        ctx.log(f"[ctranslate2] exported {extra} in {time.perf_counter() - started:.0f}s")
        sentences, description = sentences_of_run(extra)
        models.append((Path(extra).name, Path(extra), fp32, int8, sentences, description))
    results = [measure_model(name, run_dir, fp32, int8, sentences, description, ctx.workdir, sizes, ctx.log)
               for name, run_dir, fp32, int8, sentences, description in models]
    text = report(results, sizes)
    return text + f"\nCTranslate2 {ctranslate2.__version__}; {available_cores()} cores usable.\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ctranslate2_compare",
                                     description="Convert a run directory into a CTranslate2 model directory.")
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    convert_run(args.run, args.out)
    print(json.dumps({"ctranslate2_model": str(args.out)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
