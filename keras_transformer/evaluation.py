"""Scores with sacreBLEU (BLEU and chrF++, with their signatures) and exact match, and the evaluation of a
bundle on a corpus (`evaluate_bundle`, what `keras-transformer evaluate` runs).

Each score comes with its sacreBLEU signature, so a number is only compared with numbers computed the
same way.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Scores:
    bleu: float
    chrf: float  # chrF++ (word_order=2)
    exact_match: float  # share of hypotheses equal to their reference (after whitespace strip)
    bleu_signature: str
    chrf_signature: str
    sentences: int


def score_translations(hypotheses: list[str], references: list[str]) -> Scores:
    import sacrebleu

    from keras_transformer.serve.errors import OptionError

    if len(hypotheses) != len(references):
        raise OptionError(f"expected as many hypotheses as references, got {len(hypotheses)} and {len(references)}")
    bleu = sacrebleu.metrics.BLEU()
    chrf = sacrebleu.metrics.CHRF(word_order=2)
    bleu_score = bleu.corpus_score(hypotheses, [references])
    chrf_score = chrf.corpus_score(hypotheses, [references])
    exact = sum(h.strip() == r.strip() for h, r in zip(hypotheses, references)) / max(len(references), 1)
    return Scores(bleu_score.score, chrf_score.score, exact, str(bleu.get_signature()), str(chrf.get_signature()),
                  len(references))


def evaluate_bundle(bundle, pairs, options=None, **kwargs) -> dict:
    """Translates the sources of `pairs` with a bundle and scores them against the targets.

    Args:
        bundle: a bundle directory, or a `serve.Translator` already loaded (bench scripts reuse one).
        pairs: (source, target) sentence pairs, e.g. from `read_parallel_corpus`.
        options, kwargs: how to decode, as `Translator.translate` takes it: a `DecodingOptions`, or
            its fields by keyword.

    Returns:
        A JSON-serializable dict: bleu, chrf (chrF++), exact_match (a share in [0, 1]),
        bleu_signature, chrf_signature, sentences, translation_seconds (translation alone, not
        loading or scoring), sentences_per_second, beam_size, batch_size, decoding (the other
        options that differ from their defaults), and hypotheses (one per pair, in order).

    Raises:
        OptionError: no pairs, or a bad option; BundleError for a bad bundle.
    """
    import time

    from keras_transformer.serve import Translator
    from keras_transformer.serve.decoding_options import DecodingOptions
    from keras_transformer.serve.errors import OptionError, OptionTypeError

    pairs = list(pairs)
    if not pairs:
        raise OptionError("expected at least one (source, target) pair to evaluate, got none")
    if options is not None and kwargs:
        raise OptionTypeError("expected a DecodingOptions or keyword options, got both")
    options = options if options is not None else DecodingOptions(**kwargs)
    translator = bundle if isinstance(bundle, Translator) else Translator(bundle)
    started = time.perf_counter()
    hypotheses = translator.translate([source for source, _ in pairs], options)
    seconds = time.perf_counter() - started
    scores = score_translations(hypotheses, [target for _, target in pairs])
    return {
        "bleu": scores.bleu,
        "chrf": scores.chrf,
        "exact_match": scores.exact_match,
        "bleu_signature": scores.bleu_signature,
        "chrf_signature": scores.chrf_signature,
        "sentences": scores.sentences,
        "translation_seconds": seconds,
        "sentences_per_second": len(pairs) / seconds if seconds > 0 else float("inf"),
        "beam_size": options.beam_size,
        "batch_size": options.batch_size,
        "decoding": {name: value for name, value in options.changed().items()
                     if name not in ("beam_size", "batch_size")},
        "hypotheses": hypotheses,
    }
