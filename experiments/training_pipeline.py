"""What the training input pipeline costs per `model.fit` step: a fixed segmentation against one
re-segmented each pass (BPE-dropout), and why the latter does not use `Dataset.from_generator`.

    python -m experiments.training_pipeline [--data TSV] [--steps 100] [--rounds 2] [--out FILE]

One model (2+2 layers, d_model 128, d_ff 256, 4,000-subword BPE on each side trained on --data,
pairs of at most 32 subwords, 1,000-token batches) trained on the same pairs through four
pipelines, each in a fresh process, the processes interleaved round by round; a process warms
up (tracing, the first batches), then times --steps steps of `model.fit`. The best round counts.

- `make_dataset`: the fixed segmentation (tf.data bucketing of one encoded corpus);
- `make_resampled_dataset`, without and with BPE-dropout 0.1: each pass encoded anew, bucketed in
  numpy, and handed over by a `numpy_function` map over an endless `range`;
- `from_generator`: `make_dataset`'s own batches, computed once, yielded by
  `tf.data.Dataset.from_generator` (the first design of the resampled pipeline).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from bench.common import cpu_model, markdown_table
from experiments.common import print_and_save

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "en-hi" / "train.tsv"
VARIANTS = {
    "make_dataset": "fixed segmentation, tf.data bucketing",
    "resampled": "make_resampled_dataset, each pass encoded anew (no dropout)",
    "resampled_bpe_dropout": "make_resampled_dataset, BPE-dropout 0.1",
    "from_generator": "Dataset.from_generator yielding make_dataset's batches",
}
MAX_LENGTH, BATCH_TOKENS, WARM_UP_STEPS = 32, 1000, 20


def _dataset(variant: str, pairs, source_tokenizer, target_tokenizer):
    """(dataset, steps_per_epoch or None) for one variant."""
    import tensorflow as tf

    from keras_transformer import pipeline
    from keras_transformer.tokenizer_training import with_bpe_dropout

    encode = lambda source, target: pipeline.encode_corpus(  # noqa: E731
        pairs, source, target, MAX_LENGTH, MAX_LENGTH)
    if variant == "make_dataset":
        return pipeline.make_dataset(encode(source_tokenizer, target_tokenizer), BATCH_TOKENS).repeat(), None
    if variant == "resampled":
        return pipeline.make_resampled_dataset(lambda: encode(source_tokenizer, target_tokenizer),
                                               BATCH_TOKENS, MAX_LENGTH)
    if variant == "resampled_bpe_dropout":
        dropout = with_bpe_dropout(source_tokenizer, 0.1), with_bpe_dropout(target_tokenizer, 0.1)
        return pipeline.make_resampled_dataset(lambda: encode(*dropout), BATCH_TOKENS, MAX_LENGTH)
    batches = [(x["source_ids"].numpy(), x["target_ids"].numpy(), y.numpy())
               for x, y in pipeline.make_dataset(encode(source_tokenizer, target_tokenizer), BATCH_TOKENS)]
    signature = tuple(tf.TensorSpec([None, None], tf.int32) for _ in range(3))
    dataset = tf.data.Dataset.from_generator(lambda: iter(batches), output_signature=signature).repeat()
    return dataset.map(lambda s, t, y: ({"source_ids": s, "target_ids": t}, y)).prefetch(tf.data.AUTOTUNE), None


def worker(variant: str, data: str, steps: int, tokenizer_dir: str) -> dict:
    """Trains `steps` steps after a warm-up and returns milliseconds per step (wall and CPU)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    from keras_transformer import losses
    from keras_transformer.config import TransformerConfig
    from keras_transformer.corpus import read_parallel_corpus
    from keras_transformer.model import build_transformer
    from keras_transformer.serve.tokenizer import SubwordTokenizer

    pairs = read_parallel_corpus(data)[0]
    source, target = (SubwordTokenizer.from_file(Path(tokenizer_dir) / f"{side}.json") for side in ("source", "target"))
    dataset, _ = _dataset(variant, pairs, source, target)
    config = TransformerConfig(source_vocab_size=source.vocab_size, target_vocab_size=target.vocab_size,
                               num_layers=2, hidden_dim=128, num_heads=2, intermediate_dim=256,
                               max_source_length=MAX_LENGTH, max_target_length=MAX_LENGTH)
    keras.utils.set_random_seed(0)
    model = build_transformer(config)
    model.compile(optimizer="adam", loss=losses.MaskedSparseCrossEntropy(0.1))
    timer = _step_timer(WARM_UP_STEPS)
    model.fit(dataset, epochs=1, steps_per_epoch=WARM_UP_STEPS + steps, verbose=0, callbacks=[timer])
    return {"wall_ms": timer.wall * 1000 / steps, "cpu_ms": timer.cpu * 1000 / steps}


def _step_timer(skip: int):
    """A Keras callback timing the steps after the first `skip` ones (wall and process CPU time)."""
    import keras

    class StepTimer(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            if batch == skip:
                self.started = time.perf_counter(), time.process_time()

        def on_train_end(self, logs=None):
            self.wall = time.perf_counter() - self.started[0]
            self.cpu = time.process_time() - self.started[1]

    return StepTimer()


def _train_tokenizers(data: str, directory: Path) -> None:
    from keras_transformer.corpus import read_parallel_corpus
    from keras_transformer.tokenizer_training import train_tokenizer

    pairs = read_parallel_corpus(data)[0]
    for side, texts in (("source", [s for s, _ in pairs]), ("target", [t for _, t in pairs])):
        train_tokenizer(texts, 4000).save(directory / f"{side}.json")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.training_pipeline",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DATA), help="training pairs (TSV); default the en-hi train split")
    parser.add_argument("--steps", type=int, default=100, help="timed steps per process (default 100)")
    parser.add_argument("--rounds", type=int, default=2, help="processes per variant, interleaved (default 2)")
    parser.add_argument("--out", help="also append the table to this file")
    parser.add_argument("--worker", choices=sorted(VARIANTS), help=argparse.SUPPRESS)
    parser.add_argument("--tokenizers", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.data, args.steps, args.tokenizers)))
        return 0
    import tempfile

    command = "python -m experiments.training_pipeline " + " ".join(argv if argv is not None else sys.argv[1:])
    results = {variant: [] for variant in VARIANTS}
    with tempfile.TemporaryDirectory() as directory:
        _train_tokenizers(args.data, Path(directory))
        for _ in range(args.rounds):
            for variant in VARIANTS:
                output = subprocess.run([sys.executable, "-m", "experiments.training_pipeline", "--worker", variant,
                                         "--data", args.data, "--steps", str(args.steps), "--tokenizers", directory],
                                        capture_output=True, text=True, check=True).stdout
                results[variant].append(json.loads(output.splitlines()[-1]))
                print(f"[experiments] {variant}: {results[variant][-1]}", file=sys.stderr, flush=True)
    best = {variant: min(runs, key=lambda run: run["wall_ms"]) for variant, runs in results.items()}
    reference = best["make_dataset"]["wall_ms"]
    rows = [[variant, description, f"{best[variant]['wall_ms']:.0f}", f"{best[variant]['cpu_ms']:.0f}",
             f"{best[variant]['wall_ms'] / reference:.2f}×",
             ", ".join(f"{run['wall_ms']:.0f}" for run in results[variant])]
            for variant, description in VARIANTS.items()]
    text = "\n".join([
        "## Training input pipelines: milliseconds per `model.fit` step", "",
        f"`{command}`, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, CPU: {cpu_model()}; "
        f"{args.steps} timed steps per process after {WARM_UP_STEPS} of warm-up, best of {args.rounds} "
        "interleaved processes.", "",
        markdown_table(["pipeline", "what", "ms / step", "CPU ms / step", "time ÷ make_dataset",
                        "every round, ms / step"], rows)])
    print_and_save(text, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
