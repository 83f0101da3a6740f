"""Tests of `keras-transformer translate` and the serve command's missing-extra message.

A few run the real command in a subprocess (exit codes, stdin, one-line errors); the rest call
`keras_transformer.cli.main` in-process, which is faster.
"""

import io
import subprocess
import sys
from pathlib import Path

import pytest

import keras_transformer.cli
from keras_transformer.serve import Translator

ROOT = Path(__file__).resolve().parents[1]
TEXTS = ["I sit.", "you do not call the good girls.", "do you call the girl?"]


@pytest.fixture(scope="module")
def translator(tiny_bundle):
    return Translator(tiny_bundle)


def cli(*args, stdin=""):
    return subprocess.run([sys.executable, "-m", "keras_transformer.cli", *map(str, args)], cwd=ROOT, input=stdin,
                          capture_output=True, text=True, encoding="utf-8", timeout=120)


def test_text_arguments_print_one_line_each(tiny_bundle, translator):
    result = cli("translate", tiny_bundle, *TEXTS)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n") == translator.translate(TEXTS) + [""]


def test_stdin_lines_blank_lines_stay_blank(tiny_bundle, translator):
    result = cli("translate", tiny_bundle, "--beam-size", "3", stdin=f"{TEXTS[0]}\n\n{TEXTS[1]}\r\n{TEXTS[2]}")
    assert result.returncode == 0, result.stderr
    expected = translator.translate([TEXTS[0], "", TEXTS[1], TEXTS[2]], beam_size=3)
    assert result.stdout.split("\n") == expected + [""]


def test_missing_bundle_is_one_line_exit_2(tmp_path):
    result = cli("translate", tmp_path / "nowhere", "I sit.")
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith("keras-transformer translate: error: ")
    assert "nowhere: expected a bundle directory" in result.stderr


def run_main(capsys, monkeypatch, *args, stdin=b""):
    """`main()` in-process: (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8"))
    code = keras_transformer.cli.main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_input_output_files(tiny_bundle, translator, tmp_path, capsys, monkeypatch):
    source = tmp_path / "in.txt"
    source.write_text("\n".join(TEXTS * 20 + ["", "  "]) + "\n", encoding="utf-8")
    out = tmp_path / "out.txt"
    code, stdout, stderr = run_main(capsys, monkeypatch, "translate", tiny_bundle, "--input", source, "--output", out,
                                    "--batch-size", "7", "--beam-size", "2")
    assert code == 0 and stdout == ""
    assert "Translating in.txt: 62 lines" in stderr
    lines = out.read_text(encoding="utf-8").split("\n")
    assert lines == translator.translate(TEXTS * 20 + ["", "  "], beam_size=2) + [""]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.txt", "out.txt"]  # no temporary file left


@pytest.mark.parametrize("n_best", [1, 2])
def test_an_interrupted_file_translation_resumes_after_its_last_complete_line(tiny_bundle, translator, tmp_path,
                                                                              capsys, monkeypatch, n_best):
    texts = [f"{text} {i}" for i in range(15) for text in TEXTS]
    source, out = tmp_path / "in.txt", tmp_path / "out.txt"
    source.write_text("\n".join(texts) + "\n", encoding="utf-8")
    options = ["--beam-size", "2", "--n-best", str(n_best), "--batch-size", "4", "--replicas", "2"]
    assert run_main(capsys, monkeypatch, "translate", tiny_bundle, "--input", source, "--output", out, *options)[0] == 0
    full = out.read_bytes()
    assert full.decode("utf-8").split("\n")[:-1] == [
        h.text for r in translator.translate_batch(texts, beam_size=2, num_hypotheses=n_best) for h in r.hypotheses]
    lines = full.split(b"\n")
    out.write_bytes(b"\n".join(lines[:7]) + b"\n" + lines[7][:3])  # killed while writing line 8
    code, _, stderr = run_main(capsys, monkeypatch, "translate", tiny_bundle, "--input", source, "--output", out,
                               "--resume", *options)
    assert code == 0 and out.read_bytes() == full
    assert f"Translating in.txt: {len(texts)} lines" in stderr
    code, _, stderr = run_main(capsys, monkeypatch, "translate", tiny_bundle, "--input", source, "--resume")
    assert code == 2 and "--resume continues an --output written from an --input: expected both" in stderr


def test_input_to_stdout_and_output_from_stdin(tiny_bundle, translator, tmp_path, capsys, monkeypatch):
    source = tmp_path / "in.txt"
    source.write_bytes("\ufeff{}\r\n{}\r\n".format(*TEXTS[:2]).encode("utf-8"))  # BOM and CRLF
    code, stdout, _ = run_main(capsys, monkeypatch, "translate", tiny_bundle, "--input", source)
    assert code == 0 and stdout.split("\n") == translator.translate(TEXTS[:2]) + [""]
    out = tmp_path / "out.txt"
    code, stdout, _ = run_main(capsys, monkeypatch, "translate", tiny_bundle, "--output", out,
                               stdin="\n".join(TEXTS).encode())
    assert code == 0 and stdout == ""
    assert out.read_text(encoding="utf-8").split("\n") == translator.translate(TEXTS) + [""]


def test_options_may_stand_between_bundle_and_texts(tiny_bundle, translator, capsys, monkeypatch):
    code, stdout, _ = run_main(capsys, monkeypatch, "translate", tiny_bundle, "--max-length", "3", "--beam-size",
                               "2", *TEXTS, "--threads", "1")
    assert code == 0
    assert stdout.split("\n") == translator.translate(TEXTS, beam_size=2, max_length=3) + [""]


def test_too_long_input_warns_once_on_stderr(tiny_bundle, capsys, monkeypatch):
    long_text = " ".join(["sit"] * 200)
    code, stdout, stderr = run_main(capsys, monkeypatch, "translate", tiny_bundle, long_text, long_text, "ok")
    assert code == 0 and len(stdout.split("\n")) == 4
    assert stderr.count("\n") == 1
    assert stderr.startswith("keras-transformer translate: warning: 2 of 3 texts exceed max_source_length")


@pytest.mark.parametrize("args, stdin, message", [
    (["--beam-size", "0", "x"], b"", "beam_size: expected an int >= 1, got 0"),
    (["--max-length", "0"], b"x\n", "max_length: expected an int >= 1, got 0"),
    (["--input", "{tmp}/missing.txt"], b"", "--input {tmp}/missing.txt: no such file"),
    (["--input", "{tmp}"], b"", "expected a text file, got a directory"),
    (["--input", "{tmp}/latin1.txt"], b"", "expected UTF-8 text, got an undecodable byte on line 2"),
    (["--input", "{tmp}/latin1.txt", "x"], b"", "expected TEXT arguments or --input FILE, got both"),
    (["--output", "{tmp}/no/out.txt", "x"], b"", "directory {tmp}/no does not exist"),
    ([], b"ok\n\xe9t\xe9\n", "stdin line 2: expected UTF-8 text, got an undecodable byte"),
])
def test_errors_are_one_line_exit_2(tiny_bundle, tmp_path, capsys, monkeypatch, args, stdin, message):
    (tmp_path / "latin1.txt").write_bytes(b"fine\ncaf\xe9\n")
    args = [a.format(tmp=tmp_path) for a in args]
    code, _, stderr = run_main(capsys, monkeypatch, "translate", tiny_bundle, *args, stdin=stdin)
    assert code == 2
    assert stderr.count("\n") == 1 and stderr.startswith("keras-transformer translate: error: ")
    assert message.format(tmp=tmp_path) in stderr


def test_serve_without_the_http_extra_says_what_to_install(tiny_bundle):
    script = ("import sys; sys.modules['starlette'] = None; import keras_transformer.cli; "
              f"sys.exit(keras_transformer.cli.main(['serve', {str(tiny_bundle)!r}]))")
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "needs the HTTP extra" in result.stderr and "pip install 'keras-transformer-nmt[http]'" in result.stderr


def test_serve_on_a_taken_port_is_one_line_exit_2(tiny_bundle, capsys, monkeypatch):
    import socket

    pytest.importorskip("uvicorn")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, _, stderr = run_main(capsys, monkeypatch, "serve", tiny_bundle, "--port", port)
    assert code == 2
    assert stderr == f"keras-transformer serve: error: cannot listen on 127.0.0.1:{port}: Address already in use\n"
