"""Sequence-level knowledge distillation (Kim & Rush, 2016): a teacher translates the training sources, and a
smaller student learns from source -> the teacher's output, which is easier to fit than the references.

    >>> specs = distill_corpus(Translator("teacher-bundle"), ["train.tsv"], "runs/student.distilled",
    ...                        DecodingOptions(beam_size=4))
    >>> train("runs/student", TrainingCorpora(tuple(specs)), ..., tokenizers=teacher_tokenizers)

The teacher's translations are written as TSVs (source <TAB> teacher output, one per input SPEC) as they
are decoded (`Translator.translate_iterable`: a window at a time, on every replica), so memory does not
grow with the corpus. `distill.json` records the teacher, the inputs (sizes, sha256) and the decoding:
run again with the same, a finished distillation is reused and an interrupted one continues after its
last complete line; with others it is refused unless `force`. A SPEC's `*N` stays with it: its
distilled TSV is repeated N times in the student's data.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

from keras_transformer.corpus import corpus_files, iter_parallel_corpus, split_repeat
from keras_transformer.prepared_data import sha256_file
from keras_transformer.progress_line import ProgressLine
from keras_transformer.serve.atomic_files import atomic_write_text
from keras_transformer.serve.errors import KerasTransformerError

RECORD_FILE = "distill.json"
TEACHER_BUNDLE = "teacher-bundle"  # a teacher run is exported into the distillation directory as teacher-bundle-*


class DistillError(KerasTransformerError, ValueError):
    """A distillation directory that belongs to another teacher, corpus or decoding."""


def distill_corpus(translator, specs: list[str], out, options, source_column=None, target_column=None,
                   max_pairs: int | None = None, force: bool = False, log=print, progress: bool = True) -> list[str]:
    """Translates the sources of `specs` with the teacher `translator` into `out`; returns the student's
    SPECs: one TSV per input, with its `*N`.

    Args:
        translator: the teacher, a `serve.Translator` (a bundle; its replicas decode at once).
        specs: training SPECs, each optionally `SPEC*N`.
        out: the distillation directory (created; reused or resumed when it holds this distillation).
        options: the teacher's `DecodingOptions` (beam search: Kim & Rush's sequence-level KD).
        max_pairs: translate at most this many pairs of each SPEC.
        force: start over in a directory that holds another distillation.

    Raises:
        DistillError: `out` holds another distillation (without `force`), or is not one.
    """
    out = Path(out)
    teacher = Path(translator.path)
    inputs = []
    for spec in specs:
        name, times = split_repeat(spec)
        files = [{"path": str(path), "size": path.stat().st_size, "sha256": sha256_file(path)}
                 for path in corpus_files(name, source_column, target_column)]
        inputs.append({"spec": name, "repeat": times, "files": files})
    record = {"teacher": {"path": str(teacher), "config_sha256": sha256_file(teacher / "config.json")},
              "inputs": inputs, "decoding": options.changed(), "max_pairs": max_pairs,
              "columns": [source_column, target_column]}
    previous = _previous_record(out)
    if previous is not None and _fingerprint(previous) != _fingerprint(record):
        if not force:
            raise DistillError(f"{out}: holds the distillation of another teacher, corpus or decoding; pass --force "
                               "to start over, or choose another --distilled directory")
        for entry in out.iterdir():  # the exported teacher bundles stay: they are named after their run
            if not entry.name.startswith(TEACHER_BUNDLE):
                entry.unlink()
        previous = None
    if previous is not None and previous.get("status") == "complete":
        log(f"Distilled corpus {out} reused ({sum(item['pairs'] for item in previous['inputs']):,} pairs)")
        return _student_specs(out, previous)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / RECORD_FILE, json.dumps({**record, "status": "translating"}, indent=2) + "\n")
    for index, item in enumerate(inputs):
        item["file"] = f"{index}-{Path(item['spec']).name.replace(',', '_').removesuffix('.tsv')}.tsv"
        item["pairs"] = _translate_input(translator, item, out / item["file"], options, source_column,
                                         target_column, max_pairs, log, progress)
    atomic_write_text(out / RECORD_FILE, json.dumps({**record, "inputs": inputs, "status": "complete"}, indent=2)
                      + "\n")
    return _student_specs(out, {"inputs": inputs})


def _translate_input(translator, item: dict, path: Path, options, source_column, target_column, max_pairs, log,
                     progress) -> int:
    """Appends `source<TAB>teacher output` lines to `path` for the pairs of one input not yet in it."""
    done = _complete_lines(path)
    pairs = iter_parallel_corpus(item["spec"], source_column, target_column, max_pairs)
    sources = itertools.islice((source for source, _ in pairs), done, None)
    to_translate, to_write = itertools.tee(sources)  # tee holds only what translate_iterable reads ahead
    line = ProgressLine(f"Distilling {Path(item['spec']).name}", unit="sentences") if progress else None
    count = done
    with open(path, "a", encoding="utf-8", newline="\n") as sink:
        def advance(finished: int) -> None:
            nonlocal count
            count += finished
            sink.flush()  # a finished window is on disk: an interruption loses at most the next one
            if line is not None:
                line.update(count)

        for source, result in zip(to_write, translator.translate_iterable(to_translate, options, progress=advance)):
            sink.write(f"{_one_field(source)}\t{_one_field(result.text)}\n")
    if line is not None:
        line.close(count)
    log(f"Distilled {item['spec']}: {count:,} pairs" + (f" ({done:,} from an earlier attempt)" if done else ""))
    return count


def _one_field(text: str) -> str:
    """A TSV field: tabs and line breaks become spaces (whitespace is normalized when read anyway)."""
    return " ".join(text.split())


def _complete_lines(path: Path) -> int:
    """Complete lines in `path`, after cutting a half-written last one; 0 when it does not exist."""
    if not path.exists():
        return 0
    with open(path, "rb+") as handle:
        data_end = lines = 0
        offset = 0
        while block := handle.read(1 << 20):
            lines += block.count(b"\n")
            last = block.rfind(b"\n")
            if last != -1:
                data_end = offset + last + 1
            offset += len(block)
        handle.truncate(data_end)
    return lines


def _previous_record(out: Path) -> dict | None:
    if not out.exists():
        return None
    record = out / RECORD_FILE
    if not record.is_file():
        if any(not entry.name.startswith(TEACHER_BUNDLE) for entry in out.iterdir()):
            raise DistillError(f"{out}: exists and is not a distillation directory (no {RECORD_FILE}); choose "
                               "another --distilled directory")
        return None
    try:
        return json.loads(record.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise DistillError(f"{record}: expected JSON, got {error}; pass --force to start over") from None


def _fingerprint(record: dict) -> str:
    keys = ("teacher", "decoding", "max_pairs", "columns")
    inputs = [{k: item[k] for k in ("spec", "repeat", "files")} for item in record.get("inputs", [])]
    return json.dumps({**{k: record.get(k) for k in keys}, "inputs": inputs}, sort_keys=True)


def _student_specs(out: Path, record: dict) -> list[str]:
    return [str(out / item["file"]) + (f"*{item['repeat']}" if item["repeat"] > 1 else "")
            for item in record["inputs"]]
