"""The conversation figures of `ctqa eval`: turns and their history, the ways of asking, the
pairing of standalone questions with unrelated ones, and what counts as kept."""

import json
from types import SimpleNamespace

import pytest

from ctqa.conversation_eval import (
    ConversationScores,
    alone_outcomes,
    as_asked,
    better_of,
    kept_share,
    load_turns,
    pairings,
    score_conversations,
)
from ctqa.evaluate import EvalQuestion, ask

DOC = "india-france-joint-working-group-on-counter-terrorism"


def write_cases(path, cases):
    path.write_text("\n".join(json.dumps(c) for c in cases) + "\n", encoding="utf-8")
    return path


CASES = [
    {
        "id": "c1",
        "doc": DOC,
        "half": "tuning",
        "turns": [
            {"question": "Who led?", "paragraph": 3, "answers": ["Singhvi"], "kind": "first"},
            {"question": "His title?", "paragraph": 3, "answers": ["Joint"], "kind": "pronoun"},
            {"question": "How old is he?", "answerable": False, "kind": "unanswerable"},
        ],
    },
    {
        "id": "c2",
        "doc": DOC,
        "half": "reported",
        "turns": [
            {"question": "Who led?", "paragraph": 3, "answers": ["Singhvi"], "kind": "first"},
            {"question": "Afghanistan?", "paragraph": 1, "answers": ["Afghan"], "kind": "switch"},
        ],
    },
]


def test_turns_carry_the_questions_before_them_and_their_part(tmp_path):
    turns = load_turns(write_cases(tmp_path / "c.jsonl", CASES))
    histories = [t.question.history for t in turns[:3]]
    assert histories == [(), ("Who led?",), ("Who led?", "His title?")]
    assert [t.part for t in turns] == [
        "first",
        "follow-up",
        "unanswerable follow-up",
        "first",
        "switch",
    ]
    assert turns[2].question.doc is None and not turns[2].question.answerable
    reported = load_turns(tmp_path / "c.jsonl", half="reported")
    assert [t.case for t in reported] == ["c2", "c2"]


def test_the_three_ways_of_asking(tmp_path):
    turn = load_turns(write_cases(tmp_path / "c.jsonl", CASES))[2]
    assert as_asked(turn, "shipped").history == ("Who led?", "His title?")
    assert as_asked(turn, "alone").question == "How old is he?"
    assert as_asked(turn, "alone").history == ()
    assert as_asked(turn, "glued").question == "His title? How old is he?"


class ScriptedBot:
    """Answers from a table: (question, history) -> (abstained, cited text)."""

    def __init__(self, table):
        self.table = table

    def answer(self, question, history=None, k=5):
        abstained, text = self.table[(question, tuple(history or ()))]
        cited = [SimpleNamespace(doc_id=DOC, start=len(text), text=text, paragraph=1)]
        cited[0].answer_text = None
        return SimpleNamespace(
            abstained=abstained,
            citations=[] if abstained else cited,
            nearest=cited if abstained else [],
            query=question,
            confidence=0.5,
        )


def test_follow_ups_switches_and_unanswerable_follow_ups_are_scored_apart(tmp_path):
    turns = load_turns(write_cases(tmp_path / "c.jsonl", CASES))
    bot = ScriptedBot(
        {
            ("Who led?", ()): (False, "Mahaveer Singhvi led"),
            ("His title?", ("Who led?",)): (False, "Singhvi, Joint Secretary"),
            ("How old is he?", ("Who led?", "His title?")): (False, "Singhvi, Joint Secretary"),
            ("Afghanistan?", ("Who led?",)): (False, "Singhvi led"),  # wrong: kept the old subject
        }
    )
    scores = score_conversations(bot, turns, "shipped")
    assert scores.shares == {
        "first": (1.0, 2),
        "follow-up": (1.0, 1),
        "unanswerable follow-up": (0.0, 1),  # answered where it should have declined
        "switch": (0.0, 1),
    }
    assert [part for part, _ in scores.outcomes] == [t.part for t in turns]


def test_either_is_right_where_alone_or_glued_is_turn_by_turn():
    alone = ConversationScores(
        "alone", (("follow-up", True), ("follow-up", False), ("switch", True))
    )
    glued = ConversationScores(
        "glued", (("follow-up", False), ("follow-up", False), ("switch", False))
    )
    either = better_of(alone, glued)
    assert either.mode == "either"
    assert either.shares == {"follow-up": (0.5, 2), "switch": (1.0, 1)}
    for other in ([("follow-up", True)], [("switch", True), ("follow-up", True), ("switch", True)]):
        with pytest.raises(ValueError):  # scored over other turns
            better_of(alone, ConversationScores("glued", tuple(other)))
    with pytest.raises(ValueError):  # scores of no turns against scores of some
        better_of(ConversationScores("alone", ()), glued)
    assert better_of(ConversationScores("alone", ()), ConversationScores("glued", ())).shares == {}


def q(id, paragraph, doc=DOC, answerable=True):
    return EvalQuestion(id, f"question {id}", answerable, doc, ("x",), paragraph=paragraph)


def test_pairs_take_an_unrelated_answerable_question():
    one_doc = [q("a", 1), q("b", 1), q("c", 2), q("u", None, None, answerable=False)]
    pairs = dict((p.id, earlier) for earlier, p in pairings(one_doc))
    assert pairs["a"] == "question c" and pairs["b"] == "question c"  # another paragraph
    assert pairs["c"] in ("question a", "question b")
    assert pairs["u"] in ("question a", "question b", "question c")
    many = [q("a", 1, "doc1"), q("b", 2, "doc1"), q("c", 1, "doc2")]
    pairs = dict((p.id, earlier) for earlier, p in pairings(many))
    assert pairs == {"a": "question c", "b": "question c", "c": pairs["c"]}  # another statement
    assert pairs["c"] in ("question a", "question b")
    assert pairings(many) == pairings(many)  # a fixed pairing


def test_a_question_is_kept_only_with_the_same_first_passage_and_decision():
    bot = ScriptedBot(
        {
            ("q1", ()): (False, "passage one"),
            ("q1", ("e",)): (False, "passage one"),
            ("q2", ()): (True, "passage two"),
            ("q2", ("e",)): (False, "passage two"),  # now answers: not kept
            ("q3", ()): (False, "passage three"),
            ("q3", ("e",)): (False, "another passage"),  # another passage: not kept
        }
    )
    pairs = [("e", EvalQuestion(n, n, True)) for n in ("q1", "q2", "q3")]
    assert kept_share(bot, pairs) == (1 / 3, 3)


def test_questions_an_eval_run_asked_alone_are_not_asked_alone_again():
    table = {
        ("q1", ("e",)): (False, "passage one"),
        ("q2", ("e",)): (True, "passage two"),
        ("q2", ()): (True, "passage two"),  # q2 alone: not in the run, asked here
    }
    bot = ScriptedBot(table)
    questions = {n: EvalQuestion(n, n, True) for n in ("q1", "q2")}
    alone_q1 = ask(ScriptedBot({("q1", ()): (False, "passage one")}), questions["q1"], 5)
    asked = alone_outcomes([alone_q1])
    pairs = [("e", questions["q1"]), ("e", questions["q2"])]
    assert kept_share(bot, pairs, asked=asked) == (1.0, 2)  # the table has no q1 alone
    # what the run saw decides: had q1 been declined alone, answering it after "e" changes it
    asked = {("q1", "q1"): (True, alone_q1.first)}
    assert kept_share(bot, pairs, asked=asked) == (0.5, 2)
