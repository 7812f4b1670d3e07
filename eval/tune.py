"""Choose the fusion weights and the abstention threshold on half of the eval questions and
check them on the other half.

Every question's candidate passages are searched once with their signals (dense, unit,
coverage, names); the weights are then searched on a grid, offline. A question's half is fixed by
a hash of its id, so the split is the same on every run.

    .venv/bin/python eval/tune.py            # prints the best weights, held-out figures, trade-off
"""

from __future__ import annotations

import argparse
import itertools
import zlib
from dataclasses import dataclass

import numpy as np

from ctqa.bot import Bot, resolve_query
from ctqa.config import Settings
from ctqa.evaluate import EvalQuestion, default_sets, load_questions, same_doc

SIGNALS = ("dense", "unit", "coverage", "names")
GRID = {
    "dense": (0.0, 0.1, 0.2, 0.3, 0.4),
    "unit": (0.2, 0.4, 0.6, 0.8),
    "coverage": (0.0, 0.1, 0.2, 0.3, 0.4, 0.5),
    "names": (0.0, 0.1, 0.2),
}


@dataclass
class Searched:
    """One question's candidates: their signals and which of them answer it."""

    set_name: str
    answerable: bool
    half: int
    signals: np.ndarray  # candidates x SIGNALS
    answers: np.ndarray  # bool per candidate


def search_all(limit: int | None, candidates: int) -> list[Searched]:
    """Signals of the top `candidates` passages of every eval question."""
    found = []
    for name, eval_set in default_sets().items():
        retriever = Bot(corpus=eval_set.corpus).retriever  # the same index as `ctqa eval`
        files = [(f, False) for f in eval_set.files] + [(f, True) for f in eval_set.outside]
        for path, outside in files:
            for q in load_questions(path, outside)[:limit]:
                query = resolve_query(q.question, list(q.history))
                hits = retriever.search(query, k=candidates).hits
                signals = np.array([[getattr(h, s) for s in SIGNALS] for h in hits], np.float32)
                answers = np.array([_answers(h.passage, q) for h in hits], dtype=bool)
                half = zlib.crc32(q.id.encode()) % 2
                found.append(Searched(name, q.answerable, half, signals, answers))
    return found


def _answers(passage, q: EvalQuestion) -> bool:
    if not q.answerable:
        return False
    if q.doc is not None and not same_doc(passage.doc_id, q.doc):
        return False
    return any(a in passage.text for a in q.answers)


def hit_at_1(rows: list[Searched], weights: np.ndarray) -> float:
    """Share of answerable questions whose best-scored candidate answers them."""
    hits = [r.answers[int(np.argmax(r.signals @ weights))] for r in rows if r.answerable]
    return float(np.mean(hits)) if hits else float("nan")


def mean_over_sets(rows: list[Searched], weights: np.ndarray) -> float:
    """Hit@1 averaged over the sets, so that the big SQuAD slice does not drown the statement."""
    names = sorted({r.set_name for r in rows})
    return float(np.mean([hit_at_1([r for r in rows if r.set_name == n], weights) for n in names]))


def best_weights(rows: list[Searched]) -> np.ndarray:
    grid = itertools.product(*(GRID[s] for s in SIGNALS))
    return max((np.array(w) for w in grid), key=lambda w: mean_over_sets(rows, w))


def trade_off(rows: list[Searched], weights: np.ndarray, thresholds) -> list[str]:
    """Per threshold: answer rate on answerable, abstention on unanswerable, per set."""
    names = sorted({r.set_name for r in rows})
    lines = ["threshold  " + "  ".join(f"{n}:answer {n}:abstain" for n in names)]
    for t in thresholds:
        cells = []
        for n in names:
            top = [
                (r.answerable, float((r.signals @ weights).max())) for r in rows if r.set_name == n
            ]
            answered = [s >= t for a, s in top if a]
            abstained = [s < t for a, s in top if not a]
            cells.append(f"{np.mean(answered):.3f} {np.mean(abstained):.3f}")
        lines.append(f"{t:.2f}       " + "        ".join(cells))
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, help="at most this many questions per file")
    parser.add_argument("--candidates", type=int, default=30)
    args = parser.parse_args()
    rows = [r for r in search_all(args.limit, args.candidates) if len(r.signals)]
    check = [r for r in rows if r.half == 1]
    shipped = Settings()
    current = np.array(
        [shipped.weight_dense, shipped.weight_unit, shipped.weight_lexical, shipped.weight_names]
    )
    chosen = best_weights([r for r in rows if r.half == 0])
    for label, weights in (("shipped", current), ("best on tuning half", chosen)):
        print(f"{label}: " + ", ".join(f"{s}={w:g}" for s, w in zip(SIGNALS, weights, strict=True)))
        for n in sorted({r.set_name for r in rows}):
            in_set = [r for r in rows if r.set_name == n]
            tuned = hit_at_1([r for r in in_set if r.half == 0], weights)
            held = hit_at_1([r for r in in_set if r.half == 1], weights)
            print(f"  {n}: Hit@1 tuning half {tuned:.3f}, held-out half {held:.3f}")
    print("\nAbstention trade-off of the shipped weights, held-out half:")
    print("\n".join(trade_off(check, current, np.arange(0.30, 0.62, 0.02))))


if __name__ == "__main__":
    main()
