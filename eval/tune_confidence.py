"""Choose retrieval's confidence penalty on the tuning split, never on a set the README reports.

Retrieval's confidence (`confidence.confidence_of`) is the first passage's weighted score less
`weight_disagreement` times the share of the 5 passages ranked first that disagree with it (from
another statement, and a cosine below `agreement_cosine` with it). Both values are searched on a
grid. At each, the threshold is the one `make model` gives retrieval alone (the highest that
answers 95% of each tuning part's answerable questions, `calibrate.threshold`), and the values
kept are those that then decline the most unanswerable questions, averaged over the two parts
(SQuAD's tuning articles with their adversarial and outside questions, and the statement's
tuning questions); ties go to the larger ROC AUC, then to the smaller penalty.

The ranking does not depend on either value, so every question is searched once.

    .venv/bin/python eval/tune_confidence.py     # after `make model` built its tuning index
    .venv/bin/python eval/tune_confidence.py --at 0.25 0.4   # also the figures at other values
"""

from __future__ import annotations

import argparse
import itertools
from dataclasses import dataclass

import numpy as np

from ctqa.bot import Bot
from ctqa.calibrate import (
    Asked,
    Candidate,
    TuningQuestion,
    by_part,
    squad_questions,
    statement_questions,
    threshold,
)
from ctqa.confidence import agreements, confidence_of
from ctqa.retrieval import AGREEMENT_PASSAGES
from ctqa.training_data import DEFAULT_WORK, SQUAD_TRAIN, articles_bot, load_squad, split

PENALTIES = tuple(round(0.05 * i, 2) for i in range(11))  # 0 to 0.5
COSINES = (0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6)


@dataclass(frozen=True)
class Searched:
    """A tuning question's first passages: the first one's weighted score and whether it
    answers, and what the agreement needs (the passages' statements and vectors)."""

    part: str
    kind: str
    answers: tuple[str, ...]
    first: float
    hit: bool
    docs: list[str]
    vectors: np.ndarray

    def agreement(self, cosine: float) -> float:
        if not self.docs:
            return 1.0
        return float(agreements(self.docs, self.vectors, cosine)[0].mean())


def search(part: str, bot: Bot, asked: list[Asked]) -> list[Searched]:
    retriever = bot.load()
    settings = bot.settings
    found = []
    for a in asked:
        ranking = retriever.search(a.question, AGREEMENT_PASSAGES)
        rows = [h.row for h in ranking.hits]
        docs = [h.passage.doc_id for h in ranking.hits]
        # The first passage's weighted score, before the shipped penalty was taken off.
        first = ranking.confidence + settings.weight_disagreement * (1.0 - ranking.agreement)
        hit = bool(ranking.hits and a.hit(ranking.hits[0].passage))
        s = Searched(part, a.kind, a.answers, first, hit, docs, retriever.index.passage_rows[rows])
        assert abs(s.agreement(settings.agreement_cosine) - ranking.agreement) < 1e-6
        found.append(s)
    return found


def figures(searched: list[Searched], penalty: float, cosine: float) -> dict:
    """Threshold, abstention by part (and their mean) and ROC AUC by part at one setting."""
    questions = []
    for s in searched:
        agreement = s.agreement(cosine)
        confidence = confidence_of(s.first, agreement, penalty) if s.docs else 0.0
        candidate = Candidate(0.0, 0.0, 0.0, s.hit, "")
        questions.append(
            TuningQuestion(s.part, s.kind, s.answers, [candidate], agreement, confidence)
        )
    t = threshold(questions, None)
    parts = by_part(questions, None, t)
    return {
        "threshold": t,
        "abstention": float(np.mean([f["unanswerable_abstention"] for f in parts.values()])),
        "auc": float(np.mean([f["auc"] for f in parts.values()])),
        "parts": parts,
    }


def line(label: str, penalty: float, cosine: float, f: dict) -> str:
    parts = "; ".join(
        f"{name}: answered and right {p['answered_and_right']:.3f}, answer rate "
        f"{p['answer_rate']:.3f}, abstention "
        + ", ".join(f"{k[11:]} {v:.3f}" for k, v in p.items() if k.startswith("abstention_"))
        + f", AUC {p['auc']:.3f}"
        for name, p in f["parts"].items()
    )
    return (
        f"{label}: penalty {penalty:g}, cosine {cosine:g}, threshold {f['threshold']:.6f}; "
        f"mean abstention {f['abstention']:.3f}, mean AUC {f['auc']:.3f}\n  {parts}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--at",
        nargs=2,
        type=float,
        action="append",
        default=[],
        metavar=("PENALTY", "COSINE"),
        help="also print the figures at these values (repeatable)",
    )
    args = parser.parse_args()
    parts = split(load_squad(SQUAD_TRAIN / "questions.jsonl"))
    squad = articles_bot(parts["tuning"], "tuning", DEFAULT_WORK)  # make model's index
    searched = search("squad", squad, squad_questions(parts))
    statement = Bot()
    searched += search("statement", statement, statement_questions())
    print(f"{len(searched)} tuning questions searched")
    grid = {(p, c): figures(searched, p, c) for p, c in itertools.product(PENALTIES, COSINES)}
    best = max(grid, key=lambda pc: (round(grid[pc]["abstention"], 4), grid[pc]["auc"], -pc[0]))
    s = statement.settings
    shipped = (s.weight_disagreement, s.agreement_cosine)
    print(line("shipped", *shipped, figures(searched, *shipped)))
    print(line("chosen on the tuning split", *best, grid[best]))
    for penalty, cosine in args.at:
        print(line("asked for", penalty, cosine, figures(searched, penalty, cosine)))


if __name__ == "__main__":
    main()
