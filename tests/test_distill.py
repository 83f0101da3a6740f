"""`keras-transformer distill` on a tiny teacher: the teacher's beam translations become the student's
targets (streamed to a TSV, resumed after an interruption, reused by the next student), the student keeps
the teacher's tokenizers and options except those given, and trains like any run."""

import json

import pytest

from keras_transformer.cli import main
from keras_transformer.corpus import read_parallel_corpus, write_tsv
from keras_transformer.distillation import RECORD_FILE
from keras_transformer.run_dir import RunDir
from keras_transformer.serve import Translator
from keras_transformer.training import TrainingSettings

STUDENT = ["--epochs", "1", "--batch-tokens", "256", "--warmup-steps", "10", "--dropout", "0"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, demo_pairs):
    path = tmp_path_factory.mktemp("distill") / "train.tsv"
    write_tsv(demo_pairs.train[:60], path)
    return path


def test_a_student_learns_from_its_teachers_beam_translations(tiny_bundle, corpus, tmp_path, capsys):
    student, distilled = tmp_path / "student", tmp_path / "student.distilled"
    assert main(["distill", str(tiny_bundle), "--data", f"{corpus}*2", "--out", str(student), "--beam-size", "2",
                 "--decoder-layers", "1", *STUDENT]) == 0
    record = json.loads((distilled / RECORD_FILE).read_text())
    assert record["status"] == "complete" and record["decoding"] == {"beam_size": 2}
    (item,) = record["inputs"]
    rows = [line.split("\t") for line in (distilled / item["file"]).read_text(encoding="utf-8").splitlines()]
    sources = [source for source, _ in read_parallel_corpus(str(corpus))[0]]
    teacher = Translator(tiny_bundle)
    assert [r[0] for r in rows] == sources
    assert [r[1] for r in rows] == teacher.translate(sources, beam_size=2)

    run = RunDir(student)
    config = run.read_config()
    for name in ("source.tokenizer.json", "target.tokenizer.json"):  # the teacher's vocabulary
        assert (student / name).read_bytes() == (tiny_bundle / name).read_bytes()
    teacher_model = json.loads((tiny_bundle / "config.json").read_text())["model"]
    model = config["model_options"]
    assert (model["encoder_layers"], model["decoder_layers"]) == (teacher_model["encoder_layers"], 1)
    assert model["hidden_dim"] == teacher_model["hidden_dim"] and config["status"] == "complete"
    assert config["data"]["train"] == [f"{distilled / item['file']}*2"]  # the distilled pairs, twice an epoch
    translated = sum(1 for _, output in rows if output.strip())  # an empty output is a pair with an empty side
    out = capsys.readouterr().out
    assert f"Training pairs: {2 * translated} kept" in out
    # the bundle records its run's training settings: the student takes them except those given, said aloud
    assert config["training"]["warmup_steps"] == 10 and config["training"]["label_smoothing"] == 0.0
    assert config["training"]["label_smoothing"] != TrainingSettings().label_smoothing  # the teacher's, not train's
    assert "The student trains with warmup 10 steps, learning-rate scale 1.0, label smoothing 0.0" in out


def test_an_interrupted_distillation_resumes_and_a_finished_one_is_reused(tiny_bundle, corpus, tmp_path, capsys):
    distilled = tmp_path / "shared.distilled"
    first = ["distill", str(tiny_bundle), "--data", str(corpus), "--distilled", str(distilled), *STUDENT]
    assert main([*first, "--out", str(tmp_path / "a")]) == 0
    record = json.loads((distilled / RECORD_FILE).read_text())
    tsv = distilled / record["inputs"][0]["file"]
    complete = tsv.read_bytes()
    lines = complete.split(b"\n")
    tsv.write_bytes(b"\n".join(lines[:20]) + b"\n" + lines[20][:5])  # killed while writing line 21
    (distilled / RECORD_FILE).write_text(json.dumps({**record, "status": "translating"}))
    capsys.readouterr()
    assert main([*first, "--out", str(tmp_path / "b")]) == 0
    assert tsv.read_bytes() == complete
    assert "(20 from an earlier attempt)" in capsys.readouterr().out
    assert main([*first, "--out", str(tmp_path / "c")]) == 0
    assert "reused" in capsys.readouterr().out and tsv.read_bytes() == complete
    assert main(["distill", str(tiny_bundle), "--data", str(corpus), "--distilled", str(distilled), "--beam-size", "3",
                 "--out", str(tmp_path / "d"), *STUDENT]) == 2  # another decoding: refused without --force
    assert "holds the distillation of another teacher, corpus or decoding" in capsys.readouterr().err


def test_a_bundle_teacher_gives_the_training_settings_it_records_and_an_older_bundle_none(tiny_bundle, tiny_run,
                                                                                           tmp_path):
    import shutil

    from keras_transformer.cli.distill import _teacher_options

    recorded = json.loads((tiny_bundle / "config.json").read_text())["training"]
    assert recorded == RunDir(tiny_run).read_config()["training"]  # the run's, as exported
    assert _teacher_options(tiny_bundle, tiny_bundle)["warmup_steps"] == recorded["warmup_steps"] == 30
    older = tmp_path / "older"  # a bundle exported before bundles recorded training settings
    shutil.copytree(tiny_bundle, older)
    config = json.loads((older / "config.json").read_text())
    del config["training"]
    (older / "config.json").write_text(json.dumps(config))
    options = _teacher_options(older, older)
    assert "warmup_steps" not in options and options["hidden_dim"] == config["model"]["hidden_dim"]
