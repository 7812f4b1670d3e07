"""Follow-ups decided by evidence (conversation.py): the rule, the steps, the bounded cost."""

from types import SimpleNamespace

import numpy as np
import pytest

from ctqa.config import Settings
from ctqa.conversation import CHAIN, FOLLOWED, FollowUpRule, Step, follow, next_step
from ctqa.retrieval import Ranking

RULE = FollowUpRule.of(Settings())  # the shipped weights


def unit(*values) -> np.ndarray:
    v = np.array(values, dtype=np.float32)
    return v / np.linalg.norm(v)


class FakeSearch:
    """Searches from a table: text -> (embedding, {passage row: score}); texts not in it (glued
    ones) embed as the normalised sum of their parts' embeddings and score as their mean."""

    def __init__(self, table):
        self.table = table
        self.searched: list[str] = []

    def parts(self, text):
        if text in self.table:
            return [self.table[text]]
        found = [v for k, v in self.table.items() if k in text]
        assert found, text
        return found

    def __call__(self, text) -> Ranking:
        self.searched.append(text)
        parts = self.parts(text)
        vector = sum(p[0] for p in parts)
        vector = vector / np.linalg.norm(vector)
        rows = set().union(*(p[1] for p in parts))
        scores = {r: float(np.mean([p[1].get(r, 0.0) for p in parts])) for r in rows}
        order = sorted(scores, key=scores.get, reverse=True)
        hits = [SimpleNamespace(row=r, score=scores[r]) for r in order]
        rows, values = np.array(order), np.array([scores[r] for r in order])
        return Ranking(
            hits, scores[order[0]], text, vector=vector, candidates=rows, candidate_scores=values
        )


INDIAN = "Who led the Indian delegation?"
FRENCH_ONE = "And the French one?"
AFGHANISTAN = "What did they say about Afghanistan?"
TABLE = {
    # the earlier question: paragraph 3 (row 3) clearly first
    INDIAN: (unit(1, 0, 0, 0), {3: 0.50, 1: 0.20, 5: 0.15}),
    # a fragment: says little (near the generic direction), paragraph 3 about as good as any
    FRENCH_ONE: (unit(0.1, 0, 0, 1), {1: 0.30, 3: 0.29, 5: 0.10}),
    # a question of its own: its own direction, its own paragraph far ahead
    AFGHANISTAN: (unit(0, 1, 0, 0.1), {1: 0.55, 3: 0.15, 5: 0.10}),
    # glued after the earlier question, the fragment means what that question meant...
    f"{INDIAN} {FRENCH_ONE}": (unit(1, 0, 0, 0.2), {3: 0.45, 1: 0.25}),
    # ...while a question of its own pulls the glued text halfway
    f"{INDIAN} {AFGHANISTAN}": (unit(1, 1, 0, 0.1), {1: 0.40, 3: 0.35}),
}


def test_a_fragment_leans_on_the_question_before_it():
    search = FakeSearch(TABLE)
    step = follow([INDIAN, FRENCH_ONE], search, RULE)
    assert step.leaned and step.query == f"{INDIAN} {FRENCH_ONE}"
    assert step.gap == pytest.approx(0.01) and step.lean > 0.3
    assert step.lift == pytest.approx(0.45 - 0.50)  # the glued search about as sure as before
    assert step.ranking.hits[0].row == 3


def test_a_question_of_its_own_is_searched_alone_after_an_unrelated_one():
    step = follow([INDIAN, AFGHANISTAN], FakeSearch(TABLE), RULE)
    assert not step.leaned and step.query == AFGHANISTAN
    assert step.gap == pytest.approx(0.40) and abs(step.lean) < 0.1
    assert step.lift == pytest.approx(0.40 - 0.50)
    assert step.ranking.hits[0].row == 1


def test_a_first_question_is_searched_alone_without_evidence():
    search = FakeSearch(TABLE)
    step = follow([FRENCH_ONE], search, RULE)
    assert step == Step(FRENCH_ONE, FRENCH_ONE, step.ranking, (FRENCH_ONE,))
    assert step.lean is None and search.searched == [FRENCH_ONE]


def test_the_rule_weighs_the_three_measures():
    assert RULE.leans(lean=0.6, gap=0.0, lift=0.0)
    assert not RULE.leans(lean=0.6, gap=0.2, lift=0.0)  # the earlier passage serves it much worse
    assert not RULE.leans(lean=0.0, gap=0.0, lift=0.0)  # it says enough on its own
    assert RULE.leans(lean=0.3, gap=0.0, lift=0.0)
    assert not RULE.leans(lean=0.3, gap=0.0, lift=-0.2)  # glued on, it blurs the earlier subject
    assert RULE.score(0.6, 0.0, 0.0) > RULE.score(0.6, 0.01, 0.0)
    assert RULE.score(0.6, 0.0, 0.1) > RULE.score(0.6, 0.0, 0.0)


def test_a_passage_that_was_not_even_a_candidate_counts_as_far_away():
    table = dict(TABLE)
    table[FRENCH_ONE] = (TABLE[FRENCH_ONE][0], {1: 0.30, 5: 0.10})  # row 3 not found alone
    step = next_step(FRENCH_ONE, follow([INDIAN], FakeSearch(table), RULE), FakeSearch(table), RULE)
    assert step.gap == pytest.approx(0.20)


def test_a_chain_of_follow_ups_keeps_its_last_questions_and_the_cost_is_bounded():
    always = FollowUpRule(lean=0.0, gap=0.0, lift=0.0, bias=1.0)
    questions = [f"question {i}" for i in range(10)]
    table = {q: (unit(1, i, 0, 0), {i: 0.5}) for i, q in enumerate(questions)}
    search = FakeSearch(table)
    step = follow(questions, search, always)
    assert step.chain == tuple(questions[-CHAIN:])
    assert step.query == " ".join(questions[-CHAIN:])
    assert len(search.searched) == 1 + 2 * FOLLOWED  # whatever the conversation's length


def test_follow_needs_a_question():
    with pytest.raises(ValueError):
        follow([], FakeSearch(TABLE), RULE)
