"""The reader's training pairs: each question's own passage, retrieval's answerless passages,
its own passage with the answer's sentences taken out, and the question with a name swapped."""

import random

from ctqa.training_data import (
    Pair,
    SquadQuestion,
    pairs_for,
    phrases,
    swapped_pairs,
    swapped_question,
    without_answer,
)

SENTENCES = [
    "The delegations met in New Delhi.",
    "The French side was led by Olivier Caron.",
    "They discussed terrorist financing.",
    "They agreed to meet again.",
]
TEXT = " ".join(SENTENCES)


def question(answerable=True, answers=("Olivier Caron",)):
    return SquadQuestion(
        id="q1",
        title="T",
        file="t.txt",
        paragraph=0,
        question="Who led the French side?",
        answers=answers if answerable else (),
        answerable=answerable,
    )


def test_the_own_passage_without_its_answer_becomes_a_no_answer_pair():
    pairs = pairs_for(question(), [(TEXT, SENTENCES)], [], negatives=0, answer_removed=True)
    assert [p.span is not None for p in pairs] == [True, False]
    answering, removed = pairs
    assert TEXT[answering.span[0] : answering.span[1]] == "Olivier Caron"
    assert "Caron" not in removed.passage
    assert removed.passage == " ".join(SENTENCES[:1] + SENTENCES[2:])


def test_without_the_option_or_without_an_answer_there_is_no_removed_pair():
    assert len(pairs_for(question(), [(TEXT, SENTENCES)], [], negatives=0)) == 1
    unanswerable = question(answerable=False)
    assert len(pairs_for(unanswerable, [(TEXT, SENTENCES)], [], 0, answer_removed=True)) == 1


def test_removal_is_refused_when_too_little_is_left_or_the_answer_remains():
    assert without_answer(SENTENCES[:2], ("Olivier Caron",)) is None  # one sentence left
    assert without_answer(SENTENCES, ("Paris",)) is None  # no sentence holds it
    # Every annotator's answer goes, not only the first one's.
    kept = without_answer(SENTENCES, ("Olivier Caron", "New Delhi"))
    assert kept == " ".join(SENTENCES[2:])


def test_retrieved_negatives_skip_the_own_passage_and_any_that_hold_the_answer():
    others = [TEXT, "Olivier Caron spoke.", "Weather was fine.", "Trade grew."]
    pairs = pairs_for(question(), [(TEXT, SENTENCES)], others, negatives=1)
    assert [p.passage for p in pairs[1:]] == ["Weather was fine."]


ARTICLE = TEXT + "\n\nIn 2019 Mahaveer Singhvi met the Paris Prosecutor. Later, in 2021, he left."


def test_a_swapped_question_names_what_its_passage_does_not_hold():
    pool = sorted(phrases(ARTICLE))
    asked = "Who led the French side in New Delhi?"
    # a name of the passage, for a name of the article none of whose words the passage holds
    expected = {
        asked.replace(old, new)
        for old in ("French", "New Delhi")
        for new in ("Mahaveer Singhvi", "Paris Prosecutor")
    }
    swaps = {swapped_question(asked, TEXT, pool, random.Random(seed)) for seed in range(30)}
    assert swaps == expected


def test_numbers_swap_for_numbers_and_a_first_word_or_a_possessive_stays():
    pool = sorted(phrases(ARTICLE))
    assert "In" not in pool and "Later" not in pool  # they only start a sentence
    swapped = swapped_question(
        "What happened in 2019?", "It rained in 2019.", pool, random.Random(0)
    )
    assert swapped == "What happened in 2021?"
    # Nothing the passage holds but the question's first word: nothing to swap.
    assert swapped_question("French delegations met?", TEXT, pool, random.Random(0)) is None
    swapped = swapped_question("Whose was Olivier Caron's team?", TEXT, pool, random.Random(0))
    assert swapped is not None and swapped.endswith("'s team?")


def test_every_answering_pair_gets_one_swapped_no_answer_pair(tmp_path):
    (tmp_path / "t.txt").write_text(ARTICLE, encoding="utf-8")
    q = question()
    q = SquadQuestion(**{**q.__dict__, "question": "Who led the French side in New Delhi?"})
    answering = Pair(q.id, q.question, TEXT, (TEXT.index("Olivier"), TEXT.index(".", 40)))
    negative = Pair(q.id, q.question, "Trade grew.", None)
    found = swapped_pairs([answering, negative], [q], tmp_path, seed=13)
    assert [(p.question_id, p.passage, p.span) for p in found] == [("q1-swapped", TEXT, None)]
    assert found[0].question != q.question
    assert found == swapped_pairs([answering, negative], [q], tmp_path, seed=13)  # seeded
