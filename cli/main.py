"""`keras-transformer COMMAND ...`: builds the parser from the command modules and runs one.

Each command module (`demo`, `prepare`, `train`, `distill`, `export`, `evaluate`, `plots`, `translate`,
`serve`) has `add_parsers(commands)`, which registers its subcommands with their handler. No module imports
TensorFlow or Keras at the top: `translate BUNDLE`, `evaluate`, `serve` and `web` run in the slim
install, and the commands that train or read a Keras model import TensorFlow when they run
(`tensorflow_import.import_tensorflow_quietly`).

Errors: our own (`KerasTransformerError`: a bad option, file, corpus or bundle) and `OSError` are
printed as one line, exit code 2; anything else is a bug and keeps its traceback.
KERAS_TRANSFORMER_DEBUG=1 shows the traceback of ours too.
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ logging: warnings and errors only
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

from . import demo, distill, evaluate, export, plots, prepare, serve, train, translate  # noqa: E402

COMMAND_MODULES = (demo, prepare, train, distill, export, evaluate, plots, translate, serve)
TRAINING_MODULES = {"tensorflow", "keras", "tf2onnx", "onnx", "matplotlib", "sacrebleu"}
DESCRIPTION = ("The Transformer of 'Attention Is All You Need' in Keras 3: train with model.fit, export to "
               "ONNX, translate on a CPU (onnxruntime) or in a browser (onnxruntime-web).")
DEBUG_ENV = "KERAS_TRANSFORMER_DEBUG"  # set to 1 to see full tracebacks


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="keras-transformer", description=DESCRIPTION)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.add_parsers(commands)
    return parser


def main(argv=None) -> int:
    from keras_transformer.serve.errors import KerasTransformerError

    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.argv = argv[1:]  # the command's own arguments, for commands that relaunch themselves
    try:
        result = args.handler(args)
    except ModuleNotFoundError as error:
        if error.name and error.name.split(".")[0] in TRAINING_MODULES:
            print(f"keras-transformer {args.command}: error: this command needs the training extras "
                  f"({error.name} is not installed): pip install 'keras-transformer-nmt[train]'", file=sys.stderr)
            return 2
        raise
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (KerasTransformerError, OSError) as error:
        if os.environ.get(DEBUG_ENV):
            raise
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        print(f"keras-transformer {args.command}: error: {message}", file=sys.stderr)
        return 2
    return result if isinstance(result, int) else 0
