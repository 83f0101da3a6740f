"""Scores with sacreBLEU (BLEU and chrF++, with their signatures) and exact match."""

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

    if len(hypotheses) != len(references):
        raise ValueError(f"expected as many hypotheses as references, got {len(hypotheses)} and {len(references)}")
    bleu = sacrebleu.metrics.BLEU()
    chrf = sacrebleu.metrics.CHRF(word_order=2)
    bleu_score = bleu.corpus_score(hypotheses, [references])
    chrf_score = chrf.corpus_score(hypotheses, [references])
    exact = sum(h.strip() == r.strip() for h, r in zip(hypotheses, references)) / max(len(references), 1)
    return Scores(bleu_score.score, chrf_score.score, exact, str(bleu.get_signature()), str(chrf.get_signature()),
                  len(references))
