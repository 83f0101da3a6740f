"""The slim install: `pip install keras-transformer` with no extras gives a working `translate`.

Creates a fresh virtual environment, installs a copy of the project (non-editable, base
dependencies only: numpy, onnxruntime, tokenizers) and checks that TensorFlow is absent there while
the `keras-transformer translate` command and `from keras_transformer.serve import Translator` work. Slow (a venv and
a pip install, seconds to minutes depending on the wheel cache); deselect with `-m "not slow"`.
"""

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from keras_transformer.serve import Translator

ROOT = Path(__file__).resolve().parents[1]
NOT_SHIPPED = (".git", ".venv", "node_modules", "__pycache__", "*.egg-info", "build", "dist", "runs", ".pytest_cache",
               ".hypothesis", "tmp")
INSTALL_TIMEOUT_S = 600


@pytest.fixture(scope="module")
def slim_venv(tmp_path_factory):
    """(python, keras-transformer script, a clean environment, a working directory) of a fresh venv."""
    base = tmp_path_factory.mktemp("slim")
    # pip builds in the source tree (build/, *.egg-info): build from a copy, not from the checkout.
    source = Path(shutil.copytree(ROOT, base / "src", ignore=shutil.ignore_patterns(*NOT_SHIPPED)))
    venv = base / "venv"
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=INSTALL_TIMEOUT_S, env=env)
    python = venv / "bin" / "python"
    result = subprocess.run([str(python), "-m", "pip", "install", "--quiet", str(source)], capture_output=True,
                            text=True, timeout=INSTALL_TIMEOUT_S, env=env)
    assert result.returncode == 0, f"pip install failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    work = base / "work"  # a cwd without the checkout, so `python -c` imports the installed package
    work.mkdir()
    return python, venv / "bin" / "keras-transformer", env, work


@pytest.mark.slow
def test_the_wheel_installs_one_top_level_package(tmp_path):
    source = Path(shutil.copytree(ROOT, tmp_path / "src", ignore=shutil.ignore_patterns(*NOT_SHIPPED)))
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(tmp_path / "dist"),
                             str(source)], capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    assert wheel.name.startswith("keras_transformer_nmt-")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        entry_points = archive.read(next(n for n in names if n.endswith(".dist-info/entry_points.txt"))).decode()
        metadata = archive.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    top_level = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert top_level == {"keras_transformer"}
    for package in ("serve", "export", "cli"):
        assert f"keras_transformer/{package}/__init__.py" in names
    assert "keras-transformer = keras_transformer.cli:main" in entry_points
    assert "Name: keras-transformer-nmt" in metadata


def run(slim_venv, *args, stdin=None):
    _, _, env, work = slim_venv
    return subprocess.run([str(a) for a in args], cwd=work, env=env, input=stdin, capture_output=True, text=True,
                          encoding="utf-8", timeout=120)


@pytest.mark.slow
def test_slim_install_has_no_tensorflow(slim_venv):
    python = slim_venv[0]
    for module in ("tensorflow", "keras", "tf2onnx"):
        result = run(slim_venv, python, "-c", f"import {module}")
        assert result.returncode != 0 and "ModuleNotFoundError" in result.stderr, module


@pytest.mark.slow
def test_slim_install_translates_on_the_command_line(slim_venv, tiny_bundle):
    script = slim_venv[1]
    expected = Translator(tiny_bundle).translate(["some text", "I sit."])
    result = run(slim_venv, script, "translate", tiny_bundle, "some text")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n") == [expected[0], ""]  # one line
    result = run(slim_venv, script, "translate", tiny_bundle, stdin="some text\n\nI sit.\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n") == [expected[0], "", expected[1], ""]


@pytest.mark.slow
def test_slim_install_python_api(slim_venv, tiny_bundle):
    python, _, _, work = slim_venv
    code = ("import sys; from keras_transformer.serve import Translator; "
            f"out = Translator({str(tiny_bundle)!r}).translate(['some text', '']); "
            "assert out[1] == '' and isinstance(out[0], str), out; "
            "heavy = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras') or "
            "m.startswith(('keras_transformer.export', 'keras_transformer.model', 'keras_transformer.cli'))]; "
            "assert not heavy, heavy; import keras_transformer.serve as serve; print(serve.__file__)")
    result = run(slim_venv, python, "-c", code)
    assert result.returncode == 0, result.stderr
    assert "site-packages" in result.stdout and str(ROOT) not in result.stdout  # the installed copy


@pytest.mark.slow
def test_slim_install_serve_asks_for_the_http_extra(slim_venv, tiny_bundle):
    result = run(slim_venv, slim_venv[1], "serve", tiny_bundle)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "pip install 'keras-transformer-nmt[http]'" in result.stderr
