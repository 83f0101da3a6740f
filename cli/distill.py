"""`keras-transformer distill TEACHER --data SPEC --out STUDENT_RUN [train options]`: sequence-level knowledge
distillation (keras_transformer/distillation.py).

The teacher (a bundle, or a run, exported once) translates the training sources with beam search on
every core, streamed and resumable, into `--distilled DIR` (default: STUDENT_RUN.distilled, a sibling,
so that several students can share one teacher's translations); then `train` trains the student on
source -> teacher output (`--mix-references` adds the original pairs), with the teacher's tokenizers.
The student's model and training options are the teacher's, except those given.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from .options import add_data_options, available_cores
from .tensorflow_import import import_tensorflow_quietly
from .train import add_training_options, options_from_args


def add_parsers(commands) -> None:
    p = commands.add_parser("distill", help="train a student on a teacher's translations (sequence-level KD)")
    p.add_argument("teacher", metavar="TEACHER", help="the teacher: a bundle, or a run directory (exported first)")
    p.add_argument("--data", required=True, action="append",
                   help="training SPEC whose sources the teacher translates (repeatable, *N allowed)")
    p.add_argument("--valid", help="validation SPEC, with its real references")
    p.add_argument("--out", required=True, help="the student's run directory")
    p.add_argument("--distilled", metavar="DIR",
                   help="where the teacher's translations go (default: OUT.distilled); reused when it holds them")
    p.add_argument("--mix-references", action="store_true",
                   help="train on the original pairs too, beside the teacher's outputs")
    p.add_argument("--beam-size", type=int, default=4, metavar="N", help="the teacher's beam (default 4)")
    p.add_argument("--length-penalty", type=float, metavar="ALPHA", help="the teacher's length penalty")
    add_data_options(p)
    p.add_argument("--max-pairs", type=int, help="distill only the first N pairs of each --data")
    add_training_options(p)
    p.add_argument("--force", action="store_true",
                   help="start the student over (and the distillation, when --distilled holds another one)")
    p.set_defaults(handler=run_distill)


def run_distill(args) -> int:
    import_tensorflow_quietly()
    from keras_transformer import training
    from keras_transformer.corpus import TrainingCorpora, read_parallel_corpus
    from keras_transformer.distillation import distill_corpus
    from keras_transformer.serve.decoding_options import DecodingOptions
    from keras_transformer.serve.heap import retain_freed_heap
    from keras_transformer.serve.translator import Translator
    from keras_transformer.translation import is_run_dir

    distilled = Path(args.distilled) if args.distilled else Path(args.out).with_name(Path(args.out).name + ".distilled")
    bundle = _teacher_bundle(Path(args.teacher), distilled)
    options = DecodingOptions(beam_size=args.beam_size,
                              **({"length_penalty": args.length_penalty} if args.length_penalty is not None else {}))
    teacher = Translator(bundle, replicas=available_cores())
    retain_freed_heap()
    columns = dict(source_column=args.source_column, target_column=args.target_column)
    specs = distill_corpus(teacher, args.data, distilled, options, max_pairs=args.max_pairs, force=args.force,
                           **columns)
    if args.mix_references:
        specs += args.data
    tokenizers = (teacher.source_tokenizer, teacher.target_tokenizer)
    shared = tokenizers[0].to_str() == tokenizers[1].to_str()
    defaults = {**_teacher_options(Path(args.teacher), bundle),
                "source_vocab_size": tokenizers[0].vocab_size, "target_vocab_size": tokenizers[1].vocab_size,
                "shared_vocab": shared}
    model_options, settings = options_from_args(args, defaults)
    if not is_run_dir(Path(args.teacher)):  # a bundle: where its settings come from, said aloud
        said = (f"warmup {settings.warmup_steps} steps, learning-rate scale {settings.learning_rate_scale}, label "
                f"smoothing {settings.label_smoothing}, {settings.batch_tokens} tokens a batch")
        if _bundle_training(bundle):
            print(f"The student trains with {said} (the options given, else those the teacher's run trained with, "
                  f"as its bundle records them)")
        else:  # a bundle exported before bundles recorded them
            print(f"The teacher {args.teacher} is a bundle, which records no training settings: the student trains "
                  f"with {said} (the options given, else `train`'s defaults; a teacher run would have given its own)")
    del teacher
    valid_pairs = read_parallel_corpus(args.valid, **columns)[0] if args.valid else None
    record = {"train": specs, "valid": args.valid, "teacher": str(args.teacher),
              "distilled_from": args.data, "teacher_decoding": options.changed(), **columns}
    training.train(args.out, TrainingCorpora(tuple(specs), **columns), valid_pairs, model_options, settings, record,
                   force=args.force, tokenizers=tokenizers)
    print(f"Student written to {args.out}")
    return 0


def _teacher_bundle(teacher: Path, distilled: Path) -> Path:
    """The teacher as a bundle: `teacher` itself, or a run exported (fp32) once into DISTILLED/teacher-bundle-H,
    H naming its model.keras (another teacher run, another bundle)."""
    from keras_transformer.distillation import TEACHER_BUNDLE
    from keras_transformer.prepared_data import sha256_file
    from keras_transformer.run_dir import RunDir
    from keras_transformer.translation import is_run_dir

    if not is_run_dir(teacher):
        return teacher
    bundle = distilled / f"{TEACHER_BUNDLE}-{sha256_file(RunDir(teacher).model_path)[:12]}"
    if not (bundle / "config.json").is_file():
        from keras_transformer.export.exporter import export_bundle

        print(f"Exporting the teacher run {teacher} to {bundle} (onnxruntime translates the corpus)")
        export_bundle(teacher, bundle, force=bundle.exists())
    return bundle


def _bundle_training(bundle: Path) -> dict:
    """The training settings `bundle` records (those of the run it was exported from; {} for older bundles)."""
    import json

    return json.loads((bundle / "config.json").read_text(encoding="utf-8")).get("training", {})


def _teacher_options(teacher: Path, bundle: Path) -> dict:
    """The teacher's model options (its bundle's model) and training settings (its run's, as the run or the
    bundle records them)."""
    import json

    from keras_transformer.config import ModelOptions
    from keras_transformer.training import TrainingSettings
    from keras_transformer.translation import is_run_dir

    model = json.loads((bundle / "config.json").read_text(encoding="utf-8"))["model"]
    names = {field.name for field in dataclasses.fields(ModelOptions)}
    options = {name: value for name, value in model.items() if name in names}
    training = json.loads((teacher / "config.json").read_text(encoding="utf-8")).get("training", {}) \
        if is_run_dir(teacher) else _bundle_training(bundle)
    names = {field.name for field in dataclasses.fields(TrainingSettings)}
    options.update({name: value for name, value in training.items() if name in names})
    return options
