"""Faults lose nothing: SIGKILL mid-epoch then resume, SIGKILL during a save, multi-worker runs."""

import csv
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from keras_transformer.run_dir import RunDir

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--data", "demo", "--max-pairs", "300", "--batch-tokens", "512", "--num-layers", "1", "--hidden-dim", "16",
        "--num-heads", "2", "--intermediate-dim", "32", "--dropout", "0", "--label-smoothing", "0",
        "--warmup-steps", "20", "--source-vocab-size", "200", "--target-vocab-size", "200",
        "--max-source-length", "24", "--max-target-length", "24", "--seed", "3"]


def _cli(*args, **kwargs):
    return [sys.executable, "-m", "keras_transformer.cli", *map(str, args)]


def _epochs(run_dir):
    path = run_dir / "history.csv"
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return [int(row["epoch"]) for row in csv.DictReader(f)]


def test_sigkill_mid_epoch_then_rerun_finishes_with_every_epoch_once(tmp_path):
    run_dir = tmp_path / "run"
    # Small batches make each epoch long enough (many steps) to be killed in the middle of one.
    command = _cli("train", *TINY, "--batch-tokens", "64", "--epochs", "4", "--out", run_dir)
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while len(_epochs(run_dir)) < 2 and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.05)
        assert process.poll() is None, "training finished before it could be killed; make epochs longer"
        time.sleep(0.3)  # well inside epoch 3
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    killed_at = _epochs(run_dir)
    assert 2 <= len(killed_at) < 4
    assert RunDir(run_dir).backup_path.exists()  # BackupAndRestore state survived the kill

    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Resuming" in result.stdout
    assert _epochs(run_dir) == [1, 2, 3, 4]
    assert RunDir(run_dir).read_config()["status"] == "complete"
    RunDir(run_dir).load_model()


KILL_DURING_SAVE = r"""
import os, signal, sys
import keras_transformer.atomic_files as atomic
from keras_transformer.run_dir import RunDir

run = RunDir(sys.argv[1])
model = run.load_model()
original_save = model.save

def save_then_die(path, *args, **kwargs):
    original_save(path, *args, **kwargs)
    with open(path, "r+b") as f:  # the new file is only half there when the process dies
        f.truncate(os.path.getsize(path) // 2)
    os.kill(os.getpid(), signal.SIGKILL)

model.save = save_then_die
atomic.atomic_save_model(model, run.model_path)
"""


def test_sigkill_during_save_leaves_the_previous_model_loadable(tiny_run, tmp_path):
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(tiny_run, run_dir)
    before = (run_dir / "model.keras").read_bytes()
    result = subprocess.run([sys.executable, "-c", KILL_DURING_SAVE, str(run_dir)], cwd=ROOT, timeout=120,
                            capture_output=True)
    assert result.returncode == -signal.SIGKILL
    assert (run_dir / "model.keras").read_bytes() == before
    RunDir(run_dir).load_model()


def test_multi_worker_strategy_needs_tf_config(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    result = subprocess.run(_cli("train", *TINY, "--epochs", "1", "--out", tmp_path / "r", "--strategy",
                                 "multi-worker"), cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "expected the cluster in the TF_CONFIG environment variable" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_two_local_workers_match_one_process_on_the_same_global_batch(tmp_path):
    single, multi = tmp_path / "single", tmp_path / "multi"
    for out, extra in ((single, []), (multi, ["--workers", "2"])):
        result = subprocess.run(_cli("train", *TINY, "--epochs", "2", "--out", out, *extra), cwd=ROOT,
                                capture_output=True, text=True, timeout=400)
        assert result.returncode == 0, result.stderr[-3000:]
    assert not (tmp_path / ".multi.worker-1").exists()  # the non-chief's files are removed
    assert _epochs(multi) == [1, 2]
    single_weights = np.concatenate([w.ravel() for w in RunDir(single).load_model().get_weights()])
    multi_weights = np.concatenate([w.ravel() for w in RunDir(multi).load_model().get_weights()])
    # Same data, seed and global batch; the all-reduced mean of per-worker token means differs
    # from the single process's token mean only by how tokens split between the workers (and
    # Adam turns tiny gradient differences on rarely seen embeddings into full-size steps).
    relative = np.linalg.norm(single_weights - multi_weights) / np.linalg.norm(single_weights)
    print(f"relative L2 weight difference, 2 workers vs 1 process: {relative:.4f}")
    assert relative < 0.05
    with open(single / "history.csv") as f1, open(multi / "history.csv") as f2:
        loss_single = float(list(csv.DictReader(f1))[-1]["loss"])
        loss_multi = float(list(csv.DictReader(f2))[-1]["loss"])
    assert abs(loss_single - loss_multi) < 0.01 * loss_single
