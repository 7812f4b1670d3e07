"""Choose the fusion weights and the abstention threshold on half of the eval questions and
check them on the other half.

Every question's candidate passages are searched once with their signals (dense, unit,
coverage, names) and which of them agree with which; the weights are then searched on a grid,
offline, and the answer and abstention rates printed for a few penalties on disagreeing
neighbours, on each half. A question's half is fixed by a hash of its id, so the split is the
same on every run.

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
from ctqa.retrieval import AGREEMENT_PASSAGES, agreements, confidence_of

SIGNALS = ("dense", "unit", "coverage", "names")
PENALTIES = (0.0, 0.1, 0.2, 0.25, 0.3, 0.4)
# Which questions each rate is taken over.
KINDS = {
    "answer": lambda r: r.answerable and not r.outside,
    "abstain": lambda r: not r.answerable and not r.outside,
    "outside": lambda r: r.outside,
}
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
    outside: bool  # asked of a corpus without its article
    half: int
    signals: np.ndarray  # candidates x SIGNALS
    answers: np.ndarray  # bool per candidate
    agrees: np.ndarray  # candidates x candidates: same statement, or passage cosine >= cut-off


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
                agrees = _agreements(retriever, hits)
                found.append(Searched(name, q.answerable, outside, half, signals, answers, agrees))
    return found


def _agreements(retriever, hits) -> np.ndarray:
    """Which candidates agree with which, as the retriever counts it."""
    vectors = retriever.index.passage_rows[[h.row for h in hits]]
    docs = [h.passage.doc_id for h in hits]
    return agreements(docs, vectors, retriever.settings.agreement_cosine)


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


def confidence(row: Searched, weights: np.ndarray, penalty: float) -> float:
    """The bot's confidence (`confidence_of`) with these weights and disagreement penalty."""
    scores = row.signals @ weights
    order = np.argsort(-scores, kind="stable")[:AGREEMENT_PASSAGES]
    agreement = float(row.agrees[order[0], order].mean())
    return confidence_of(float(scores[order[0]]), agreement, penalty)


def rates(rows: list[Searched], weights, penalty: float, threshold: float) -> dict[str, float]:
    """Answer rate on answerable questions; abstention on unanswerable in-corpus questions
    (SQuAD's adversarial ones, the statement's) and on questions asked without their article."""
    found = {}
    for kind, wanted in KINDS.items():
        conf = np.array([confidence(r, weights, penalty) for r in rows if wanted(r)])
        if len(conf):
            kept = conf >= threshold if kind == "answer" else conf < threshold
            found[kind] = float(np.mean(kept))
    return found


def trade_off(rows: list[Searched], weights: np.ndarray, penalty: float, thresholds) -> list[str]:
    """Per threshold, per set: answer rate, abstention on unanswerable and outside questions."""
    names = sorted({r.set_name for r in rows})
    lines = ["threshold  " + "  ".join(f"{n}: answer/abstain/outside" for n in names)]
    for t in thresholds:
        cells = []
        for n in names:
            cells.append(_cells(rates([r for r in rows if r.set_name == n], weights, penalty, t)))
        lines.append(f"{t:.2f}       " + "    ".join(cells))
    return lines


def _cells(found: dict[str, float]) -> str:
    return " ".join(f"{found[kind]:.3f}" if kind in found else "  -  " for kind in KINDS)


def penalties(rows: list[Searched], weights: np.ndarray, threshold: float) -> list[str]:
    """Per disagreement penalty, per half: the rates at the shipped threshold."""
    names = sorted({r.set_name for r in rows})
    lines = ["penalty  half  " + "  ".join(f"{n}: answer/abstain/outside" for n in names)]
    for penalty in PENALTIES:
        for half in (0, 1):
            cells = []
            for n in names:
                in_half = [r for r in rows if r.set_name == n and r.half == half]
                cells.append(_cells(rates(in_half, weights, penalty, threshold)))
            lines.append(f"{penalty:.2f}     {half}     " + "    ".join(cells))
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, help="at most this many questions per file")
    parser.add_argument("--candidates", type=int, default=30)
    args = parser.parse_args()
    rows = [r for r in search_all(args.limit, args.candidates) if len(r.signals)]
    check = [r for r in rows if r.half == 1]
    shipped = Settings.from_env()
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
    print(f"\nDisagreement penalty at the shipped threshold {shipped.abstain_below}:")
    print("\n".join(penalties(rows, current, shipped.abstain_below)))
    print("\nAbstention trade-off of the shipped weights and penalty, held-out half:")
    penalty = shipped.weight_disagreement
    print("\n".join(trade_off(check, current, penalty, np.arange(0.30, 0.62, 0.02))))


if __name__ == "__main__":
    main()
