"""Small, fast models for the edge: a teacher and its students (distilled and trained on the references), fp32
and int8, with and without the vocabulary shortlist, and CTranslate2 on the same student weights with and
without its vocabulary map built from the same shortlist.

    python -m bench.edge --test SPEC --model teacher=RUN --model NAME=RUN [--model ...]
                         [--shortlist K] [--frequent N] [--ct2 NAME] [--out bench/RESULTS-edge.md] [--work DIR]

For every model, in one run, 1 thread: its bundles (fp32, int8, and each with `--shortlist K`; exported
into --work once), their size; sacreBLEU and chrF++ on the test SPEC with beam 4 and greedy (fp32, with
the shortlist off and on, and the share of outputs the shortlist leaves unchanged); sentences/s at batch
1 (one `translate_batch` call per sentence, the first `--single` sentences, each sentence's best time)
and batch 32 (all the test sentences in one call), greedy, fp32 and int8, shortlist off and on, every
configuration interleaved over `--passes` passes (the best counts). Speed-ups are against the model
named "teacher". With `--ct2 NAME`: CTranslate2 on NAME's weights (bench/ctranslate2_compare.py),
`float32` and `int8`, without and with `use_vmap` (the vocabulary map of NAME's shortlist: the same
candidate sets), against ours with and without the shortlist, greedy, batch 1 and 32, interleaved.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import machine_description, markdown_table
from bench.recipe_data import ROOT
from keras_transformer.export.shortlist import DEFAULT_FREQUENT, DEFAULT_K

BEAM = 4


@dataclass
class Model:
    name: str
    run: Path
    bundles: dict = field(default_factory=dict)  # (precision, shortlist) -> bundle path
    refused: dict = field(default_factory=dict)  # (precision, shortlist) -> why export refused it


def export_bundles(model: Model, work: Path, shortlist: int, frequent: int, log) -> None:
    from keras_transformer.export.exporter import export_bundle
    from keras_transformer.export.parity import ParityError

    for precision in ("fp32", "int8"):
        for listed in (False, True):
            out = work / f"{model.name}-{precision}{f'-shortlist-{shortlist}-{frequent}' if listed else ''}"
            if not (out / "config.json").is_file():
                log(f"[edge] exporting {out.name}")
                try:
                    export_bundle(model.run, out, int8=precision == "int8", force=out.exists(),
                                  shortlist=shortlist if listed else None, shortlist_frequent=frequent,
                                  log=lambda *a: None)
                except ParityError as error:  # export refuses a bundle that fails its check: recorded, not timed
                    log(f"[edge] {out.name}: export refused: {error}")
                    model.refused[precision, listed] = str(error)
                    continue
            model.bundles[precision, listed] = out


def bundle_megabytes(path: Path) -> float:
    return sum(f.stat().st_size for f in path.iterdir() if f.is_file()) / 1e6


def quality(model: Model, pairs, log) -> dict:
    from keras_transformer.evaluation import score_translations
    from keras_transformer.serve import Translator

    sources, references = [s for s, _ in pairs], [t for _, t in pairs]
    translator = Translator(model.bundles["fp32", True])
    figures = {}
    for beam in (BEAM, 1):
        full = translator.translate(sources, beam_size=beam, use_shortlist=False)
        listed = translator.translate(sources, beam_size=beam)
        figures[beam] = {"full": score_translations(full, references),
                         "shortlist": score_translations(listed, references),
                         "unchanged": sum(a == b for a, b in zip(full, listed)) / len(full)}
        log(f"[edge] {model.name} beam {beam}: BLEU {figures[beam]['full'].bleu:.2f} full, "
            f"{figures[beam]['shortlist'].bleu:.2f} shortlist")
    figures["candidates"] = sum(len(translator.shortlist.candidates(s)) for s in
                                translator.encode(sources[:200])[0].sources) / min(200, len(sources))
    return figures


def speeds(models: list[Model], texts: list[str], single: int, passes: int, log) -> dict:
    """(model name, precision, shortlist, batch) -> sentences/s (greedy, 1 thread), interleaved passes; the
    same key + ("tokens",) -> output tokens/s (models whose outputs differ in length compare per token)."""
    from keras_transformer.serve import Translator

    translators = {(m.name, p, s): Translator(m.bundles[p, s]) for m in models for p in ("fp32", "int8")
                   for s in (False, True) if (p, s) in m.bundles}
    best = {}
    for number in range(passes):
        keys = list(translators)
        keys = keys if number % 2 == 0 else keys[::-1]
        for key in keys:
            translator = translators[key]
            started = time.perf_counter()
            tokens = sum(len(translator.translate_batch([text])[0].target_ids) for text in texts[:single])
            seconds = time.perf_counter() - started
            if single / seconds > best.get((*key, 1), 0):
                best[(*key, 1)], best[(*key, 1, "tokens")] = single / seconds, tokens / seconds
            started = time.perf_counter()
            tokens = sum(len(result.target_ids) for result in translator.translate_batch(texts, batch_size=32))
            seconds = time.perf_counter() - started
            if len(texts) / seconds > best.get((*key, 32), 0):
                best[(*key, 32)], best[(*key, 32, "tokens")] = len(texts) / seconds, tokens / seconds
        log(f"[edge] speed pass {number + 1}/{passes}")
    return best


def ct2_comparison(model: Model, texts: list[str], work: Path, single: int, passes: int, log) -> list[list]:
    """Ours (shortlist off / on) against CT2 (use_vmap off / on, the same candidates), greedy, 1 thread."""
    from bench.ctranslate2_compare import Ct2Engine, convert_run, vocabulary
    from keras_transformer.export.shortlist import ShortlistTable, vmap_lines
    from keras_transformer.run_dir import RunDir
    from keras_transformer.serve import Translator

    run = RunDir(model.run)
    config, (source_tokenizer, target_tokenizer) = run.transformer_config(), run.load_tokenizers()
    listed = Translator(model.bundles["fp32", True]).shortlist
    vmap = work / f"{model.name}.vmap.txt"
    table = ShortlistTable(listed.frequent, listed.table, listed.target_vocab_size)
    vmap.write_text("\n".join(vmap_lines(table, vocabulary(source_tokenizer), vocabulary(target_tokenizer))) + "\n",
                    encoding="utf-8")
    ct2_dir = convert_run(model.run, work / f"ct2-{model.name}", vmap=vmap)
    engines = {}
    for precision in ("fp32", "int8"):
        for use in (False, True):
            if (precision, use) in model.bundles:
                engines["ours", precision, use] = Translator(model.bundles[precision, use])
            engines["ct2", precision, use] = Ct2Engine(ct2_dir, source_tokenizer, target_tokenizer,
                                                       config.max_source_length, config.max_target_length,
                                                       "float32" if precision == "fp32" else "int8", 1, use)
    def run_once(key, batch):
        engine, _, use = key
        chunks = [[t] for t in texts[:single]] if batch == 1 else [texts]
        started = time.perf_counter()
        for chunk in chunks:
            if engine == "ours":
                engines[key].translate_batch(chunk, batch_size=32, use_shortlist=use)
            else:
                engines[key].translate_batch(chunk, 1, 32)
        return sum(map(len, chunks)) / (time.perf_counter() - started)

    best = {}
    for number in range(passes):
        for batch in (1, 32):
            keys = list(engines) if number % 2 == 0 else list(engines)[::-1]
            for key in keys:
                best[key, batch] = max(best.get((key, batch), 0), run_once(key, batch))
        log(f"[edge] CTranslate2 pass {number + 1}/{passes}")
    rows = []
    for batch in (1, 32):
        for precision in ("fp32", "int8"):
            for use in (False, True):
                ours, theirs = best.get((("ours", precision, use), batch)), best[("ct2", precision, use), batch]
                rows.append([batch, precision, "on" if use else "off", f"{ours:,.0f}" if ours else "export refused",
                             f"{theirs:,.0f}", f"{ours / theirs:.2f}" if ours else "—"])
    return rows


def run(args) -> str:
    from keras_transformer.config import TransformerConfig
    from keras_transformer.corpus import read_parallel_corpus

    log = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    models = [Model(name, Path(path)) for name, path in (spec.split("=", 1) for spec in args.model)]
    pairs = read_parallel_corpus(args.test)[0]
    texts = [s for s, _ in pairs]
    for model in models:
        export_bundles(model, work, args.shortlist, args.frequent, log)
    figures = {model.name: quality(model, pairs, log) for model in models}
    speed = speeds(models, texts, args.single, args.passes, log)
    teacher = "teacher" if any(m.name == "teacher" for m in models) else models[0].name
    rows = []
    for model in models:
        model_record = json.loads((model.bundles["fp32", False] / "config.json").read_text())["model"]
        config = TransformerConfig.from_dict({k: v for k, v in model_record.items() if k != "head_dim"})
        f = figures[model.name]
        rows.append([
            model.name, f"{config.encoder_layers}+{config.decoder_layers}, d {config.hidden_dim}, ff "
                        f"{config.intermediate_dim}",
            " / ".join(f"{bundle_megabytes(model.bundles[p, False]):.1f}" for p in ("fp32", "int8")),
            f"{f[BEAM]['full'].bleu:.2f}", f"{f[BEAM]['full'].chrf:.2f}", f"{f[1]['full'].bleu:.2f}",
            *[f"{speed[model.name, p, False, b]:,.0f}" for b in (1, 32) for p in ("fp32", "int8")],
            f"{speed[model.name, 'fp32', False, 1] / speed[teacher, 'fp32', False, 1]:.2f}",
            f"{speed[model.name, 'fp32', False, 1, 'tokens'] / speed[teacher, 'fp32', False, 1, 'tokens']:.2f}",
        ])
    shortlist_rows = []
    for model in models:
        f = figures[model.name]
        shortlist_rows.append([
            model.name, f"{f['candidates']:.0f}",
            f"{f[BEAM]['full'].bleu:.2f} → {f[BEAM]['shortlist'].bleu:.2f}", f"{f[BEAM]['unchanged']:.1%}",
            f"{f[1]['full'].bleu:.2f} → {f[1]['shortlist'].bleu:.2f}", f"{f[1]['unchanged']:.1%}",
            *[f"{speed[model.name, p, True, b, 'tokens'] / speed[model.name, p, False, b, 'tokens']:.2f}"
              if (model.name, p, True, b) in speed else "export refused" for b in (1, 32) for p in ("fp32", "int8")],
        ])
    sections = [
        "# Small, fast models for the edge", "",
        f"`python -m bench.edge {' '.join(shlex.quote(a) for a in args.argv)}`", "",
        *machine_description(), "",
        f"Test: {args.test} ({len(pairs)} pairs). Speed: greedy, 1 thread, text in and text out "
        f"(`Translator.translate_batch`), batch 1 over the first {args.single} sentences and batch 32 over all, "
        f"best of {args.passes} interleaved passes. BLEU and chrF++: sacreBLEU, fp32, shortlist off.", "",
        "## Models", "",
        markdown_table(["model", "shape", "bundle MB fp32 / int8", f"BLEU beam {BEAM}", f"chrF++ beam {BEAM}",
                        "BLEU greedy", "sent/s b1 fp32", "sent/s b1 int8", "sent/s b32 fp32", "sent/s b32 int8",
                        f"b1 fp32 sent/s × {teacher}", f"b1 fp32 tokens/s × {teacher}"], rows), "",
        f"## The vocabulary shortlist (K = {args.shortlist} per source token, {args.frequent} frequent)", "",
        markdown_table(["model", "candidates a sentence", f"BLEU beam {BEAM} off → on", "outputs unchanged",
                        "BLEU greedy off → on", "outputs unchanged", "tokens/s × off b1 fp32", "b1 int8",
                        "b32 fp32", "b32 int8"], shortlist_rows), "",
    ]
    for name in args.ct2 or []:
        model = next(m for m in models if m.name == name)
        rows = ct2_comparison(model, texts, work, args.single, args.passes, log)
        sections += [f"## CTranslate2 on {name}'s weights (greedy, 1 thread; shortlist on = CT2 `use_vmap` with the "
                     "same candidates)", "",
                     markdown_table(["batch", "precision", "shortlist / vmap", "ours sent/s", "CT2 sent/s",
                                     "ours ÷ CT2"], rows), ""]
    refused = [f"- {m.name} {p}{' with the shortlist' if listed else ''}: {why}" for m in models
               for (p, listed), why in m.refused.items()]
    if refused:
        sections += ["## Bundles the export refused (its own check failed; not timed)", "", *refused, ""]
    return "\n".join(sections)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.edge", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="append", required=True, metavar="NAME=RUN")
    parser.add_argument("--test", default=str(ROOT.parent / "shared" / "data" / "en-de-multi30k" / "test2016.tsv"))
    parser.add_argument("--shortlist", type=int, default=DEFAULT_K, metavar="K")
    parser.add_argument("--frequent", type=int, default=DEFAULT_FREQUENT, metavar="N",
                        help="the shortlist's most frequent target tokens (export --shortlist-frequent)")
    parser.add_argument("--single", type=int, default=200, help="sentences timed one per call (batch 1)")
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--ct2", action="append", metavar="NAME", help="compare with CTranslate2 on this model")
    parser.add_argument("--work", default=str(ROOT / "runs" / "edge-bundles"))
    parser.add_argument("--out", default=str(ROOT / "bench" / "RESULTS-edge.md"))
    args = parser.parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else list(argv)
    text = run(args)
    Path(args.out).write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
