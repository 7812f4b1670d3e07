"""The real thing: the bundled model, real FAISS and BM25, the committed index, the statement."""

import subprocess
import sys

import pytest
from conftest import ROOT, SEED

STATEMENT = SEED.read_bytes().decode("utf-8")

QUESTIONS = [
    ("Who led the Indian delegation?", 3, "Mahaveer Singhvi"),
    ("Who led the French delegation?", 3, "Philippe BERTOUX"),
    ("Where was the meeting held?", 3, "in Paris yesterday"),
    pytest.param(
        "Which terrorist groups were named?",
        5,
        "Jaish-e-Mohammad",
        marks=pytest.mark.xfail(
            strict=True,
            reason="known miss (issue 14): cites paragraph 3 (the meeting) first, paragraph 5 "
            "second; the trained reader, with CTQA_READER=on, puts paragraph 6 first",
        ),
    ),
    ("What did India and France say about Afghanistan?", 1, "Afghan territory"),
    ("Did they discuss terror financing?", 7, "combating financing of terrorism"),
    ("Which anniversaries did the meeting mark?", 2, "13th anniversary"),
    pytest.param(
        "What did they say about banning terrorist groups?",
        6,
        "proscription",
        marks=pytest.mark.xfail(
            strict=True,
            reason="known miss (issue 4): cites paragraph 5 first, paragraph 6 third; MiniLM "
            "scores 'banning' no closer to 'proscription' than to 'sanctioned', and no other "
            "signal links them",
        ),
    ),
    ("where was the jwg held", 3, "Joint Working Group"),
    ("What did they say about al-Qaeda?", 5, "al-Qa’ida"),
    ("CFT cooperation", 7, "combating financing of terrorism"),
]


@pytest.mark.parametrize("question, paragraph, words", QUESTIONS)
def test_real_questions_cite_the_right_paragraph(real_bot, question, paragraph, words):
    answer = real_bot.answer(question)
    assert not answer.abstained, answer.text
    first = answer.citations[0]
    assert (first.paragraph, words in first.text) == (paragraph, True), answer.text
    assert STATEMENT[first.start : first.end] == first.text
    assert first.sentence in first.text


@pytest.mark.parametrize(
    "question",
    [
        "What is the capital of Peru?",
        "How do I bake sourdough bread?",
        "Who won the football world cup in 2018?",
    ],
)
def test_questions_the_statement_does_not_answer_are_abstained_on(real_bot, question):
    answer = real_bot.answer(question)
    assert answer.abstained and not answer.citations, answer.text
    assert "do not answer" in answer.text


def test_follow_up_about_the_french_delegation(real_bot):
    answer = real_bot.answer("And the French one?", history=["Who led the Indian delegation?"])
    assert answer.citations[0].paragraph == 3
    assert "BERTOUX" in answer.citations[0].sentence


def test_a_pronoun_follows_the_earlier_answer_and_says_what_was_searched(real_bot):
    answer = real_bot.answer("What is his title?", history=["Who led the French delegation?"])
    assert answer.query == "Who led the French delegation? What is his title?"
    assert answer.citations[0].paragraph == 3 and not answer.abstained
    assert answer.text.startswith("_Searched for: Who led the French delegation? What is his")


def test_a_new_subject_is_searched_on_its_own(real_bot):
    history = ["Who led the French delegation?"]
    answer = real_bot.answer("What did they say about Afghanistan?", history=history)
    assert answer.query == "What did they say about Afghanistan?"
    assert answer.citations[0].paragraph == 1 and "Searched for" not in answer.text


def test_the_answering_sentence_is_highlighted(real_bot):
    answer = real_bot.answer("Where was the meeting held?")
    assert answer.citations[0].sentence.startswith("The two countries held the 15th Meeting")
    assert answer.text.startswith("> The two countries held the 15th Meeting")


def test_with_the_reader_on_the_answer_span_is_marked_in_its_sentence():
    from ctqa import Bot, Settings

    bot = Bot(settings=Settings.from_env(reader="on"))
    answer = bot.answer("Who led the Indian delegation?")
    first = answer.citations[0]
    assert first.paragraph == 3 and "Mahaveer Singhvi" in first.answer_text
    assert first.highlight[0] <= first.answer[0] < first.answer[1] <= first.highlight[1]
    assert f"**{first.answer_text}**" in answer.text.splitlines()[0]
    assert 0.0 < first.score <= 1.0 and answer.confidence == pytest.approx(first.score, abs=1e-4)


def test_answer_works_from_any_working_directory(tmp_path):
    code = (
        "from ctqa import answer; a = answer('Who led the French delegation?'); "
        "print(a.citations[0].paragraph, a.citations[0].text[:80])"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("3 The two countries held the 15th Meeting")
    assert "BERTOUX" in STATEMENT[STATEMENT.index(done.stdout[2:40]) :][:400]


def test_the_committed_index_is_used_not_rebuilt(real_bot):
    assert real_bot.load().index.folder.parent == ROOT / "embeddings"
