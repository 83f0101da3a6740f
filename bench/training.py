"""Training throughput of `model.fit`: our from-scratch layers (without and with XLA) against the
same Transformer built from Keras' own layers (`bench/keras_reference.py`), same batches, same run.

Model: 3+3 layers, d_model 256, d_ff 1024, 4 heads, vocabularies of 8000, dropout 0.1, post-norm,
tied output embedding. Data: random token ids with realistic sentence lengths (uniform within
length buckets 12/16/24/32, like the training pipeline's bucketing; padded to the bucket's
bound), about 2048 tokens per batch. Each variant is compiled and runs one warm-up epoch over all
the batches (tracing, XLA compilation); then rounds of one timed epoch per variant, interleaved so
that load from other processes hits every variant alike, over the very same batches.

Throughput = real (non-padding) target tokens per second. FLOPs: the matmuls of one forward pass
on the padded batch (B sentences, S source and T target positions, N layers per side, D, F, V):

    encoder  N · (8·B·S·D² + 4·B·S²·D + 4·B·S·D·F)            Q, K, V, O projections; QKᵀ and AV; FFN
    decoder  N · (8·B·T·D² + 4·B·T²·D                          self-attention
                  + 4·B·T·D² + 4·B·S·D² + 4·B·T·S·D            cross-attention (Q, O on T; K, V on S)
                  + 4·B·T·D·F)                                  FFN
    output   2·B·T·D·V

and training ≈ 3 × forward (the backward pass costs about twice the forward). Achieved FLOP/s is
shown as a share of a float32 2048² matmul measured in the same run with numpy and with TensorFlow.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from bench.common import Context, fmt_num, fmt_ratio, markdown_table, matmul_peak, pass_fail, tf_matmul_peak


@dataclass(frozen=True)
class Sizes:
    model: dict
    buckets: tuple[int, ...]
    batch_tokens: int
    repeats: int  # batches per bucket per epoch
    timed_epochs: int


FULL = Sizes(model=dict(source_vocab_size=8000, target_vocab_size=8000, num_layers=3, hidden_dim=256, num_heads=4,
                        intermediate_dim=1024, dropout=0.1, max_source_length=64, max_target_length=64),
             buckets=(12, 16, 24, 32), batch_tokens=2048, repeats=2, timed_epochs=5)
SMOKE = Sizes(model=dict(source_vocab_size=200, target_vocab_size=200, num_layers=1, hidden_dim=16, num_heads=2,
                         intermediate_dim=32, dropout=0.1, max_source_length=32, max_target_length=32),
              buckets=(12,), batch_tokens=96, repeats=2, timed_epochs=2)
SMOKE_JIT = (False,)  # XLA compilation alone would take longer than the whole smoke run
FULL_JIT = (False, True)


def synthetic_batches(sizes: Sizes, seed=0):
    """[({"source_ids", "target_ids"}, labels)] int32 numpy batches, padded with 0 to the bucket's bound."""
    from keras_transformer.serve.bundle_format import BOS_ID, EOS_ID

    rng = np.random.default_rng(seed)
    v_src, v_tgt = sizes.model["source_vocab_size"], sizes.model["target_vocab_size"]
    batches, lower = [], 3
    for bound in sizes.buckets:
        for _ in range(sizes.repeats):
            count = sizes.batch_tokens // bound
            source = np.zeros((count, bound), np.int32)
            target = np.zeros((count, bound), np.int32)
            labels = np.zeros((count, bound), np.int32)
            for i in range(count):
                n = int(rng.integers(lower, bound + 1))  # source tokens + EOS
                m = int(np.clip(n + rng.integers(-3, 4), 2, bound))  # target tokens + 1
                source[i, :n - 1] = rng.integers(4, v_src, n - 1)
                source[i, n - 1] = EOS_ID
                words = rng.integers(4, v_tgt, m - 1)
                target[i, :m] = [BOS_ID, *words]
                labels[i, :m] = [*words, EOS_ID]
            batches.append(({"source_ids": source, "target_ids": target}, labels))
        lower = bound + 1
    return batches


def forward_matmul_flops(model: dict, batch: int, source_length: int, target_length: int) -> float:
    B, S, T = batch, source_length, target_length
    N, D, F, V = model["num_layers"], model["hidden_dim"], model["intermediate_dim"], model["target_vocab_size"]
    encoder = N * (8 * B * S * D * D + 4 * B * S * S * D + 4 * B * S * D * F)
    decoder = N * (8 * B * T * D * D + 4 * B * T * T * D
                   + 4 * B * T * D * D + 4 * B * S * D * D + 4 * B * T * S * D
                   + 4 * B * T * D * F)
    return float(encoder + decoder + 2 * B * T * D * V)


def make_dataset(batches):
    """The batches (of different shapes) as a `tf.data.Dataset`, in a fixed order."""
    import tensorflow as tf

    dataset = None
    for features, labels in batches:
        one = tf.data.Dataset.from_tensors((features, labels))
        dataset = one if dataset is None else dataset.concatenate(one)
    return dataset


def compiled_and_warm(name, build, jit_compile, dataset, sizes: Sizes, log):
    """A compiled model that has run one warm-up epoch (tracing, XLA compilation of every shape)."""
    import keras

    from keras_transformer.losses import MaskedSparseCrossEntropy
    from keras_transformer.schedule import transformer_optimizer

    keras.utils.set_random_seed(0)
    model = build()
    model.compile(optimizer=transformer_optimizer(sizes.model["hidden_dim"], warmup_steps=4000),
                  loss=MaskedSparseCrossEntropy(0.1), jit_compile=jit_compile)
    started = time.perf_counter()
    model.fit(dataset, epochs=1, verbose=0, shuffle=False)
    log(f"[bench] training: {name} (jit_compile={jit_compile}) warm-up epoch {time.perf_counter() - started:.1f}s")
    return model


def timed_epochs(models, dataset, rounds, log):
    """`rounds` rounds of one `model.fit` epoch per model, interleaved (load from other processes hits
    every variant alike); returns each model's epoch times."""
    seconds = [[] for _ in models]
    for _ in range(rounds):
        for i, model in enumerate(models):
            started = time.perf_counter()
            model.fit(dataset, epochs=1, verbose=0, shuffle=False)
            seconds[i].append(time.perf_counter() - started)
    for i, times in enumerate(seconds):
        log(f"[bench] training: variant {i} timed epochs {', '.join(f'{t:.2f}s' for t in times)}")
    return seconds


def run(ctx: Context) -> str:
    from keras_transformer.config import TransformerConfig
    from keras_transformer.model import build_transformer

    from bench.keras_reference import build_keras_reference

    sizes = SMOKE if ctx.smoke else FULL
    config = TransformerConfig(**sizes.model)
    batches = synthetic_batches(sizes)
    tokens = sum(int((labels != 0).sum()) for _, labels in batches)
    padded = sum(labels.size for _, labels in batches)
    flops = 3 * sum(forward_matmul_flops(sizes.model, f["source_ids"].shape[0], f["source_ids"].shape[1],
                                         f["target_ids"].shape[1]) for f, _ in batches)
    matmul_peak(ctx, again=True)
    tf_matmul_peak(ctx, again=True)

    jit_settings = SMOKE_JIT if ctx.smoke else FULL_JIT
    variants = [(name, build, jit) for jit in jit_settings for name, build in (
        ("ours (keras_transformer layers)", lambda: build_transformer(config)),
        ("Keras' own layers (MultiHeadAttention, LayerNormalization)", lambda: build_keras_reference(config)))]
    import keras

    keras.backend.clear_session()
    dataset = make_dataset(batches)
    models = [compiled_and_warm(name, build, jit, dataset, sizes, ctx.log) for name, build, jit in variants]
    epochs = timed_epochs(models, dataset, sizes.timed_epochs, ctx.log)
    results = [(name, jit, min(times), model.count_params())
               for (name, _, jit), model, times in zip(variants, models, epochs)]
    peak = matmul_peak(ctx, again=True)  # measured before and after the runs; the better figure counts
    tf_peak = tf_matmul_peak(ctx, again=True)

    reference = {jit: seconds for name, jit, seconds, _ in results if name.startswith("Keras")}
    rows = []
    for name, jit, seconds, params in results:
        achieved = flops / seconds
        rows.append([name, "yes" if jit else "no", f"{params:,}", fmt_num(tokens / seconds),
                     fmt_num(1e3 * seconds / len(batches)), fmt_num(achieved / 1e9),
                     f"{100 * achieved / peak:.0f}%", f"{100 * achieved / tf_peak:.0f}%",
                     fmt_ratio(reference[jit] / seconds)])
    ours = {jit: seconds for name, jit, seconds, _ in results if name.startswith("ours")}
    median = {(name.startswith("ours"), jit): float(np.median(times))
              for (name, _, jit), times in zip(variants, epochs)}
    median_ratio = {jit: median[(False, jit)] / median[(True, jit)] for jit in jit_settings}  # Keras' / ours
    goals = [[f"our layers at least as fast as Keras' own, jit_compile={jit}", "≥ 1.0×",
              f"{reference[jit] / ours[jit]:.3f}×", pass_fail(reference[jit] / ours[jit] >= 1.0),
              f"{median_ratio[jit]:.3f}×"]
             for jit in jit_settings]
    epoch_lines = [f"- {name}, jit_compile={jit}: " + ", ".join(f"{t:.2f}" for t in times)
                   for (name, _, jit), times in zip(variants, epochs)]
    shapes = ", ".join(f"{f['source_ids'].shape[0]}×{f['source_ids'].shape[1]}" for f, _ in batches)
    return "\n".join([
        "## Training throughput (`model.fit`)",
        "",
        f"Model: {config.num_layers}+{config.num_layers} layers, d_model {config.hidden_dim}, d_ff "
        f"{config.intermediate_dim}, {config.num_heads} heads, vocab {config.source_vocab_size}/"
        f"{config.target_vocab_size}, dropout {config.dropout}, post-norm, tied output embedding. Adam with the "
        "warm-up schedule, masked cross-entropy with label smoothing 0.1, no metrics. "
        f"Data: {len(batches)} batches of random ids (batch × padded length: {shapes}; {tokens:,} real target "
        f"tokens of {padded:,} positions). Each variant is compiled and runs one warm-up epoch; then "
        f"{sizes.timed_epochs} rounds of one timed `model.fit` epoch per variant, interleaved, over the same batches; "
        f"the best epoch counts. FLOPs per epoch: 3 × forward matmul FLOPs = {flops / 1e9:.1f} GFLOP "
        "(formula in bench/training.py; on padded shapes, embeddings and softmax not counted). Float32 matmul "
        "peaks measured before and after the runs (best of several): numpy "
        f"{peak / 1e9:.0f} GFLOP/s (best n×n @ n×n, n = {ctx.cache['matmul_n']}), TensorFlow (oneDNN) "
        f"{tf_peak / 1e9:.0f} GFLOP/s ({ctx.cache['tf_matmul_n']}² @ {ctx.cache['tf_matmul_n']}²). TensorFlow's own "
        "matmul is the ceiling its training steps can approach.",
        "",
        markdown_table(["model", "jit_compile", "parameters", "target tokens/s", "ms / step", "achieved GFLOP/s",
                        "share of numpy matmul peak", "share of TF matmul peak", "vs Keras' own layers (same jit)"],
                       rows),
        "",
        "### Goal",
        "",
        markdown_table(["goal", "target", "measured (best epochs)", "result", "the same on median epochs"], goals),
        "",
        "Every timed epoch, in seconds (a machine with a CPU quota or other load shows two clusters; the best "
        "epoch is the one least disturbed):",
        "",
        *epoch_lines,
    ]) + "\n"
