"""Data-parallel training on TensorFlow's own engine (`tf.distribute`).

- `default`: no distribution (one device);
- `mirrored`: `MirroredStrategy`, one replica per local device, gradients all-reduced;
- `multi-worker`: `MultiWorkerMirroredStrategy` over the cluster in `TF_CONFIG` (one process per
  host, as on a real cluster). `launch_local_workers` starts N such processes on 127.0.0.1.

The global batch is split across input pipelines by rows: pipeline i of n takes rows i, i+n, ...
of each batch, so every worker runs the same number of steps and the replicas together see
exactly the batch a single process would see.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from keras_transformer.serve.errors import OptionError

STRATEGIES = ("default", "mirrored", "multi-worker")


def make_strategy(name: str):
    import tensorflow as tf

    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi-worker":
        if not os.environ.get("TF_CONFIG"):
            raise OptionError("--strategy multi-worker: expected the cluster in the TF_CONFIG environment variable, "
                             "got none (or use --workers N to start N local workers)")
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise OptionError(f"--strategy: expected one of {STRATEGIES}, got {name!r}")


def worker_index() -> int:
    """This process's index in TF_CONFIG's cluster (0 = chief, which writes the run dir)."""
    config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    task = config.get("task", {})
    if task.get("type") == "chief":
        return 0
    has_chief = bool(config.get("cluster", {}).get("chief"))
    return int(task.get("index", 0)) + (1 if has_chief else 0)


def worker_run_dir(out, index: int) -> Path:
    """Where a non-chief worker keeps its (discarded) run files: a hidden sibling of the run dir,
    stable across restarts so that its backup resumes at the same epoch as the chief's."""
    out = Path(out)
    return out.parent / f".{out.name}.worker-{index}"


def distribute(name: str, strategy, make_dataset):
    """`make_dataset()` builds the global-batch dataset; returns what `model.fit` should read."""
    if name == "default":
        return make_dataset()
    if name == "mirrored":  # one process: each global batch is split across the local replicas
        return strategy.experimental_distribute_dataset(make_dataset())

    import tensorflow as tf

    def per_pipeline(context):  # one pipeline per worker process
        index, count = context.input_pipeline_id, context.num_input_pipelines

        def rows(inputs, labels):  # (B, L) -> (ceil(B/n), L): this worker's share of the global batch
            # All-PAD rows make B a multiple of n, so every worker's batch has the same shape (Keras
            # reduces one batch across workers to build the model); PAD rows carry no loss.
            extra = (-tf.shape(labels)[0]) % count
            take = lambda t: tf.pad(t, [[0, extra], [0, 0]])[index::count]  # noqa: E731
            return {k: take(v) for k, v in inputs.items()}, take(labels)

        return make_dataset().map(rows)

    return strategy.distribute_datasets_from_function(per_pipeline)


def adapt_model_for_strategy(model, strategy, make_dataset):
    """Two workarounds for Keras 3.15's `fit` under a multi-replica `tf.distribute` strategy:

    1. `fit` first reduces one distributed batch with `strategy.reduce`, which rejects nested
       (dict) batches: build the model, loss and metrics from one local batch instead.
    2. Under MultiWorkerMirroredStrategy each step's logs are reduced with
       `strategy.reduce("MEAN", value, axis=0)`, which fails on scalars: give them shape (1,).
    """
    import tensorflow as tf

    if strategy.num_replicas_in_sync == 1:
        return
    local_batch = next(iter(make_dataset()))
    with strategy.scope():
        model._symbolic_build(data_batch=local_batch)
    model._maybe_symbolic_build = lambda iterator=None, data_batch=None: None
    for name in ("train_step", "test_step"):
        step = getattr(model, name)
        setattr(model, name, lambda data, step=step: {k: tf.reshape(v, [1]) for k, v in step(data).items()})


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_local_workers(train_argv: list[str], workers: int, timeout: float | None = None) -> int:
    """Runs `keras-transformer train ARGV --strategy multi-worker` in `workers` processes on
    127.0.0.1 with TF_CONFIG set for each; returns the first non-zero exit code, else 0."""
    if workers < 1:
        raise OptionError(f"--workers: expected at least 1, got {workers}")
    addresses = [f"127.0.0.1:{_free_port()}" for _ in range(workers)]
    processes = []
    for index in range(workers):
        env = dict(os.environ, TF_CONFIG=json.dumps(
            {"cluster": {"worker": addresses}, "task": {"type": "worker", "index": index}}))
        command = [sys.executable, "-m", "keras_transformer.cli", "train", *train_argv, "--strategy", "multi-worker"]
        processes.append(subprocess.Popen(command, env=env, stdout=None if index == 0 else subprocess.DEVNULL))
    codes = []
    try:
        for process in processes:
            codes.append(process.wait(timeout=timeout))
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
    return next((code for code in codes if code), 0)
