"""Follow-ups: whether a question leans on the conversation before it, decided by what the
search finds, not by which words the question contains.

Each question is searched alone, and glued after the query of the question before it. Three
measures then say whether it leans on that context:
- `lean`: how little the question says on its own. The glued text's embedding is compared with
  the earlier query's and with the question's: "And the French one?" adds little, so the glued
  text means nearly what the earlier query meant (cosine with it high, with the question low);
  "What did they say about Afghanistan?" pulls the glued text its own way.
- `gap`: how much the question, searched alone, prefers its own best passage to the one the
  earlier answer found: a score difference, near 0 when the earlier passage serves it as well.
- `lift`: how much surer the glued search is than the earlier question's own (a confidence
  difference): a follow-up keeps the earlier subject, so the glued text finds it as surely,
  while an unrelated question glued on blurs it.
A question leans when `rule.lean * lean - rule.gap * gap + rule.lift * lift + rule.bias > 0`
(`FollowUpRule`);
the weights are a logistic fit on the tuning half of the conversation set and on statement
tuning questions asked after unrelated ones (`eval/tune_followups.py`), never on what the
README reports. When it leans, the glued query is what is searched and shown ("Searched
for: ..."); "his", "them" or "there" then find the passage the earlier answer cited through the
earlier question's words.

>>> rule = FollowUpRule(lean=7.0, gap=24.0, lift=10.0, bias=-1.0)
>>> rule.leans(lean=0.6, gap=0.02, lift=0.0), rule.leans(lean=-0.1, gap=0.3, lift=-0.1)
(True, False)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # importing the bot stays light: retrieval loads with the index
    from .retrieval import Ranking

# Questions glued into one query at most: a chain of follow-ups keeps its last three.
CHAIN = 3
# Earlier questions followed to resolve the current one: enough for a chain of CHAIN, and the
# cost stays bounded (two searches each) however long the conversation.
FOLLOWED = CHAIN


@dataclass(frozen=True)
class FollowUpRule:
    """Weights of the evidence that a question leans on the one before it."""

    lean: float
    gap: float
    lift: float
    bias: float

    @classmethod
    def of(cls, settings) -> FollowUpRule:
        """The rule a `Settings` holds (`follow_lean`, `follow_gap`, `follow_lift`,
        `follow_bias`)."""
        return cls(
            settings.follow_lean, settings.follow_gap, settings.follow_lift, settings.follow_bias
        )

    def score(self, lean: float, gap: float, lift: float) -> float:
        return self.lean * lean - self.gap * gap + self.lift * lift + self.bias

    def leans(self, lean: float, gap: float, lift: float) -> bool:
        return self.score(lean, gap, lift) > 0


@dataclass(frozen=True)
class Step:
    """One question of a conversation as it was searched."""

    question: str
    query: str  # what was searched: the question, or it glued after the earlier ones
    ranking: Ranking
    chain: tuple[str, ...]  # the questions glued into `query`, oldest first
    lean: float | None = None  # the evidence, None for a first question
    gap: float | None = None
    lift: float | None = None

    @property
    def leaned(self) -> bool:
        return len(self.chain) > 1


def follow(
    questions: list[str],
    search: Callable[[str], Ranking],
    rule: FollowUpRule,
    recall: Callable[[str], Ranking] | None = None,
) -> Step:
    """The last of `questions` as searched, each of the last `FOLLOWED + 1` leaning on the one
    before it when `rule` says so; `search(text)` returns a `Ranking`. `recall(text)`, when
    given, searches for the earlier questions instead: the same rankings, kept from the turns
    that searched them (recent.py)."""
    window = questions[-(FOLLOWED + 1) :]
    step = None
    for position, question in enumerate(window, start=1):
        earlier = recall is not None and position < len(window)
        step = next_step(question, step, recall if earlier else search, rule)
    if step is None:
        raise ValueError("follow() needs at least one question")
    return step


def next_step(
    question: str, before: Step | None, search: Callable[[str], Ranking], rule: FollowUpRule
) -> Step:
    """`question` searched alone, or glued after `before` when the evidence says it leans."""
    alone = search(question)
    if before is None or not before.ranking.hits or not alone.hits:
        return Step(question=question, query=question, ranking=alone, chain=(question,))
    chain = (*before.chain, question)[-CHAIN:]
    query = " ".join(chain)
    glued = search(query)
    lean = cosine(glued.vector, before.ranking.vector) - cosine(glued.vector, alone.vector)
    gap = alone.hits[0].score - alone.score_of(before.ranking.hits[0].row)
    lift = glued.confidence - before.ranking.confidence
    evidence = {"lean": lean, "gap": gap, "lift": lift}
    if rule.leans(**evidence):
        return Step(question=question, query=query, ranking=glued, chain=chain, **evidence)
    return Step(question=question, query=question, ranking=alone, chain=(question,), **evidence)


def cosine(a: np.ndarray | None, b: np.ndarray | None) -> float:
    """Cosine of two embeddings (0 when one is missing)."""
    if a is None or b is None:
        return 0.0
    norms = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(a @ b) / norms if norms else 0.0
