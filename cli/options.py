"""Option groups that several commands share, built from the dataclasses that declare them.

Decoding flags come from `DecodingOptions`' fields: the flag is the field's name with dashes (two
keep their historical CLI names, `FLAG_NAMES`), the help text and its default are the field's own,
and every flag defaults to None so that only what the user typed reaches `DecodingOptions`.
"""

from __future__ import annotations

import argparse
import dataclasses

FLAG_NAMES = {"num_hypotheses": "--n-best", "return_scores": "--scores",  # the rest: --field-name
              "use_shortlist": "--no-shortlist"}  # a bool that defaults to True is turned off by --no-FIELD
TYPES = {"int": int, "float": float}  # the kinds besides "bool" and "str"


def add_data_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--source-column", help="source column of a .csv SPEC")
    parser.add_argument("--target-column", help="target column of a .csv SPEC")


def add_decoding_options(parser: argparse.ArgumentParser, only: tuple[str, ...] | None = None,
                         leave_out: tuple[str, ...] = ()) -> None:
    """One flag per `DecodingOptions` field (those in `only`, if given, minus `leave_out`)."""
    from keras_transformer.serve.decoding_options import DecodingOptions

    for field in dataclasses.fields(DecodingOptions):
        if (only is not None and field.name not in only) or field.name in leave_out:
            continue
        flag = FLAG_NAMES.get(field.name, "--" + field.name.replace("_", "-"))
        kind = field.metadata["bounds"]["kind"]
        default = "none" if field.default is None else f"{field.default:g}" if kind == "float" else field.default
        help_text = f"{field.metadata['help']} (default: {default})".replace("%", "%%")
        if kind == "bool":  # a flag sets the opposite of the default
            parser.add_argument(flag, dest=field.name, action="store_const", const=not field.default, default=None,
                                help=help_text)
        elif kind == "str":
            parser.add_argument(flag, dest=field.name, choices=field.metadata["bounds"]["choices"], default=None,
                                help=help_text)
        else:
            parser.add_argument(flag, dest=field.name, type=TYPES[kind], default=None,
                                metavar=field.metadata["metavar"], help=help_text)


def decoding_options(args: argparse.Namespace) -> dict:
    """The `DecodingOptions` fields given on the command line, by name (the others keep their defaults)."""
    from keras_transformer.serve.decoding_options import DecodingOptions

    given = {field.name: getattr(args, field.name, None) for field in dataclasses.fields(DecodingOptions)}
    return {name: value for name, value in given.items() if value is not None}


def add_replica_options(parser: argparse.ArgumentParser, replicas_default: str) -> None:
    parser.add_argument("--replicas", type=int, metavar="R",
                        help=f"sets of onnxruntime sessions decoding batches at once (default: {replicas_default})")
    parser.add_argument("--threads", type=int, metavar="T",
                        help="onnxruntime intra-op threads per replica (default: 1; a decoding step is too small "
                             "to split, so cores pay as replicas)")


def replicas_and_threads(args: argparse.Namespace, every_core: bool) -> tuple[int, int]:
    """(threads, replicas): as given, else 1 thread and, when `every_core`, one replica per core left
    (cores / threads), else 1."""
    threads = args.threads or 1
    replicas = args.replicas or (max(1, available_cores() // threads) if every_core else 1)
    return threads, replicas


def available_cores() -> int:
    """The cores this process may run on."""
    import os

    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def check_port(port: int) -> None:
    from keras_transformer.serve.errors import OptionError

    if not 0 <= port <= 65535:
        raise OptionError(f"--port: expected 0..65535, got {port}")


class IntermixedArgumentParser(argparse.ArgumentParser):
    """Lets options stand between positionals, as in `translate BUNDLE --beam-size 4 TEXT`: plain
    argparse fills the nargs="*" TEXT with nothing at the first option and then rejects TEXT
    (bpo-14191). `parse_known_intermixed_args` calls `parse_known_args` itself, hence the flag."""

    _intermixing = False

    def parse_known_args(self, args=None, namespace=None):
        if self._intermixing:
            return super().parse_known_args(args, namespace)
        self._intermixing = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._intermixing = False
