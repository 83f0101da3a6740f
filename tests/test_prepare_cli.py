"""`keras-transformer prepare` and `train --data DATA_DIR` as a user runs them: a DATA_DIR written once,
trained from, its vocabulary kept, a changed array refused naming the file; `train --data SPEC` prepares
into the run and reuses that when it resumes."""

import json

import numpy as np
import pytest

from keras_transformer.cli import main
from keras_transformer.corpus import write_tsv
from keras_transformer.run_dir import RunDir

TINY = ["--epochs", "1", "--batch-tokens", "256", "--num-layers", "1", "--hidden-dim", "16", "--num-heads", "2",
        "--intermediate-dim", "32", "--dropout", "0", "--warmup-steps", "10", "--max-source-length", "24",
        "--max-target-length", "24"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, demo_pairs):
    path = tmp_path_factory.mktemp("corpus") / "train.tsv"
    write_tsv(demo_pairs.train[:200], path)
    return path


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory, corpus):
    out = tmp_path_factory.mktemp("prepared") / "data"
    assert main(["prepare", "--data", str(corpus), "--out", str(out), "--source-vocab-size", "120",
                 "--target-vocab-size", "130", "--max-source-length", "24", "--max-target-length", "24"]) == 0
    return out


def test_train_reads_a_data_dir_and_keeps_its_tokenizers(data_dir, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--data", str(data_dir), "--out", str(run), *TINY]) == 0
    for name in ("source.tokenizer.json", "target.tokenizer.json"):
        assert (run / name).read_bytes() == (data_dir / name).read_bytes()
    config = RunDir(run).read_config()
    assert config["training"]["source_vocab_size"] == 120 and config["training"]["target_vocab_size"] == 130
    assert config["data"]["prepared"] and config["status"] == "complete"
    assert "Training pairs: 200 kept" in capsys.readouterr().out
    assert not (run / "data").exists()  # a DATA_DIR is read where it is, not copied
    from keras_transformer.export.shortlist import training_pairs
    from keras_transformer.prepared_data import PreparedData

    pairs = list(training_pairs(RunDir(run), log=lambda *a: None))  # what `export --shortlist` learns from
    train = PreparedData.open(data_dir).train
    assert len(pairs) == 200 and all(np.array_equal(a, b) for pair, i in zip(pairs, range(200))
                                     for a, b in zip(pair, train.pair(i)))


def test_a_data_dir_with_another_vocabulary_or_a_changed_array_is_refused(data_dir, tmp_path, capsys):
    assert main(["train", "--data", str(data_dir), "--out", str(tmp_path / "a"), "--source-vocab-size", "999",
                 *TINY]) == 2
    assert "prepared with source_vocab_size=120, expected source_vocab_size=999" in capsys.readouterr().err
    assert main(["train", "--data", str(data_dir), "--data", str(data_dir), "--out", str(tmp_path / "b")]) == 2
    assert "a DATA_DIR is used alone" in capsys.readouterr().err
    import shutil

    changed = tmp_path / "changed"
    shutil.copytree(data_dir, changed)
    ids = changed / "train" / "target_ids.npy"
    ids.write_bytes(ids.read_bytes()[:-2])  # truncated by one id
    assert main(["train", "--data", str(changed), "--out", str(tmp_path / "c"), *TINY]) == 2
    error = capsys.readouterr().err
    assert "train/target_ids.npy" in error and "Traceback" not in error
    assert main(["train", "--data", str(data_dir), "--out", str(tmp_path / "d"), "--bpe-dropout", "0.1", *TINY]) == 2
    assert "bpe_dropout re-segments the training text each epoch" in capsys.readouterr().err


def test_train_on_specs_prepares_into_the_run_and_resumes_from_it(corpus, tmp_path, capsys):
    run = tmp_path / "run"
    args = ["train", "--data", f"{corpus}*2", "--out", str(run), "--source-vocab-size", "120",
            "--target-vocab-size", "130", *TINY]
    assert main(args) == 0
    manifest = json.loads((run / "data" / "manifest.json").read_text())
    assert [(item["spec"], item["repeat"]) for item in manifest["inputs"]] == [(str(corpus), 2)]
    assert "Training pairs: 400 kept" in capsys.readouterr().out  # 200 pairs stored once, read twice an epoch
    stamp = (run / "data" / "manifest.json").stat().st_mtime_ns
    config = RunDir(run).read_config()
    config["status"] = "training"  # as if interrupted after its first epoch
    (run / "config.json").write_text(json.dumps(config))
    assert main(args) == 0
    assert (run / "data" / "manifest.json").stat().st_mtime_ns == stamp  # reused, not prepared again
    assert np.isfinite(float(RunDir(run).read_history()[-1]["loss"]))
