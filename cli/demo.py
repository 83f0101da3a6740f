"""`keras-transformer demo`: the whole pipeline on the built-in English→Hindi corpus.

Generate the corpus, train tokenizers and a small Transformer, write the run, export it to an ONNX
bundle (parity-checked against Keras), then translate the held-out pairs (sentences whose
subject-verb-object combination never occurs in training) with `serve.Translator` (onnxruntime
only) and print the exact-match rate, BLEU and five examples.
"""

from __future__ import annotations

import time
from pathlib import Path

from keras_transformer.config import ModelOptions
from keras_transformer.run_dir import RunDir, RunDirError
from keras_transformer.training import TrainingSettings

from .tensorflow_import import import_tensorflow_quietly

DEMO_SEED = 0
DEMO_TEST_PAIRS = 500
DEMO_MODEL = ModelOptions(num_layers=2, hidden_dim=128, num_heads=4, intermediate_dim=256, dropout=0.1,
                          max_source_length=32, max_target_length=32)
DEMO_TRAINING = TrainingSettings(epochs=4, batch_tokens=2048, label_smoothing=0.1, warmup_steps=300,
                                 learning_rate_scale=1.0, source_vocab_size=1000, target_vocab_size=1000,
                                 seed=DEMO_SEED)
BUNDLE_DIR = "bundle"  # inside the demo's run directory
DEMO_DATA = {"train": "demo", "valid": None, "max_pairs": None, "source_column": None, "target_column": None}


def _is_previous_demo(run: RunDir) -> bool:
    try:
        return run.read_config().get("data", {}).get("train") == "demo"
    except RunDirError:
        return False


def add_parsers(commands) -> None:
    p = commands.add_parser("demo", help="built-in English→Hindi corpus: train, export, translate, score")
    p.add_argument("--out", default="runs/demo", help="directory for the run (default: runs/demo)")
    p.set_defaults(handler=_run)


def _run(args) -> int:
    return run_demo(args.out)


def run_demo(out="runs/demo") -> int:
    import_tensorflow_quietly()
    from keras_transformer.corpus import write_tsv
    from keras_transformer.demo_corpus import generate_demo_corpus
    from keras_transformer.export.exporter import export_bundle
    from keras_transformer.evaluation import score_translations
    from keras_transformer.training import train
    from keras_transformer.serve import Translator

    started = time.perf_counter()
    run = RunDir(out)
    if not run.is_empty_or_missing() and not _is_previous_demo(run):
        raise RunDirError(f"{run.path}: exists and is not a demo run; choose another --out")
    corpus = generate_demo_corpus(seed=DEMO_SEED, max_test_pairs=DEMO_TEST_PAIRS)
    print(f"Demo corpus: {len(corpus.train)} training pairs, {len(corpus.test)} held-out pairs "
          "(subject-verb-object combinations never seen in training)")
    train(out, corpus.train, None, DEMO_MODEL, DEMO_TRAINING, DEMO_DATA, force=True)
    write_tsv(corpus.test, run.test_path)
    trained = time.perf_counter()
    bundle = run.path / BUNDLE_DIR
    export_bundle(run.path, bundle, force=True)
    exported = time.perf_counter()

    sources = [s for s, _ in corpus.test]
    references = [t for _, t in corpus.test]
    hypotheses = Translator(bundle).translate(sources)
    translated = time.perf_counter()
    scores = score_translations(hypotheses, references)
    print(f"\nHeld-out ({len(sources)} pairs): exact match {scores.exact_match:.1%}, "
          f"BLEU {scores.bleu:.1f}, chrF++ {scores.chrf:.1f}")
    for source, reference, hypothesis in list(zip(sources, references, hypotheses))[:5]:
        print(f"  source:    {source}\n  reference: {reference}\n  output:    {hypothesis}\n")
    print(f"Demo finished in {time.perf_counter() - started:.0f}s (corpus and training {trained - started:.0f}s, "
          f"export {exported - trained:.0f}s, translating {len(sources)} sentences with onnxruntime "
          f"{translated - exported:.1f}s).\nRun: {Path(out)}   Bundle: {bundle}\n"
          f"Try: keras-transformer translate {bundle} \"the girls are reading the books.\"")
    return 0
