"""How well ctqa follows a conversation, for `ctqa eval` and for choosing the follow-up rule.

Two measures:
- The conversation set (`eval/statement/conversations.jsonl`): cases of 2 to 4 turns, each
  turn asked with the questions before it. Follow-ups (pronouns, ellipsis, "what about", the
  person or group the previous answer named) and topic switches are scored apart, as
  answered-and-right; unanswerable follow-ups by whether ctqa declined. Two baselines run
  beside the shipped rule: every question alone, and every question glued after the one before
  it; and their better, turn by turn ("either"): the most a rule that chooses, for each turn,
  between asking it alone and glued after the question before it could reach. Each case
  belongs to a `half`: "tuning" may inform choices, "reported" never does.
- Standalone questions after an unrelated one: every question of an eval set without history
  is asked again after an answerable question of the same set on another statement (another
  passage when the set has one statement), a pairing fixed by a seed. It is kept when it gets
  the same first passage, and the same answer-or-decline, as alone.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from .evaluate import EvalQuestion, ask, first_passage, load_questions

PAIRING_SEED = 7
FIRST, SWITCH = "first", "switch"
MODES = ("shipped", "alone", "glued")
EITHER = "either"  # per turn, right when alone or glued is


@dataclass(frozen=True)
class Turn:
    """One turn of a conversation case, with the questions asked before it."""

    case: str
    half: str
    question: EvalQuestion  # carries the earlier questions as its `history`

    @property
    def part(self) -> str:
        """ "first", "follow-up", "switch", or "unanswerable follow-up"."""
        kind = self.question.kind
        if kind in (FIRST, SWITCH):
            return kind
        return "follow-up" if self.question.answerable else "unanswerable follow-up"


@dataclass(frozen=True)
class ConversationScores:
    """Each turn's outcome, (part, right), in the order of the turns scored, for one way of
    searching; right means answered right (declined, for unanswerable follow-ups)."""

    mode: str
    outcomes: tuple[tuple[str, bool], ...]

    @property
    def shares(self) -> dict[str, tuple[float, int]]:
        """Per part, the share right and how many turns it holds."""
        by_part: dict[str, list[bool]] = {}
        for part, right in self.outcomes:
            by_part.setdefault(part, []).append(right)
        return {part: (sum(v) / len(v), len(v)) for part, v in by_part.items()}


def better_of(
    a: ConversationScores, b: ConversationScores, mode: str = EITHER
) -> ConversationScores:
    """Each turn right when it is right in `a` or in `b`, scored over the same turns.

    >>> a = ConversationScores("alone", (("follow-up", True), ("follow-up", False)))
    >>> b = ConversationScores("glued", (("follow-up", False), ("follow-up", False)))
    >>> better_of(a, b).shares
    {'follow-up': (0.5, 2)}
    """
    if [part for part, _ in a.outcomes] != [part for part, _ in b.outcomes]:
        raise ValueError("better_of needs the outcomes of the same turns, in the same order")
    pairs = zip(a.outcomes, b.outcomes, strict=True)
    return ConversationScores(mode, tuple((part, x or y) for (part, x), (_, y) in pairs))


def load_turns(path: Path, half: str | None = None) -> list[Turn]:
    """Every turn of the conversation cases in `path` (of one `half` when given)."""
    turns = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if not line.strip():
                continue
            case = json.loads(line)
            if half is not None and case["half"] != half:
                continue
            asked: list[str] = []
            for number, row in enumerate(case["turns"], start=1):
                question = EvalQuestion(
                    id=f"{case['id']}-{number}",
                    question=row["question"],
                    answerable=bool(row.get("answerable", True)),
                    doc=case.get("doc") if row.get("answerable", True) else None,
                    answers=tuple(row.get("answers", ())),
                    history=tuple(asked),
                    kind=row.get("kind", ""),
                    paragraph=row.get("paragraph"),
                )
                turns.append(Turn(case["id"], case["half"], question))
                asked.append(row["question"])
    return turns


def as_asked(turn: Turn, mode: str) -> EvalQuestion:
    """The turn's question as one way of searching asks it: with its history ("shipped"),
    without ("alone"), or glued after the question before it, without history ("glued")."""
    q = turn.question
    if mode == "shipped" or not q.history:
        return q
    if mode == "alone":
        return replace(q, history=())
    return replace(q, question=f"{q.history[-1]} {q.question}", history=())


def score_conversations(bot, turns: list[Turn], mode: str, k: int = 5) -> ConversationScores:
    """Each turn asked the `mode` way, scored by part."""
    outcomes = []
    for turn in turns:
        result = ask(bot, as_asked(turn, mode), k)
        right = result.abstained if not turn.question.answerable else result.answered_right
        outcomes.append((turn.part, right))
    return ConversationScores(mode, tuple(outcomes))


def pairings(questions: list[EvalQuestion], seed: int = PAIRING_SEED, earlier: int = 1):
    """(earlier question, question) pairs, `earlier` of them for every question: each earlier
    one answerable and on another statement, or on another passage when all are on one
    statement; drawn in a fixed order from `seed`."""
    rng = random.Random(seed)
    docs = {q.doc for q in questions if q.answerable}
    pairs = []
    for q in questions:

        def unrelated(other, q=q):
            if not other.answerable or other is q:
                return False
            if len(docs) > 1:
                return other.doc != q.doc
            return other.paragraph != q.paragraph or q.paragraph is None

        pool = [o for o in questions if unrelated(o)]
        pairs.extend((o.question, q) for o in rng.sample(pool, min(earlier, len(pool))))
    return pairs


def kept_share(
    bot, pairs: Iterable[tuple[str, EvalQuestion]], k: int = 5, asked: dict | None = None
) -> tuple[float, int]:
    """Share of questions that keep, after their earlier question, the first passage and the
    answer-or-decline they get alone; and how many were asked. `asked` maps (id, question) to
    what a question got alone, `(abstained, first passage)`, where a run already asked it
    (`alone_outcomes`); the others are asked alone here."""
    alone = dict(asked or {})
    kept = []
    for earlier, q in pairs:
        key = (q.id, q.question)
        if key not in alone:  # a question may follow several earlier ones: asked once
            answer = bot.answer(q.question, k=k)
            alone[key] = (answer.abstained, first_passage(answer))
        after = bot.answer(q.question, history=[earlier], k=k)
        kept.append(alone[key] == (after.abstained, first_passage(after)))
    return (sum(kept) / len(kept) if kept else 0.0), len(kept)


def alone_outcomes(results) -> dict:
    """What each question of `results` (`QuestionResult`s asked with the `k` that `kept_share`
    uses) got, as `kept_share` takes it. A follow-up file's results, asked with history, may be
    among them: `kept_share` only looks up the standalone questions it pairs."""
    return {(r.id, r.question): (r.abstained, r.first) for r in results}


def standalone_questions(files: Iterable[Path], outside: Iterable[Path] = ()) -> list:
    """The questions of an eval set asked without history (follow-up files are left out)."""
    found = [q for path in files for q in load_questions(path) if not q.history]
    return found + [q for path in outside for q in load_questions(path, outside=True)]


def format_conversations(name: str, scores: list[ConversationScores]) -> str:
    """A plain-text table: one row per part, one column per way of searching."""
    parts = ("follow-up", SWITCH, "unanswerable follow-up", FIRST)
    header = f"{name:<28}" + "".join(f"{s.mode:>14}" for s in scores)
    rows = [header]
    for part in parts:
        cells = []
        for s in scores:
            share, n = s.shares.get(part, (None, 0))
            cells.append(f"{'-' if share is None else f'{share:.3f}'} ({n})".rjust(14))
        rows.append(f"  {part:<26}" + "".join(cells))
    return "\n".join(rows)


def conversation_figures(
    bot, eval_set, limit: int | None = None, pairs: bool = True, asked: dict | None = None
):
    """The figures `ctqa eval` prints for one set: the conversation set's reported half (when
    the set has one) by way of searching, and the share of standalone questions kept after an
    unrelated one (`asked`: what its questions got alone, see `kept_share`). Returns (text,
    (kept share, questions asked) or None)."""
    lines = []
    if eval_set.conversations is not None:
        turns = load_turns(eval_set.conversations, half="reported")[:limit]
        scores = [score_conversations(bot, turns, mode) for mode in MODES]
        scores.append(better_of(scores[MODES.index("alone")], scores[MODES.index("glued")]))
        lines.append(format_conversations(f"{eval_set.name} conversations, reported half", scores))
    kept = None
    if pairs:
        questions = standalone_questions(eval_set.files, eval_set.outside)
        kept = kept_share(bot, pairings(questions)[:limit], asked=asked)
        lines.append(
            f"{eval_set.name}: standalone questions asked after an unrelated one keep their "
            f"first passage: {kept[0]:.3f} of {kept[1]}"
        )
    return "\n".join(lines), kept
