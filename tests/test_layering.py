"""The package's layers and what each import costs.

    keras_transformer.serve   onnxruntime, numpy, tokenizers (+ starlette for HTTP): imports nothing else of ours
    keras_transformer         model, data, training: may import serve; never export or cli
    keras_transformer.export  may import keras_transformer and serve; never cli
    keras_transformer.cli     the composition root: imports anything, lazily

Static checks read every module's imports (so a lazy import in an untested branch is caught too);
the subprocess checks import for real and look at `sys.modules`.
"""

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("tensorflow", "keras", "tf2onnx", "onnx", "matplotlib", "sacrebleu")


def imports_of(folder):
    """(file name, line, absolute module name) of every import in `folder/*.py`; relative imports
    are resolved against the folder's installed package name."""
    package = {"serve": "keras_transformer.serve", "export": "keras_transformer.export",
               "cli": "keras_transformer.cli", "keras_transformer": "keras_transformer"}[folder]
    for path in sorted((ROOT / folder).glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    yield path.name, node.lineno, alias.name
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.rsplit(".", node.level - 1)[0]
                    yield path.name, node.lineno, f"{base}.{node.module}" if node.module else base
                else:
                    yield path.name, node.lineno, node.module


def test_serve_imports_nothing_of_ours_but_itself():
    for name, line, module in imports_of("serve"):
        top = module.split(".")[0]
        assert top not in HEAVY and top not in ("serve", "export", "cli"), f"serve/{name}:{line} imports {module}"
        if top == "keras_transformer":
            assert module.startswith("keras_transformer.serve"), f"serve/{name}:{line} imports {module}"


def test_the_model_package_never_imports_export_or_cli():
    for name, line, module in imports_of("keras_transformer"):
        assert not module.startswith(("keras_transformer.export", "keras_transformer.cli", "export", "cli")), \
            f"keras_transformer/{name}:{line} imports {module}"
        assert module.split(".")[0] not in ("serve", "export"), f"keras_transformer/{name}:{line}: old path {module}"


def test_export_never_imports_cli():
    for name, line, module in imports_of("export"):
        assert not module.startswith("keras_transformer.cli"), f"export/{name}:{line} imports {module}"


def loaded_after(code: str) -> list[str]:
    """The heavy modules (and our modules) in sys.modules after running `code` in a fresh interpreter."""
    script = code + textwrap.dedent("""
        import sys
        print(" ".join(sorted(m for m in sys.modules if m.split(".")[0] in %r or m.startswith("keras_transformer"))))
    """ % (HEAVY,))
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_translating_with_a_bundle_loads_no_tensorflow_and_none_of_the_model(tiny_bundle):
    modules = loaded_after(textwrap.dedent(f"""
        from keras_transformer.serve import Translator
        import keras_transformer.serve.http_server
        out = Translator({str(tiny_bundle)!r}).translate(["I sit.", ""], beam_size=2)
        assert len(out) == 2 and out[1] == "", out
    """))
    assert all(m == "keras_transformer" or m.startswith("keras_transformer.serve") for m in modules), modules


def test_the_data_side_loads_no_tensorflow():
    modules = loaded_after("import keras_transformer, keras_transformer.corpus, keras_transformer.serve.tokenizer\n"
                           "import keras_transformer.prepare, keras_transformer.training_batches\n"
                           "from keras_transformer import TransformerConfig")
    assert not [m for m in modules if m.split(".")[0] in HEAVY], modules


def test_evaluate_runs_without_tensorflow_or_keras(tiny_run, tiny_bundle, tmp_path):
    """`evaluate` only runs onnxruntime: with TensorFlow and Keras made unimportable it still works."""
    script = textwrap.dedent(f"""
        import sys
        sys.modules["tensorflow"] = sys.modules["keras"] = None  # any import of them now fails
        from keras_transformer.cli import main
        code = main(["evaluate", {str(tiny_bundle)!r}, "--data", {str(Path(tiny_run) / "test.tsv")!r},
                     "--max-pairs", "5", "--json", {str(tmp_path / "scores.json")!r}])
        assert code == 0, code
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "scores.json").is_file()


def test_touching_a_keras_name_registers_every_keras_object():
    modules = loaded_after("import keras_transformer\nkeras_transformer.build_transformer\n"
                           "import keras\n"
                           "names = keras.saving.get_registered_object\n"
                           "for n in ('DecoderLayer', 'WarmupInverseSquareRoot', 'MaskedSparseCrossEntropy',"
                           " 'MaskedAccuracy', 'AddAndNorm'):\n"
                           "    assert names('keras_transformer>' + n) is not None, n\n")
    assert "keras_transformer.keras_objects" in modules


def test_lazy_names_are_listed_and_unknown_ones_are_attribute_errors():
    import keras_transformer

    assert {"TransformerConfig", "build_transformer", "Translator", "load_translator"} <= set(dir(keras_transformer))
    with pytest.raises(AttributeError, match="has no attribute 'nonexistent'"):
        keras_transformer.nonexistent


PACKAGES = {"keras_transformer": "keras_transformer", "serve": "keras_transformer.serve",
            "export": "keras_transformer.export", "cli": "keras_transformer.cli", "bench": "bench",
            "experiments": "experiments"}


def import_graph() -> dict[str, set[str]]:
    """Module -> the modules of ours it imports, from every import statement, those inside functions
    (lazy imports) included; `from package import name` counts when `name` is a module."""
    modules = {}
    for folder, package in PACKAGES.items():
        for path in sorted((ROOT / folder).glob("*.py")):
            name = package if path.stem == "__init__" else f"{package}.{path.stem}"
            modules[name] = (path, package)
    graph = {}
    for name, (path, package) in modules.items():
        edges = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                edges.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = package.rsplit(".", node.level - 1)[0] if node.level else ""
                module = ".".join(part for part in (base, node.module) if part)
                submodules = {f"{module}.{alias.name}" for alias in node.names} & set(modules)
                edges.update(submodules or {module})  # `from package import module` needs the module only
        graph[name] = {edge for edge in edges if edge in modules and edge != name}
    return graph


def test_no_import_cycles_lazy_imports_included():
    graph, state, stack = import_graph(), {}, []

    def visit(module):
        state[module] = "open"
        stack.append(module)
        for other in sorted(graph[module]):
            if state.get(other) == "open":
                cycle = stack[stack.index(other):] + [other]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if other not in state:
                visit(other)
        stack.pop()
        state[module] = "done"

    assert len(graph) > 80  # every module of the project was read
    for module in sorted(graph):
        if module not in state:
            visit(module)
