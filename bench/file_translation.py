"""File translation at 10k and 1M lines: `translate --input F --output G` streamed on every core, against
the whole-file translation it replaced.

    python -m bench.file_translation --bundle BUNDLE [--lines 10000 1000000] [--sentences SPEC]
                                     [--old-rev REV] [--out FILE]

Each run is its own process (peak RSS from `wait4`): the streamed command with its defaults (one replica
per core), the same pinned to one core (`taskset -c 0 ... --replicas 1`), and the command of `--old-rev`
(default: the last commit before streaming: it read the whole file and kept every translation until the
end), whose lines/s is today's whole-list `translate_batch`. Outputs are compared line for line. Then,
in this process, replicas with their own onnxruntime sessions against one shared set.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import machine_description, markdown_table
from bench.corpus_scale import old_code
from bench.load import SENTENCES
from bench.recipe_data import ROOT

OLD_REV = "6f9778b"  # the last commit whose `translate --input` held the whole file


def write_input(path: Path, lines: int, texts: list[str]) -> Path:
    if not path.is_file():
        with open(path, "w", encoding="utf-8") as out:
            for i in range(lines):
                out.write(texts[i % len(texts)] + "\n")
    return path


def translate_file(bundle, source: Path, output: Path, extra=(), env=None, pin: str | None = None, log=print) -> dict:
    command = [sys.executable, "-m", "keras_transformer.cli", "translate", str(bundle), "--input", str(source),
               "--output", str(output), *extra]
    if pin is not None:
        command = ["taskset", "-c", pin, *command]
    log("$ " + shlex.join(command))
    started = time.time()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, text=True,
                               cwd=tempfile.gettempdir())  # not the checkout: its folders would shadow PYTHONPATH
    stderr = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"translate failed: {stderr[-2000:]}")
    seconds = time.time() - started
    return {"seconds": seconds, "peak_rss_mib": usage.ru_maxrss / 1024}


def replica_sessions(bundle, texts: list[str], replicas: int, rounds: int = 2) -> list[list[str]]:
    """`Translator.translate_iterable` of `texts` with `replicas` replicas, each with its own onnxruntime
    sessions against one set of sessions run from every replica's thread (interleaved, best of `rounds`):
    the rows of a table. Same outputs asserted."""
    from keras_transformer.serve import Translator

    best, outputs = {}, {}
    for _ in range(rounds):
        for shared in (False, True):
            translator = Translator(bundle, replicas=replicas, shared_sessions=shared)
            started = time.perf_counter()
            outputs[shared] = [t.text for t in translator.translate_iterable(texts)]
            best[shared] = min(best.get(shared, float("inf")), time.perf_counter() - started)
    if outputs[False] != outputs[True]:
        raise AssertionError("shared sessions changed the translations")
    return [[f"{replicas} replicas, {'one shared set of sessions' if shared else 'own sessions each'}",
             f"{len(texts):,}", f"{len(texts) / best[shared]:,.0f}"] for shared in (False, True)]


def run(args) -> str:
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    log = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731
    texts = SENTENCES
    if args.sentences:
        from keras_transformer.corpus import read_parallel_corpus

        texts = [source for source, _ in read_parallel_corpus(args.sentences)[0]]
    old_env = dict(os.environ, PYTHONPATH=str(old_code(work, args.old_rev, Path(args.repo))))
    rows = []
    for lines in args.lines:
        source = write_input(work / f"input-{lines}.txt", lines, texts)
        outputs = {}
        for label, extra, env, pin in (("streamed, every core", [], None, None),
                                       ("streamed, 1 core", ["--replicas", "1"], None, "0"),
                                       (f"whole file ({args.old_rev})", [], old_env, None)):
            output = work / f"output-{lines}-{len(outputs)}.txt"
            figures = translate_file(args.bundle, source, output, extra, env, pin, log)
            outputs[label] = output.read_bytes()
            output.unlink()
            rows.append([f"{lines:,}", label, f"{figures['seconds']:.1f}", f"{lines / figures['seconds']:,.0f}",
                         f"{figures['peak_rss_mib']:,.0f}"])
        first = next(iter(outputs.values()))
        same = all(output == first for output in outputs.values())
        rows[-1].append("identical" if same else "**differ**")
        rows[-2].append("")
        rows[-3].append("")
    header = ["lines", "command", "seconds", "lines/s", "peak RSS MiB", "outputs"]
    from keras_transformer.cli.options import available_cores

    sessions = replica_sessions(args.bundle, [texts[i % len(texts)] for i in range(min(args.lines))],
                                available_cores())
    return "\n".join([
        "## File translation",
        "",
        f"`python -m bench.file_translation {' '.join(shlex.quote(a) for a in args.argv)}`",
        "",
        *machine_description(),
        "",
        markdown_table(header, rows),
        "",
        "Replicas with their own sessions or one shared set (`Translator(..., shared_sessions=True)`), "
        f"`translate_iterable` in this process, best of 2, interleaved, on the first {min(args.lines):,} lines:",
        "",
        markdown_table(["replicas", "lines", "lines/s"], sessions),
        "",
    ])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.file_translation", description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", required=True)
    parser.add_argument("--lines", type=int, nargs="+", default=[10_000, 1_000_000])
    parser.add_argument("--sentences", help="corpus SPEC whose sources fill the file (default: demo-style)")
    parser.add_argument("--old-rev", default=OLD_REV)
    parser.add_argument("--repo", default=str(ROOT), help="the git checkout --old-rev is taken from")
    parser.add_argument("--work", default=str(ROOT / "runs" / "file-translation"))
    parser.add_argument("--out", help="also append the Markdown to this file")
    args = parser.parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else list(argv)
    text = run(args)
    print(text)
    if args.out:
        with open(args.out, "a", encoding="utf-8") as handle:
            handle.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
