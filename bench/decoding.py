"""Decoding speed: onnxruntime (`serve.Translator`) against two Keras decoding loops, same model,
same sentences, same run.

Rows (every row goes from texts to texts: tokenize, decode, detokenize):
- ORT fp32 / int8, greedy and beam 4, at batch 1 (one `translate([text])` call per sentence) and
  at batch 32 (one `translate(texts, batch_size=32)` call; latency per batch from `progress`);
- keras.io-style: the keras.io NMT example's `decode_sequence`, eager: the full model re-run on
  the growing prefix for each token, argmax of the last position (few sentences: it is slow);
- compiled Keras: `KerasStepModel` (the decoder's cached step under `tf.function`) driven by the
  same `serve.decoding.greedy_decode` loop; batch 32 sorts by length like `Translator` does.

Speed-ups in the main table are tokens/s ratios; the goals use time ratios on the very same
sentences. "Identical" compares token ids with the ORT fp32 greedy batch-32 outputs.
Then the hardware bound (decoder weights streamed from memory once per step) and a profile of
where a decoding step spends its time.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from bench.common import (available_cores, Context, fmt_num, fmt_ratio, markdown_table, matmul_peak, memory_bandwidth,
                          pass_fail, percentile)

GOAL_VS_KERAS_IO = 100.0
GOAL_VS_COMPILED = 10.0
GOAL_INT8 = 1.5


@dataclass(frozen=True)
class Sizes:
    batch: int  # the "batch 32" rows
    batched: int  # sentences for the batched rows
    single: int  # sentences for the batch-1 rows
    keras_io: int  # sentences for the keras.io-style loop (slow)
    profiled: int  # sentences for the profile
    warmup: int  # sentences decoded untimed by each engine first (other ones than the timed)
    repeats: int  # timed passes; the best one counts
    keras_io_repeats: int


FULL = Sizes(batch=32, batched=200, single=50, keras_io=10, profiled=20, warmup=4, repeats=5, keras_io_repeats=3)
SMOKE = Sizes(batch=4, batched=8, single=3, keras_io=2, profiled=2, warmup=1, repeats=1, keras_io_repeats=1)


@dataclass
class Row:
    name: str
    batch: int
    beam: int
    seconds: float  # wall time for all its sentences
    latencies: list[float]  # per batch, or per sentence at batch 1
    outputs: list[list[int]]  # token ids per sentence, input order, without BOS/EOS
    tokens: int  # generated tokens, EOS included
    latency_per_sentence: list[float] = field(default_factory=list)  # batch 1 only

    @property
    def sentences(self):
        return len(self.outputs)

    @property
    def tokens_per_second(self):
        return self.tokens / self.seconds

    @property
    def sentences_per_second(self):
        return self.sentences / self.seconds


def count_tokens(outputs, max_length) -> int:
    """Generated tokens: each output plus its EOS, unless it stopped at max_length without one."""
    return sum(min(len(ids) + 1, max_length) for ids in outputs)


# ------------------------------------------------------------------------------------ ORT rows


class Job:
    """One row's timing: `translate(texts, on_batch) -> token ids per text`, used as a caller would:
    at batch 1 one call per sentence (each sentence keeps its best time over the passes), at larger
    batches one call for all sentences (the best call counts; latency per batch from `on_batch`).

    Passes of all rows are interleaved (`run_passes`), so a burst of load from other processes
    hits every engine alike; best-of filters out preemption."""

    def __init__(self, name, batch, beam, translate, texts, max_length, repeats, warm=()):
        self.name, self.batch, self.beam, self.texts = name, batch, beam, list(texts)
        self.translate, self.max_length, self.repeats, self.passes = translate, max_length, repeats, 0
        if warm:
            _warm_up(translate, warm, batch)
        self.best = [float("inf")] * len(self.texts) if batch == 1 else float("inf")
        self.latencies, self.outputs = [], [None] * len(self.texts)

    def run_pass(self):
        if self.passes >= self.repeats:
            return
        self.passes += 1
        if self.batch == 1:
            for i, text in enumerate(self.texts):
                started = time.perf_counter()
                self.outputs[i] = self.translate([text], None)[0]
                self.best[i] = min(self.best[i], time.perf_counter() - started)
            return
        stamps = []
        started = time.perf_counter()
        outputs = self.translate(self.texts, lambda: stamps.append(time.perf_counter()))
        seconds = time.perf_counter() - started
        if seconds < self.best:
            self.best, self.latencies, self.outputs = seconds, list(np.diff([started] + stamps)), outputs

    def row(self) -> Row:
        single = self.batch == 1
        seconds, latencies = (sum(self.best), self.best) if single else (self.best, self.latencies)
        return Row(self.name, self.batch, self.beam, seconds, latencies, self.outputs,
                   count_tokens(self.outputs, self.max_length), latencies if single else [])


def run_passes(jobs, rounds):
    for _ in range(rounds):
        for job in jobs:
            job.run_pass()
    return [job.row() for job in jobs]


def translator_job(name, translator, texts, batch, beam, max_length, repeats, warm=()) -> Job:
    """`Translator.translate_batch` (text in, text out; the token ids are kept for the comparisons)
    at this batch size and beam, over whichever step model the translator has; `warm` texts are
    translated the same way first."""
    from keras_transformer.serve.decoding_options import DecodingOptions

    options = DecodingOptions(beam_size=beam, batch_size=batch)

    def translate(batch_texts, on_batch):
        progress = None if on_batch is None else (lambda n: on_batch())
        return [result.target_ids for result in translator.translate_batch(batch_texts, options, progress=progress)]

    return Job(name, batch, beam, translate, texts, max_length, repeats, warm)


def _warm_up(translate, warm, batch):
    if batch == 1:
        for text in warm:
            translate([text], None)
    else:
        translate(list(warm), None)


# ------------------------------------------------------------------------------------ Keras rows


def keras_compiled_job(translator, texts, batch, max_length, repeats, warm=()) -> Job:
    return translator_job("Keras, tf.function cached step", translator, texts, batch, 1, max_length, repeats, warm)


def _tracing_count(step_model) -> int:
    return sum(function.experimental_get_tracing_count() for function in (step_model._encode, step_model._step))


def keras_io_translate(model, source_tokenizer, target_tokenizer, text, max_length, max_source_length):
    """The keras.io NMT example's `decode_sequence`: for each new token, run the whole model
    (encoder included) eagerly on the source and the prefix so far; take the last position's argmax."""
    import keras

    from keras_transformer.serve.bundle_format import BOS_ID, EOS_ID

    source = np.array([source_tokenizer.encode(text)[:max_source_length - 1] + [EOS_ID]], np.int32)  # (1, S)
    prefix = [BOS_ID]
    for _ in range(max_length):
        logits = model({"source_ids": source, "target_ids": np.array([prefix], np.int32)}, training=False)
        token = int(np.argmax(keras.ops.convert_to_numpy(logits)[0, -1]))  # (1, T, V) -> last position
        if token == EOS_ID:
            break
        prefix.append(token)
    target_tokenizer.decode(prefix[1:])
    return prefix[1:]


def keras_io_job(model, tokenizers, texts, max_length, max_source_length, repeats, warm=()) -> Job:
    def translate(batch_texts, on_batch):
        return [keras_io_translate(model, *tokenizers, batch_texts[0], max_length, max_source_length)]

    return Job("keras.io-style loop (eager, full model per token)", 1, 1, translate, texts, max_length, repeats,
               warm)


# ------------------------------------------------------------------------------------ bound & profile


def streamed_weights(onnx_path) -> tuple[int, int]:
    """(bytes, 2-D elements) of the weights a decoding step reads whole, whatever their type (fp32 or
    int8): every initializer but embedding tables that only a Gather uses (a Gather reads one row per
    token; a tied output projection is a separate, transposed copy). Each 2-D element is 2 matmul
    FLOPs per decoded token (the int8 graphs' (K, N) weights count alike)."""
    import onnx
    from onnx import helper

    graph = onnx.load(str(onnx_path)).graph
    read_whole = {name for node in graph.node if node.op_type != "Gather" for name in node.input}
    weights = [tensor for tensor in graph.initializer if tensor.name in read_whole]
    size = sum(int(np.prod(t.dims, dtype=np.int64)) * np.dtype(helper.tensor_dtype_to_np_dtype(t.data_type)).itemsize
               for t in weights)
    return size, sum(int(np.prod(t.dims)) for t in weights if len(t.dims) == 2)


class TimedSession:
    """Wraps an onnxruntime session: counts `run` calls and the seconds spent inside them."""

    def __init__(self, session):
        self.session = session
        self.calls = 0
        self.seconds = 0.0

    def run(self, *args, **kwargs):
        started = time.perf_counter()
        try:
            return self.session.run(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - started
            self.calls += 1

    def __getattr__(self, name):
        return getattr(self.session, name)


def step_split(bundle, texts, threads, repeats):
    """Per-sentence translate() calls at batch 1, split into encoder runs, decoder runs and the rest
    (the best of `repeats` passes)."""
    from keras_transformer.serve import Translator

    translator = Translator(bundle, threads=threads, graph_search=False)  # the numpy loop: it times each step
    translator.translate(texts[:2])  # warm-up
    encoder = translator.model.encoder = TimedSession(translator.model.encoder)
    decoder = translator.model.decoder = TimedSession(translator.model.decoder)
    best = None
    for _ in range(repeats):
        encoder.calls = decoder.calls = 0
        encoder.seconds = decoder.seconds = 0.0
        started = time.perf_counter()
        for text in texts:
            translator.translate([text], batch_size=1)
        total = time.perf_counter() - started
        if best is None or total < best["total"]:
            best = {"total": total, "sentences": len(texts), "steps": decoder.calls, "decoder": decoder.seconds,
                    "encoder": encoder.seconds, "other": total - decoder.seconds - encoder.seconds}
    return best


def ort_profile(bundle, texts, threads, prefix):
    """onnxruntime's own profile of decoder.onnx over per-sentence translations: time per op type."""
    import onnxruntime as ort

    from keras_transformer.serve import Translator
    from keras_transformer.serve import bundle_format as fmt
    from keras_transformer.serve.onnx_model import session_options

    translator = Translator(bundle, threads=threads, graph_search=False)
    options = session_options(threads)
    options.enable_profiling = True
    options.profile_file_prefix = str(prefix)
    session = ort.InferenceSession(str(translator.bundle.file(fmt.DECODER_FILE)), options,
                                   providers=["CPUExecutionProvider"])
    counter = translator.model.decoder = TimedSession(session)
    translator.translate(texts[:1])  # warm-up: its runs are left out below
    warmup_runs = counter.calls
    for text in texts:
        translator.translate([text], batch_size=1)
    path = session.end_profiling()
    with open(path, encoding="utf-8") as f:
        events = json.load(f)
    runs = sorted((e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"),
                  key=lambda e: e["ts"])[warmup_runs:]
    start_ts = runs[0]["ts"] if runs else 0
    per_op = defaultdict(lambda: [0, 0.0])  # op type -> [kernel calls, µs]
    for event in events:
        if event.get("cat") == "Node" and event.get("name", "").endswith("_kernel_time") and event["ts"] >= start_ts:
            op = event.get("args", {}).get("op_name", "?")
            per_op[op][0] += 1
            per_op[op][1] += event["dur"]
    return {"steps": len(runs), "run_us": sum(r["dur"] for r in runs), "ops": dict(per_op), "file": path}


# ------------------------------------------------------------------------------------ the benchmark


def run(ctx: Context) -> str:
    from keras_transformer.translation import keras_translator
    from keras_transformer.run_dir import RunDir
    from keras_transformer.serve import Translator

    sizes = SMOKE if ctx.smoke else FULL
    art = ctx.artifacts()
    texts = [t for t in art.sentences if t.strip()][: sizes.batched]
    if len(texts) < sizes.batched:
        ctx.log(f"[bench] decoding: only {len(texts)} sentences available (wanted {sizes.batched})")
    single = texts[: sizes.single]
    warm_single = art.sentences[-sizes.warmup:]  # other sentences than the timed ones
    warm_batched = art.sentences[-sizes.batch:]

    def warm_for(batch):
        return warm_single if batch == 1 else warm_batched
    run_dir = RunDir(art.run_dir)
    config = run_dir.transformer_config()
    max_length = config.max_target_length
    threads = ctx.threads

    phase_started = time.perf_counter()

    def phase(message):
        nonlocal phase_started
        ctx.log(f"[bench] decoding: {message} (previous phase {time.perf_counter() - phase_started:.1f}s)")
        phase_started = time.perf_counter()

    phase("warming up every engine ...")
    fp32, int8 = Translator(art.fp32_bundle, threads=threads), Translator(art.int8_bundle, threads=threads)

    def ort(name, translator, sentences, batch, beam):
        return translator_job(name, translator, sentences, batch, beam, max_length, sizes.repeats,
                              warm=warm_for(batch))

    model = run_dir.load_model()
    tokenizers = run_dir.load_tokenizers()
    keras = keras_translator(model, *tokenizers)
    step_model = keras.model
    jobs = [ort("ORT fp32 greedy (Translator)", fp32, single, 1, 1),
            ort("ORT fp32 greedy (Translator)", fp32, texts, sizes.batch, 1),
            ort("ORT int8 greedy (Translator)", int8, single, 1, 1),
            ort("ORT int8 greedy (Translator)", int8, texts, sizes.batch, 1),
            ort("ORT fp32 beam 4 (Translator)", fp32, single, 1, 4),
            ort("ORT fp32 beam 4 (Translator)", fp32, texts, sizes.batch, 4),
            keras_compiled_job(keras, single, 1, max_length, sizes.repeats, warm=warm_single),
            keras_compiled_job(keras, texts, sizes.batch, max_length, sizes.repeats, warm=warm_batched),
            keras_io_job(model, tokenizers, texts[: sizes.keras_io], max_length, config.max_source_length,
                         sizes.keras_io_repeats, warm=warm_single[:1])]
    traces_before = _tracing_count(step_model)
    phase(f"timing {len(jobs)} rows, {sizes.repeats} interleaved passes ...")
    rows = run_passes(jobs, sizes.repeats)
    retraces = _tracing_count(step_model) - traces_before
    (ort_fp32_single, ort_fp32_batched, int8_single, int8_batched, _, _, keras_single, keras_batched,
     keras_io) = rows
    reference = ort_fp32_batched.outputs
    keras_by_batch = {1: keras_single, sizes.batch: keras_batched}
    table = []
    for row in sorted(rows, key=lambda r: (r.batch, r.beam, r.name)):
        same = sum(a == b for a, b in zip(row.outputs, reference))
        identical = f"{same}/{row.sentences}" + (" (beam ≠ greedy)" if row.beam > 1 else "")
        unit = "sentence" if row.batch == 1 else "batch"
        table.append([
            row.name, row.batch, row.beam, row.sentences, fmt_num(row.sentences_per_second),
            fmt_num(row.tokens_per_second),
            f"{fmt_num(1e3 * percentile(row.latencies, 50))} / {fmt_num(1e3 * percentile(row.latencies, 95))} "
            f"per {unit}",
            fmt_ratio(row.tokens_per_second / keras_io.tokens_per_second),
            fmt_ratio(row.tokens_per_second / keras_by_batch[row.batch].tokens_per_second),
            identical,
        ])

    # Goals: time ratios on the same sentences.
    n_io = keras_io.sentences
    vs_io = keras_io.seconds / sum(ort_fp32_single.latency_per_sentence[:n_io])
    vs_compiled = keras_single.seconds / ort_fp32_single.seconds
    int8_single_gain = ort_fp32_single.seconds / int8_single.seconds
    int8_batched_gain = ort_fp32_batched.seconds / int8_batched.seconds
    goals = [
        [f"ORT fp32 greedy vs keras.io-style loop, batch 1 (same {n_io} sentences)", f"≥ {GOAL_VS_KERAS_IO:.0f}×",
         fmt_ratio(vs_io), pass_fail(vs_io >= GOAL_VS_KERAS_IO)],
        [f"ORT fp32 greedy vs compiled Keras, batch 1 (same {ort_fp32_single.sentences} sentences)",
         f"≥ {GOAL_VS_COMPILED:.0f}×", fmt_ratio(vs_compiled), pass_fail(vs_compiled >= GOAL_VS_COMPILED)],
        [f"ORT int8 vs fp32 greedy, batch 1 (same {int8_single.sentences} sentences)", f"≥ {GOAL_INT8}×",
         fmt_ratio(int8_single_gain), pass_fail(int8_single_gain >= GOAL_INT8)],
        [f"ORT int8 vs fp32 greedy, batch {sizes.batch} (same {int8_batched.sentences} sentences)",
         f"≥ {GOAL_INT8}×", fmt_ratio(int8_batched_gain), pass_fail(int8_batched_gain >= GOAL_INT8)],
    ]
    missed = [g for g in goals if g[-1] != "PASS"]

    # The hardware bound: decoder weights streamed from memory once per step.
    phase("hardware bound ...")
    bandwidth = memory_bandwidth(ctx)
    peak = matmul_peak(ctx)
    from keras_transformer.serve import bundle_format as fmt

    weights = {label: streamed_weights(bundle / fmt.DECODER_FILE)
               for label, bundle in (("fp32", art.fp32_bundle), ("int8", art.int8_bundle))}
    bound_rows = []
    for label, measured in (("fp32", ort_fp32_single), ("int8", int8_single)):
        weight_bytes, matmul_elements = weights[label]
        memory_bound = bandwidth / weight_bytes  # steps/s = tokens/s at batch 1
        compute_bound = peak / (2 * matmul_elements)
        bound_rows.append([label, fmt_num(weight_bytes / 1e6, 2), fmt_num(memory_bound), fmt_num(compute_bound),
                           fmt_num(measured.tokens_per_second),
                           f"{100 * measured.tokens_per_second / min(memory_bound, compute_bound):.0f}%"])

    phase("profile ...")
    profiled = single[: sizes.profiled]
    split_rows, profiles = [], {}
    for label, bundle in (("fp32", art.fp32_bundle), ("int8", art.int8_bundle)):
        profile = profiles[label] = ort_profile(bundle, profiled, threads, ctx.workdir / f"ort_profile_{label}")
        launches = sum(calls for calls, _ in profile["ops"].values()) / max(profile["steps"], 1)
        matmul_us = 1e6 * 2 * weights[label][1] / peak
        for n_threads in sorted({threads, available_cores()}, reverse=True):
            split = step_split(bundle, profiled, n_threads, sizes.repeats)
            steps = max(split["steps"], 1)
            run_us = 1e6 * split["decoder"] / steps
            if n_threads == threads:
                profile["unprofiled_run_us"] = run_us
            split_rows.append([
                label, n_threads, fmt_num(split["sentences"] / split["total"]), split["steps"],
                fmt_num(1e6 * split["total"] / steps), fmt_num(run_us), fmt_num(1e6 * split["encoder"] / steps),
                fmt_num(1e6 * split["other"] / steps), f"{launches:.0f}", fmt_num(run_us / max(launches, 1), 2),
                fmt_num(matmul_us, 2)])
    thread_jobs = [translator_job(f"{label}|{n}", Translator(bundle, threads=n), texts, sizes.batch, 1, max_length,
                                  sizes.repeats, warm=warm_batched)
                   for label, bundle in (("fp32", art.fp32_bundle), ("int8", art.int8_bundle))
                   for n in sorted({threads, available_cores()}, reverse=True)]
    batched_threads_rows = [[*row.name.split("|"), fmt_num(row.sentences_per_second), fmt_num(row.tokens_per_second),
                             fmt_num(1e3 * percentile(row.latencies, 50))]
                            for row in run_passes(thread_jobs, sizes.repeats)]
    op_types = sorted({op for p in profiles.values() for op in p["ops"]},
                      key=lambda op: -sum(p["ops"].get(op, (0, 0))[1] for p in profiles.values()))
    op_rows = []
    for op in op_types[:14]:
        row = [op]
        for p in profiles.values():
            calls, us = p["ops"].get(op, (0, 0.0))
            kernel_us = sum(u for _, u in p["ops"].values())
            row += [fmt_num(calls / max(p["steps"], 1)), f"{100 * us / max(kernel_us, 1):.0f}%"]
        op_rows.append(row)
    op_rows.append(["all", *[x for p in profiles.values() for x in (
        f"{sum(c for c, _ in p['ops'].values()) / max(p['steps'], 1):.0f}", "100%")]])
    slowdown = {label: (p["run_us"] / max(p["steps"], 1)) / max(p.get("unprofiled_run_us", 1e-9), 1e-9)
                for label, p in profiles.items()}

    phase("done")
    model_source = (f"the {'smoke' if ctx.smoke else 'demo'} model trained in this run" if art.trained_here
                    else f"the run {run_dir.path}")
    lines = [
        "## Decoding speed",
        "",
        f"Model: {model_source}, "
        f"{config.num_layers}+{config.num_layers} layers, d_model {config.hidden_dim}, d_ff "
        f"{config.intermediate_dim}, {config.num_heads} heads, vocab {config.source_vocab_size}/"
        f"{config.target_vocab_size}; max {max_length} target tokens. Sentences: {art.sentences_description} "
        f"({len(texts)} at batch {sizes.batch}, the first {len(single)} at batch 1, the first {keras_io.sentences} "
        f"for the keras.io-style loop). onnxruntime intra-op threads = {threads}; "
        "TensorFlow uses its defaults. Each engine first decoded other sentences the same way (warm-up, untimed).",
        "",
        f"Timing: at batch 1 one call per sentence, each sentence's best of {sizes.repeats} passes "
        f"({sizes.keras_io_repeats} for the keras.io-style loop); at batch {sizes.batch} one call for all sentences, "
        f"the best of {sizes.repeats} calls. The passes of all rows are interleaved, so load from other processes "
        "hits every engine alike, and best-of filters out preemption. Latency: per "
        "call at batch 1 (one sentence), per batch otherwise. Speed-ups: tokens/s ratios (generated tokens, EOS "
        f"included). Identical: token ids equal to the ORT fp32 greedy batch-{sizes.batch} output of the same "
        "sentence.",
        "",
        markdown_table(["engine", "batch", "beam", "sentences", "sentences/s", "tokens/s", "p50 / p95 latency (ms)",
                        "vs keras.io-style", "vs compiled Keras (same batch)", "identical to ORT fp32 greedy"],
                       table),
        "",
        f"tf.function retraces during the timed passes of the compiled Keras rows: {retraces} (after warm-up on other "
        "sentences).",
        "",
        "### Goals",
        "",
        "Time ratios on the very same sentences.",
        "",
        markdown_table(["goal", "target", "measured", "result"], goals),
        "",
        "### How far from the hardware",
        "",
        f"Memory bandwidth (numpy copy of a {2 * (16 if ctx.smoke else 64) * 4 // 2} MiB float32 array, read + "
        f"write): {bandwidth / 1e9:.1f} GB/s. numpy float32 matmul peak (best n×n @ n×n, at "
        f"n = {ctx.cache.get('matmul_n')}): {peak / 1e9:.0f} GFLOP/s. At batch 1 every decoding step must read all of "
        "decoder.onnx's weights once (all of them but the embedding table, of which a step reads one row), so "
        "tokens/s ≤ bandwidth / weight bytes (memory bound), and ≤ peak / (2 × matmul weights) (compute bound). "
        "The memory bound assumes every byte comes from DRAM; a share above 100% means part of the weights stayed "
        "in the CPU's caches from one step to the next (a small decoder sits in them entirely).",
        "",
        markdown_table(["decoder.onnx", "weights read per step (MB)", "memory bound (tokens/s)",
                        "compute bound (tokens/s)", "measured, batch 1 (tokens/s)", "share of the tighter bound"],
                       bound_rows),
        "",
        "### Where a decoding step spends its time",
        "",
        f"Batch 1, greedy, the first {len(profiled)} sentences, one `translate([text])` per sentence, best of "
        f"{sizes.repeats} passes; µs per decoder step. `session.run` is timed around the decoder session's `run`; "
        "encoder time is spread over the steps; \"Python\" is everything else (tokenizing, the feeds dict, "
        "argmax, row selection, detokenizing, the Translator's checks). Kernels per step: counted by onnxruntime's "
        "profiler. Matmul-only time: the step's matmul FLOPs (2 × matmul weights) at the numpy peak — what the "
        "step would cost if nothing but its arithmetic took time.",
        "",
        markdown_table(["bundle", "ORT threads", "sentences/s", "decoder steps", "total µs / step",
                        "decoder session.run µs", "encoder µs", "Python µs", "kernels / step",
                        "session.run µs per kernel", "matmul-only µs"], split_rows),
        "",
        "Kernels per decoding step by op type (onnxruntime profiling, `SessionOptions.enable_profiling`, "
        f"threads = {threads}, {profiles['fp32']['steps']} steps), with each op type's share of the profiled "
        "kernel time. The profiler itself slows a run down "
        + " and ".join(f"{fmt_num(v)}× ({k})" for k, v in slowdown.items())
        + " by adding a fixed cost per kernel, so read the shares as where kernels are launched rather than as "
        "exact times.",
        "",
        markdown_table(["op type", "fp32 kernels / step", "fp32 share", "int8 kernels / step", "int8 share"],
                       op_rows),
        "",
        f"onnxruntime intra-op threads at batch {sizes.batch} (greedy, the same {len(texts)} sentences, best of "
        f"{sizes.repeats} interleaved calls):",
        "",
        markdown_table(["bundle", "ORT threads", "sentences/s", "tokens/s", "p50 latency per batch (ms)"],
                       batched_threads_rows),
    ]
    if missed:
        lines += ["", "Missed goals: " + "; ".join(g[0] for g in missed) + ". See the profile above: the tables "
                  "show how the step's time divides between onnxruntime kernels, onnxruntime's per-kernel cost and "
                  "Python, and how far that is from the step's arithmetic."]
    return "\n".join(lines) + "\n"
