"""The reader's training pairs: each question's own passage, retrieval's answerless passages,
and its own passage with the answer's sentences taken out."""

from ctqa.training_data import SquadQuestion, pairs_for, without_answer

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
