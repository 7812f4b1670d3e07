"""Metrics and the eval runner behind `ctqa eval`.

A question set is a JSON-lines file; each line has `question`, `answerable`, and for answerable
questions `answers` (strings found verbatim in the right passage) and `doc` (the statement's id;
SQuAD's `title` serves too); follow-ups carry `history`. A cited passage is a hit when it comes
from `doc` and contains one of `answers`.

>>> reciprocal_rank(2, 5), reciprocal_rank(None, 5)
(0.5, 0.0)
"""

from __future__ import annotations

import json
import re
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

from .config import PROJECT_ROOT
from .span_metrics import exact_match, f1

EVAL_DIR = PROJECT_ROOT / "eval"


@dataclass(frozen=True)
class EvalQuestion:
    """One line of a question set."""

    id: str
    question: str
    answerable: bool
    doc: str | None = None
    answers: tuple[str, ...] = ()
    history: tuple[str, ...] = ()
    kind: str = ""
    paragraph: int | None = None  # the answering paragraph's number, when the set gives it


@dataclass(frozen=True)
class EvalSet:
    """Named question files over one corpus."""

    name: str
    corpus: Path
    files: tuple[Path, ...]
    # Questions on documents outside the corpus: the bot should abstain on every one.
    outside: tuple[Path, ...] = ()
    # Multi-turn cases (conversation_eval.py), when the set has them.
    conversations: Path | None = None


@dataclass
class QuestionResult:
    """What the bot did with one question."""

    id: str
    question: str
    query: str
    answerable: bool
    kind: str
    abstained: bool
    rank: int | None  # 1-based rank of the first hit among the ranked passages, None if none
    confidence: float
    latency_ms: float
    cited: list[str] = field(default_factory=list)  # "doc ¶N: first words" per ranked passage
    first_length: int = 0  # characters of the first cited passage (0 when abstained)
    span: str | None = None  # the answer span marked in the first passage
    answers: tuple[str, ...] = ()
    first: tuple[str, int] | None = None  # (statement, start) of the first ranked passage

    @property
    def answered_right(self) -> bool:
        """Answered, and the first citation is right: what a user can rely on."""
        return self.answerable and not self.abstained and self.rank == 1


@dataclass
class SetReport:
    """Figures for one question file."""

    name: str
    questions: int
    answerable: int
    answered_right: float | None  # the headline: answered and first citation right
    hit_at_1: float | None
    hit_at_3: float | None
    mrr_at_5: float | None
    answer_rate: float | None
    abstention_rate: float | None
    latency_p50_ms: float
    latency_p95_ms: float
    results: list[QuestionResult]
    span_exact_match: float | None = None  # over the questions answered and right
    span_f1: float | None = None
    kind: str = ""  # set when the report holds one kind of its file's questions only


def default_sets() -> dict[str, EvalSet]:
    """The shipped sets: the statement, and the SQuAD slice."""
    statement = EVAL_DIR / "statement"
    squad = EVAL_DIR / "squad"
    return {
        "statement": EvalSet(
            "statement",
            PROJECT_ROOT / "seeds",
            tuple(
                statement / f for f in ("answerable.jsonl", "unanswerable.jsonl", "followups.jsonl")
            ),
            conversations=statement / "conversations.jsonl",
        ),
        "squad": EvalSet(
            "squad", squad / "corpus", (squad / "questions.jsonl",), (squad / "outside.jsonl",)
        ),
    }


def load_questions(path: Path, outside: bool = False) -> list[EvalQuestion]:
    """Questions of a JSON-lines file; SQuAD lines (`title`) map to `doc`. With `outside`,
    every question counts as unanswerable: its document is not in the corpus."""
    questions = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            row = json.loads(line)
            questions.append(
                EvalQuestion(
                    id=str(row.get("id", f"{path.stem}-{number}")),
                    question=row["question"],
                    answerable=bool(row.get("answerable", True)) and not outside,
                    doc=row.get("doc", row.get("title")),
                    answers=tuple(row.get("answers", ())),
                    history=tuple(row.get("history", ())),
                    kind=row.get("kind", ""),
                    paragraph=row.get("paragraph"),
                )
            )
    return questions


def doc_key(name: str) -> str:
    """A document id, title or file stem reduced so that they compare: lowercase, letters and
    digits only.

    >>> doc_key("Victoria_(Australia)") == doc_key("Victoria_Australia")
    True
    """
    return re.sub(r"[\W_]+", "", name).lower()


def same_doc(doc_id: str, name: str) -> bool:
    """Document ids match ignoring case and punctuation."""
    return doc_key(doc_id) == doc_key(name)


def is_hit(citation, question) -> bool:
    """A citation (or passage) answers when it comes from the question's `doc` and holds one of
    its `answers`."""
    if question.doc is not None and not same_doc(citation.doc_id, question.doc):
        return False
    return any(a in citation.text for a in question.answers)


def reciprocal_rank(rank: int | None, cutoff: int) -> float:
    return 1.0 / rank if rank is not None and rank <= cutoff else 0.0


def percentile(values: list[float], q: float) -> float:
    """The q-quantile (0..1) of `values`, by linear interpolation."""
    if not values:
        return 0.0
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(q * 100) - 1]


def first_passage(answer) -> tuple[str, int] | None:
    """(statement, start) of the first passage an answer ranks, cited or nearest."""
    ranked = answer.citations or answer.nearest
    return (ranked[0].doc_id, ranked[0].start) if ranked else None


def ask(bot, question: EvalQuestion, k: int) -> QuestionResult:
    """Ask one question and score what came back."""
    started = time.perf_counter()
    answer = bot.answer(question.question, history=list(question.history) or None, k=k)
    latency = (time.perf_counter() - started) * 1000
    ranked = answer.citations or answer.nearest
    rank = next((i for i, c in enumerate(ranked, start=1) if is_hit(c, question)), None)
    return QuestionResult(
        id=question.id,
        question=question.question,
        query=answer.query,
        answerable=question.answerable,
        kind=question.kind,
        abstained=answer.abstained,
        rank=rank if question.answerable else None,
        confidence=round(answer.confidence, 4),
        latency_ms=round(latency, 2),
        cited=[f"{c.doc_id} ¶{c.paragraph}: {c.text[:60]}" for c in ranked],
        first_length=len(answer.citations[0].text) if answer.citations else 0,
        span=ranked[0].answer_text if ranked else None,
        answers=question.answers,
        first=first_passage(answer),
    )


def summarise(name: str, results: list[QuestionResult]) -> SetReport:
    """Hit@1, Hit@3 and MRR@5 over the ranked passages of answerable questions; answer rate on
    those; abstention rate on the others; latency percentiles."""
    answerable = [r for r in results if r.answerable]
    other = [r for r in results if not r.answerable]

    def mean(values):
        return round(sum(values) / len(values), 4) if values else None

    latencies = [r.latency_ms for r in results]
    right = [r for r in answerable if r.answered_right and r.span is not None]
    return SetReport(
        name=name,
        questions=len(results),
        answerable=len(answerable),
        answered_right=mean([r.answered_right for r in answerable]),
        hit_at_1=mean([r.rank == 1 for r in answerable]),
        hit_at_3=mean([r.rank is not None and r.rank <= 3 for r in answerable]),
        mrr_at_5=mean([reciprocal_rank(r.rank, 5) for r in answerable]),
        answer_rate=mean([not r.abstained for r in answerable]),
        abstention_rate=mean([r.abstained for r in other]),
        latency_p50_ms=round(percentile(latencies, 0.5), 2),
        latency_p95_ms=round(percentile(latencies, 0.95), 2),
        results=results,
        span_exact_match=mean([exact_match(r.span, r.answers) for r in right]),
        span_f1=mean([f1(r.span, r.answers) for r in right]),
    )


def run_file(
    bot, path: Path, k: int = 5, limit: int | None = None, outside: bool = False, progress=None
) -> SetReport:
    """Ask every question of one file (at most `limit`) and summarise."""
    questions = load_questions(path, outside)[:limit]
    results = []
    for question in questions:
        results.append(ask(bot, question, k))
        if progress:
            progress()
    return summarise(path.stem, results)


def kind_reports(report: SetReport) -> list[SetReport]:
    """One report per kind of unanswerable question (near-topic, off-topic...) when the file
    holds several, named `file:kind`."""
    kinds = sorted({r.kind for r in report.results if not r.answerable and r.kind})
    if len(kinds) < 2:
        return []
    found = []
    for kind in kinds:
        part = summarise(f"{report.name}:{kind}", [r for r in report.results if r.kind == kind])
        part.kind = kind
        found.append(part)
    return found


def run_set(bot, eval_set: EvalSet, limit: int | None = None) -> list[SetReport]:
    """Reports for every file of a set, named `set/file`; a file of unanswerable questions of
    several kinds (near-topic, off-topic) also gets one report per kind, `set/file:kind`."""
    reports = []
    for path, outside in [(p, False) for p in eval_set.files] + [
        (p, True) for p in eval_set.outside
    ]:
        report = run_file(bot, path, limit=limit, outside=outside)
        report.name = f"{eval_set.name}/{report.name}"
        reports.append(report)
        reports.extend(kind_reports(report))
    return reports
