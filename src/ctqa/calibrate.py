"""Choose, on the tuning split only, how the reader's scores become ctqa's order and abstention.

The tuning split has two parts, neither trained on nor reported:
- "squad": the tuning articles (`training_data.TUNING_ARTICLES`), indexed on their own, asked
  their own questions (answerable and adversarial) and those of `TUNING_OUTSIDE` (outside);
- "statement": `eval/statement-tuning/questions.jsonl`, questions on the shipped statement
  written for tuning (answerable, near-topic and off-topic), asked of `seeds/`.

Each question is searched by ctqa's retrieval and the first `MAX_CANDIDATES` passages read.
Then, in this order:
1. `sigmoid(reader * logit + span * span margin + retrieval * score + agreement * retrieval's
   agreement + bias)` is fitted
   (logistic regression, each part weighing the same) to whether a read passage answers;
2. the abstention threshold is the highest that still answers `ANSWER_RATE` of the answerable
   questions of each part;
3. the number of passages to read is the smallest whose answered-and-right rate, averaged over
   the parts, is within `CANDIDATES_SLACK` of the best (each one read costs time on every
   question);
4. the int8 model ships if every figure is within `QUANTISATION_SLACK` of float32's.

The same rule (2.) also gives retrieval alone its threshold on retrieval's confidence
(`baseline`), so that ctqa with and without the reader are compared at one operating rule.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .abstention import abstention_auc, confidences
from .config import PROJECT_ROOT
from .evaluate import QuestionResult, is_hit, load_questions, summarise
from .logistic import fit_logistic
from .reader import Calibration, Reader, Reading, open_session, pair_tokenizer, rerank
from .training_data import articles_bot

STATEMENT_TUNING = PROJECT_ROOT / "eval" / "statement-tuning" / "questions.jsonl"
MAX_CANDIDATES = 6
# Outside questions read: enough to measure abstention on them, fewer to read (time).
MAX_OUTSIDE = 300
ANSWER_RATE = 0.95
CANDIDATES_SLACK = 0.005
QUANTISATION_SLACK = 0.01
FIGURES = ("answered_and_right", "answer_rate", "unanswerable_abstention", "auc")


@dataclass(frozen=True)
class Candidate:
    """A passage retrieval proposed for a tuning question, and what the reader made of it."""

    retrieval: float
    logit: float
    span_margin: float
    hit: bool  # holds one of the question's answers, from its document
    span: str  # the reader's answer span


@dataclass(frozen=True)
class TuningQuestion:
    part: str  # "squad" or "statement"
    kind: str  # "answerable", or the kind of unanswerable: adversarial, outside, near-topic...
    answers: tuple[str, ...]
    candidates: list[Candidate]  # retrieval's order
    agreement: float  # retrieval's: the share of its first passages that agree with the first
    confidence: float  # retrieval's own confidence, which decides abstention without the reader


@dataclass(frozen=True)
class Asked:
    """A tuning question as it is asked: its text, kind and how a hit is recognised."""

    question: str
    kind: str
    answers: tuple[str, ...]
    hit: object  # passage -> bool


def squad_questions(parts: dict) -> list[Asked]:
    asked = []
    for part in ("tuning", "outside"):
        for q in parts[part][: MAX_OUTSIDE if part == "outside" else None]:
            kind = "answerable" if q.answerable else "adversarial"
            kind = "outside" if part == "outside" else kind

            def hit(p, q=q, kind=kind):
                return kind == "answerable" and is_hit(p, q)

            asked.append(Asked(q.question, kind, q.answers, hit))
    return asked


def statement_questions(path: Path = STATEMENT_TUNING) -> list[Asked]:
    asked = []
    for q in load_questions(path):
        kind = "answerable" if q.answerable else q.kind
        hit = lambda p, q=q: q.answerable and is_hit(p, q)  # noqa: E731
        asked.append(Asked(q.question, kind, q.answers, hit))
    return asked


def collect(part: str, bot, asked: list[Asked], readers: dict[str, Reader], n: int):
    """`TuningQuestion`s of one part per reader variant: retrieval once, each variant reads."""
    found: dict[str, list[TuningQuestion]] = {name: [] for name in readers}
    for a in asked:
        ranking = bot.load().search(a.question, n)
        hits = ranking.hits
        texts = [h.passage.text for h in hits]
        for name, reader in readers.items():
            candidates = [
                Candidate(
                    retrieval=h.score,
                    logit=r.logit,
                    span_margin=r.span_margin,
                    hit=bool(a.hit(h.passage)),
                    span=h.passage.text[r.span[0] : r.span[1]],
                )
                for h, r in zip(hits, reader.read(a.question, texts), strict=True)
            ]
            found[name].append(
                TuningQuestion(
                    part, a.kind, a.answers, candidates, ranking.agreement, ranking.confidence
                )
            )
    return found


def fitted(questions: list[TuningQuestion], n: int) -> Calibration:
    """The calibration's weights, fitted on every read passage (threshold left at 0); each part
    weighs the same however many questions it has."""
    rows = [(q.part, c, q.agreement) for q in questions for c in q.candidates[:n]]
    counts = {part: sum(r[0] == part for r in rows) for part in {r[0] for r in rows}}
    features = np.array([[c.logit, c.span_margin, c.retrieval, a] for _, c, a in rows])
    labels = np.array([c.hit for _, c, _ in rows], dtype=float)
    weights = np.array([len(rows) / (len(counts) * counts[p]) for p, _, _ in rows])
    w = fit_logistic(features, labels, weights)
    return Calibration(*(float(v) for v in w), abstain_below=0.0, candidates=n)


def outcomes(questions: list[TuningQuestion], calibration: Calibration | None):
    """(first passage's probability, whether it is a hit, its span) per question; without a
    calibration, retrieval's own (confidence, whether its first passage is a hit, "")."""
    if calibration is None:
        return [(q.confidence, bool(q.candidates and q.candidates[0].hit), "") for q in questions]
    result = []
    for q in questions:
        read = q.candidates[: calibration.candidates]
        found = [Reading(c.logit, (0, 0), c.span_margin) for c in read]
        order = rerank([c.retrieval for c in read], found, calibration, q.agreement)
        if not order:
            result.append((0.0, False, ""))
            continue
        top = read[order[0][0]]
        result.append((order[0][1], top.hit, top.span))
    return result


def figures(questions: list[TuningQuestion], calibration: Calibration | None, t: float) -> dict:
    """The eval's figures (`evaluate.summarise`) on some tuning questions at `calibration`
    (None: retrieval alone), abstaining below `t`."""
    results = [
        QuestionResult(
            id="",
            question="",
            query="",
            answerable=q.kind == "answerable",
            kind=q.kind,
            abstained=probability < t,
            rank=1 if hit else None,
            confidence=probability,
            latency_ms=0.0,
            span=span if calibration is not None else None,
            answers=q.answers,
        )
        for (probability, hit, span), q in zip(
            outcomes(questions, calibration), questions, strict=True
        )
    ]
    report = summarise("tuning", results)
    found = {
        "answered_and_right": report.answered_right,
        "hit_at_1": report.hit_at_1,
        "answer_rate": report.answer_rate,
        "unanswerable_abstention": report.abstention_rate,
    }
    kinds = {r.kind for r in results if not r.answerable}
    for kind in sorted(kinds):  # each kind, even when the part has one
        part = summarise(kind, [r for r in results if r.kind == kind])
        found[f"abstention_{kind}"] = part.abstention_rate
    good, bad = confidences([report])
    found["auc"] = round(abstention_auc(good, bad), 4) if good and bad else None
    if calibration is not None:
        found["span_exact_match"] = report.span_exact_match
        found["span_f1"] = report.span_f1
    return found


def by_part(
    questions: list[TuningQuestion], calibration: Calibration | None, t: float
) -> dict[str, dict]:
    parts = sorted({q.part for q in questions})
    return {p: figures([q for q in questions if q.part == p], calibration, t) for p in parts}


def threshold(questions: list[TuningQuestion], calibration: Calibration | None) -> float:
    """The highest threshold answering `ANSWER_RATE` of each part's answerable questions."""
    got = outcomes(questions, calibration)
    cuts = []
    for part in {q.part for q in questions}:
        good = sorted(
            g[0]
            for g, q in zip(got, questions, strict=True)
            if q.part == part and q.kind == "answerable"
        )
        cuts.append(good[int(np.floor((1 - ANSWER_RATE) * len(good)))])
    return round(float(min(cuts)), 6)


def baseline(questions: list[TuningQuestion]) -> dict:
    """Retrieval alone at the same rule: its threshold and figures by part."""
    t = threshold(questions, None)
    return {"abstain_below": t, "figures": by_part(questions, None, t)}


def choose(questions: list[TuningQuestion]) -> tuple[Calibration, dict]:
    """The calibration for one variant, and its figures by part for every number read."""
    by_n = {}
    for n in range(1, MAX_CANDIDATES + 1):
        calibration = fitted(questions, n)
        calibration = replace(calibration, abstain_below=threshold(questions, calibration))
        by_n[n] = (calibration, by_part(questions, calibration, calibration.abstain_below))

    def score(n):
        return float(np.mean([f["answered_and_right"] for f in by_n[n][1].values()]))

    best = max(score(n) for n in by_n)
    n = min(n for n in by_n if score(n) >= best - CANDIDATES_SLACK)
    return by_n[n][0], {str(k): f for k, (_, f) in by_n.items()}


def moved(int8: dict, float32: dict) -> float:
    """The largest difference of the `FIGURES` between two variants' figures by part."""
    return max(
        abs((int8[part][key] or 0) - (float32[part][key] or 0)) for part in int8 for key in FIGURES
    )


def calibrate(out: Path, export: dict, parts: dict, work: Path, config, log=print):
    """Calibration of the shipped variant and the record's tuning figures; swaps in float32 when
    int8 moves any figure by `QUANTISATION_SLACK` or more."""
    from .bot import Bot
    from .reader_export import ship_float32

    tokenizer = pair_tokenizer()
    readers = {
        "int8": Reader(open_session(out / export["file"], config.threads), tokenizer),
        "float32": Reader(open_session(Path(export["float32_file"]), config.threads), tokenizer),
    }
    squad_bot = articles_bot(parts["tuning"], "tuning", work, log)
    started = time.perf_counter()
    squad = collect("squad", squad_bot, squad_questions(parts), readers, MAX_CANDIDATES)
    statement = collect("statement", Bot(log=log), statement_questions(), readers, MAX_CANDIDATES)
    log(f"read the tuning questions in {time.perf_counter() - started:.0f} s")
    found = {name: squad[name] + statement[name] for name in readers}
    chosen = {name: choose(found[name]) for name in readers}
    n = str(chosen["int8"][0].candidates)
    change = moved(chosen["int8"][1][n], chosen["float32"][1][n])
    shipped = "int8" if change < QUANTISATION_SLACK else "float32"
    if shipped == "float32":
        export.update(ship_float32(out, export))
    calibration, by_n = chosen[shipped]
    alone = baseline(found[shipped])
    log(
        f"tuning split, {shipped} (int8 moved the figures by {change:.3f}), reading "
        f"{calibration.candidates}: {by_n[str(calibration.candidates)]}; retrieval alone, "
        f"abstaining below {alone['abstain_below']}: {alone['figures']}"
    )
    return calibration, {
        "retrieval_alone": alone,
        "shipped": shipped,
        "int8_moved": round(change, 4),
        "questions": {
            "squad": len(squad["int8"]),
            "statement": len(statement["int8"]),
        },
        "by_candidates": by_n,
        "float32_by_candidates": chosen["float32"][1],
    }
