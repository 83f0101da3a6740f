"""What the A/B comparisons share: their command line, timing two variants interleaved (so a burst
of load hits both alike), and their Markdown report. The machine's description and tables come
from `bench.common`, as in the benchmark suite.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from bench.common import cpu_model, markdown_table


def print_and_save(text: str, path=None, append: bool = True) -> None:
    """Prints a comparison's Markdown section and, when `path` is given, appends it to that file
    (or replaces the file's content, `append=False`)."""
    print(text)
    if path:
        with open(path, "a" if append else "w", encoding="utf-8") as out:
            out.write(text + ("\n\n" if append else "\n"))


def interleaved_ab(translators: dict, variants: tuple, configs: list, texts: list[str], passes: int,
                   options=lambda beam: {}) -> tuple[dict, dict]:
    """Times two (or more) variants of `Translator` on the same sentences, interleaved.

    translators: {(variant, precision): Translator}; configs: [(precision, beam, batch)]. Each pass
    runs every config with every variant in turn (batch 1: one call per sentence; otherwise one call
    for all, `batch_size=batch`), so a burst of load hits them alike. `options(beam)` adds translate
    keywords (e.g. the length penalty). Returns ({(variant, precision, beam, batch): best seconds},
    {same key: the last pass' outputs})."""
    best, outputs = {}, {}
    for _ in range(passes):
        for precision, beam, batch in configs:
            for variant in variants:
                translator = translators[variant, precision]
                started = time.perf_counter()
                if batch == 1:
                    result = [translator.translate([text], beam_size=beam, **options(beam))[0] for text in texts]
                else:
                    result = translator.translate(texts, beam_size=beam, batch_size=batch, **options(beam))
                key = (variant, precision, beam, batch)
                best[key] = min(best.get(key, float("inf")), time.perf_counter() - started)
                outputs[key] = result
    return best, outputs


def ab_setup(prog: str, description: str, argv=None):
    """The command line shared by the A/B comparisons (`--run RUN [--sentences SPEC] [--max-pairs N]
    [--passes N] [--work DIR] [--out FILE]`). Returns (args, work directory, sentences SPEC, the
    source texts)."""
    import argparse
    import tempfile

    from keras_transformer.corpus import read_parallel_corpus
    from keras_transformer.run_dir import RunDir

    parser = argparse.ArgumentParser(prog=f"python -m experiments.{prog}", description=description)
    parser.add_argument("--run", required=True)
    parser.add_argument("--sentences", help="corpus SPEC whose source side is translated (default: the run's test.tsv)")
    parser.add_argument("--max-pairs", type=int, default=100)
    parser.add_argument("--passes", type=int, default=5)
    parser.add_argument("--work", default=None, help="where the bundles go (default: a temporary directory)")
    parser.add_argument("--out", help="also append the table to this file")
    args = parser.parse_args(argv)
    work = Path(args.work or tempfile.mkdtemp(prefix=f"{prog.replace('_', '-')}-"))
    sentences = args.sentences or str(RunDir(args.run).test_path)
    texts = [source for source, _ in read_parallel_corpus(sentences, max_pairs=args.max_pairs)[0]]
    return args, work, sentences, texts


def ab_report(prog: str, argv, args, title: str, description: str, variants: tuple, labels: tuple,
              configs: list, best: dict, outputs: dict, texts: list) -> str:
    """The A/B comparisons' section: a heading, the command, `description`, then per config the two
    variants' sentences/s, the speed-up of the second and how many outputs are identical. Printed,
    and appended to `args.out` when given (one file collects the runs of several models)."""
    import sys

    rows = []
    for precision, beam, batch in configs:
        first, second = (best[v, precision, beam, batch] for v in variants)
        same = sum(a == b for a, b in zip(*(outputs[v, precision, beam, batch] for v in variants)))
        rows.append([precision, "greedy" if beam == 1 else f"beam {beam}", batch, f"{len(texts) / first:,.0f}",
                     f"{len(texts) / second:,.0f}", f"{first / second:.2f}×", f"{same}/{len(texts)}"])
    command = f"python -m experiments.{prog} " + " ".join(argv if argv is not None else sys.argv[1:])
    text = "\n".join([f"## {title} ({Path(args.run).name})", "",
                      f"`{command}`, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, CPU: {cpu_model()}.", "",
                      description, "",
                      markdown_table(["precision", "decoding", "batch", f"{labels[0]} sent/s", f"{labels[1]} sent/s",
                                      "speed-up", "identical outputs"], rows)])
    print_and_save(text, args.out)
    return text


def best_microseconds(sessions: dict, feeds: dict, runs: int, rounds: int = 5) -> dict:
    """µs per `session.run(None, feeds)` of each of {name: onnxruntime session}, best of `rounds`
    interleaved rounds of `runs` calls each."""
    best = {name: float("inf") for name in sessions}
    for _ in range(rounds):
        for name, session in sessions.items():
            started = time.perf_counter()
            for _ in range(runs):
                session.run(None, feeds)
            best[name] = min(best[name], (time.perf_counter() - started) / runs * 1e6)
    return best


def decoder_step_feeds(session, rows: int, past: int, source_length: int, seed: int = 0) -> dict:
    """Random inputs for one cached step of a bundle's decoder.onnx: `rows` rows with `past`
    positions cached and a source of `source_length` (all real); token 5 at position `past`."""
    feeds, rng = {}, np.random.default_rng(seed)
    for graph_input in session.get_inputs():
        sizes = {"batch": rows, "source_length": source_length, "past_length": past}
        shape = [sizes.get(d, d) for d in graph_input.shape]
        if graph_input.name == "token_ids":
            feeds[graph_input.name] = np.full((rows, 1), 5, np.int32)
        elif graph_input.name == "position":
            feeds[graph_input.name] = np.array(past, np.int32)
        elif graph_input.name == "source_mask":
            feeds[graph_input.name] = np.ones((rows, source_length), bool)
        else:
            feeds[graph_input.name] = rng.standard_normal(shape).astype(np.float32)
    return feeds


def bundle_label(bundle) -> str:
    """A bundle's name in tables: the run's name for RUN/bundle, else the directory's."""
    path = Path(bundle)
    return path.parent.name if path.name == "bundle" else path.name
