"""The model, bundles and sentences the decoding and footprint benchmarks share.

Full run: the demo model (`keras_transformer.cli.demo.DEMO_MODEL` / `DEMO_TRAINING` on the built-in
corpus, ~1–2 min), unless `--run DIR` names a trained run. Smoke run: a 1-layer, 16-wide model
trained for one epoch on 300 demo pairs (a few seconds). Either way the fp32 and int8 bundles are
exported into the scratch directory unless `--bundle` / `--int8-bundle` name existing ones.

Sentences: the source side of `--sentences SPEC` when given, else the run's held-out `test.tsv`
when it has one (the demo writes its held-out pairs there), else the demo corpus' held-out sources
(`generate_demo_corpus(seed=0).test`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

SMOKE_MODEL = dict(num_layers=1, hidden_dim=16, num_heads=2, intermediate_dim=32, dropout=0.0,
                   max_source_length=32, max_target_length=24)


@dataclass
class Artifacts:
    run_dir: Path
    fp32_bundle: Path
    int8_bundle: Path
    sentences: list[str]
    sentences_description: str  # where the sentences come from, for the tables
    trained_here: bool


def prepare(ctx) -> Artifacts:
    """Trains/exports what is missing (once per run; cached in `ctx.cache`)."""
    if "artifacts" in ctx.cache:
        return ctx.cache["artifacts"]
    trained_here = ctx.run_dir is None
    if trained_here:
        ctx.run_dir = _train(ctx)
    if ctx.fp32_bundle is None:
        ctx.fp32_bundle = _export(ctx, "bundle-fp32", int8=False)
    if ctx.int8_bundle is None:
        ctx.int8_bundle = _export(ctx, "bundle-int8", int8=True)
    sentences, description = _sentences(Path(ctx.run_dir), ctx.sentences)
    artifacts = Artifacts(Path(ctx.run_dir), Path(ctx.fp32_bundle), Path(ctx.int8_bundle),
                          sentences, description, trained_here)
    ctx.cache["artifacts"] = artifacts
    return artifacts


def _quiet(*args, **kwargs):
    pass


def _train(ctx) -> Path:
    from keras_transformer.corpus import write_tsv
    from keras_transformer.cli.demo import DEMO_DATA, DEMO_MODEL, DEMO_SEED, DEMO_TEST_PAIRS, DEMO_TRAINING
    from keras_transformer.demo_corpus import generate_demo_corpus
    from keras_transformer.run_dir import RunDir
    from keras_transformer.config import ModelOptions
    from keras_transformer.training import TrainingSettings, train

    out = ctx.workdir / "run"
    started = time.perf_counter()
    if ctx.smoke:
        corpus = generate_demo_corpus(seed=DEMO_SEED, max_train_pairs=300, max_test_pairs=40)
        options = ModelOptions(**SMOKE_MODEL)
        settings = TrainingSettings(epochs=1, batch_tokens=1024, warmup_steps=30, source_vocab_size=200,
                                    target_vocab_size=200, seed=0, label_smoothing=0.0)
    else:
        corpus = generate_demo_corpus(seed=DEMO_SEED, max_test_pairs=DEMO_TEST_PAIRS)
        options, settings = DEMO_MODEL, DEMO_TRAINING
    ctx.log(f"[bench] training the {'smoke' if ctx.smoke else 'demo'} model in {out} ...")
    train(out, corpus.train, None, options, settings, DEMO_DATA, force=True, log=_quiet, verbose=0)
    write_tsv(corpus.test, RunDir(out).test_path)
    ctx.log(f"[bench] trained in {time.perf_counter() - started:.0f}s")
    return out


def _export(ctx, name: str, int8: bool) -> Path:
    from keras_transformer.export.exporter import export_bundle

    out = ctx.workdir / name
    started = time.perf_counter()
    export_bundle(ctx.run_dir, out, int8=int8, force=True, log=_quiet)
    ctx.log(f"[bench] exported {name} in {time.perf_counter() - started:.0f}s")
    return out


def _sentences(run_dir: Path, spec: str | None) -> tuple[list[str], str]:
    from keras_transformer.corpus import read_parallel_corpus
    from keras_transformer.run_dir import RunDir

    test_path = RunDir(run_dir).test_path
    if spec:
        pairs, description = read_parallel_corpus(spec)[0], f"the sources of {spec}"
    elif test_path.is_file():
        pairs, description = read_parallel_corpus(str(test_path))[0], "the run's held-out test.tsv"
    else:
        from keras_transformer.demo_corpus import generate_demo_corpus

        pairs, description = generate_demo_corpus(seed=0).test, "held-out demo sources"
    return [source for source, _ in pairs], description
