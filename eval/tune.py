"""Choose retrieval's fusion weights on SQuAD 2.0's training articles (`eval/squad-train/`), never
on a set the README reports.

Retrieval's job is recall: the reader reads the first few passages it proposes and orders them
itself. So the weights are chosen for how often the answering passage is among the first four
(recall@4), then for how often it is first. Every
question's candidates are searched once with their signals (dense, unit, coverage, names); the
weights are searched offline on a grid, on the training articles' questions, and checked on the
tuning articles' (`training_data.TUNING_ARTICLES`, indexed on their own).

    .venv/bin/python eval/tune.py            # prints the shipped and the best weights
"""

from __future__ import annotations

import argparse
import itertools
import random
from dataclasses import dataclass

import numpy as np

from ctqa.config import Settings
from ctqa.evaluate import is_hit
from ctqa.training_data import DEFAULT_WORK, SQUAD_TRAIN, articles_bot, load_squad, split

SIGNALS = ("dense", "unit", "coverage", "names")
GRID = {
    "dense": (0.0, 0.1, 0.2, 0.3, 0.4),
    "unit": (0.2, 0.4, 0.6, 0.8),
    "coverage": (0.0, 0.1, 0.2, 0.3, 0.4, 0.5),
    "names": (0.0, 0.1, 0.2),
}
READ = 4  # about what the reader reads; tune before `make model` chooses how many exactly


@dataclass
class Searched:
    """One question's candidates: their signals and which of them answer it."""

    signals: np.ndarray  # candidates x SIGNALS
    answers: np.ndarray  # bool per candidate


def search(part: str, limit: int | None, candidates: int, seed: int) -> list[Searched]:
    """Signals of the first `candidates` passages of the answerable questions of one part."""
    every = split(load_squad(SQUAD_TRAIN / "questions.jsonl"))[part]
    questions = [q for q in every if q.answerable]
    random.Random(seed).shuffle(questions)
    questions = questions[:limit]
    retriever = articles_bot(every, part, DEFAULT_WORK).load()  # make model's index
    found = []
    for q in questions:
        hits = retriever.search(q.question, k=candidates).hits
        signals = np.array([[getattr(h, s) for s in SIGNALS] for h in hits], np.float32)
        answers = np.array([is_hit(h.passage, q) for h in hits], dtype=bool)
        if len(hits):
            found.append(Searched(signals, answers))
    return found


def recall(rows: list[Searched], weights: np.ndarray, n: int) -> float:
    """Share of questions with an answering passage among the `n` best-scored candidates."""
    hits = []
    for r in rows:
        order = np.argsort(-(r.signals @ weights), kind="stable")[:n]
        hits.append(bool(r.answers[order].any()))
    return float(np.mean(hits))


def best_weights(rows: list[Searched], n: int) -> np.ndarray:
    grid = [np.array(w) for w in itertools.product(*(GRID[s] for s in SIGNALS))]
    return max(grid, key=lambda w: (round(recall(rows, w, n), 4), recall(rows, w, 1)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=2000, help="questions searched per part")
    parser.add_argument("--candidates", type=int, default=30)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--read", type=int, default=READ, help=f"recall at (default {READ})")
    args = parser.parse_args()
    n = args.read
    train = search("train", args.limit, args.candidates, args.seed)
    tuning = search("tuning", args.limit, args.candidates, args.seed)
    s = Settings.from_env()
    shipped = np.array([s.weight_dense, s.weight_unit, s.weight_lexical, s.weight_names])
    chosen = best_weights(train, n)
    print(f"{len(train)} training and {len(tuning)} tuning questions; recall@{n}")
    for label, weights in (("shipped", shipped), ("best on the training articles", chosen)):
        print(f"{label}: " + ", ".join(f"{s}={w:g}" for s, w in zip(SIGNALS, weights, strict=True)))
        for name, rows in (("training", train), ("tuning", tuning)):
            print(
                f"  {name} articles: recall@{n} {recall(rows, weights, n):.3f}, "
                f"Hit@1 {recall(rows, weights, 1):.3f}"
            )


if __name__ == "__main__":
    main()
