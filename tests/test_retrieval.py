"""Retrieval details checked exactly with the fake encoder."""

from __future__ import annotations

import pytest

from ctqa import Bot, Settings

PEOPLE = ["Asha Rao", "Jean Dupont", "Meera Iyer", "Luc Martin", "Ravi Nair", "Claire Petit"]


@pytest.fixture
def crowded_bot(tmp_path, fake_encoder):
    """Sixty paragraphs on the same meeting, with more or fewer names in them."""
    folder = tmp_path / "statements"
    folder.mkdir()
    paragraphs = []
    for i in range(60):
        names = " ".join(PEOPLE[: i % len(PEOPLE)]) or "some officials from the ministry"
        paragraphs.append(
            f"In session {i} the delegation was led by {names}. They discussed terrorism "
            f"financing, sanctions and the exchange of information number {i % 7}."
        )
    (folder / "meetings.txt").write_text("\n\n".join(paragraphs) + "\n", encoding="utf-8")
    settings = Settings(candidates=60)
    return Bot(folder, tmp_path / "index", settings=settings, encoder=fake_encoder, log=print)


QUESTIONS = [
    "Who led the delegation on terrorism financing?",
    "Which officials were named in session 4?",
]


def test_the_first_k_passages_are_the_first_k_of_a_longer_ranking(crowded_bot):
    """Names are read for as few passages as the first `k` need (a share adds at most
    `weight_names`): the ranking must not depend on where that reading stopped."""
    retriever = crowded_bot.load()
    names_ranked = 0
    for question in QUESTIONS:
        everything = retriever.search(question, 60)
        names_ranked += any(h.names > 0 for h in everything.hits)
        for k in (1, 3, 10):
            first = retriever.search(question, k)
            assert [h.row for h in first.hits] == [h.row for h in everything.hits[:k]]
            assert [h.score for h in first.hits] == pytest.approx(
                [h.score for h in everything.hits[:k]]
            )
            assert first.confidence == pytest.approx(everything.confidence)
    assert names_ranked  # the questions ask for names, and names moved the ranking


def test_confidence_is_the_first_score_when_the_nearest_passages_agree(crowded_bot):
    for question in QUESTIONS:
        ranking = crowded_bot.load().search(question, 3)
        assert ranking.agreement == 1.0  # one statement: its passages always agree
        assert ranking.confidence == pytest.approx(ranking.hits[0].score)


HARBOUR = "The new harbour will open for ships in spring."
UNRELATED = [
    "Harbour bakers sell fresh bread daily.",
    "Harbour museum exhibits old maps.",
    "Harbour choir performs every Sunday.",
    "Harbour cyclists demand wider lanes.",
]
QUESTION = "When will the new harbour open for ships?"


def statements_bot(tmp_path, encoder, statements: dict[str, list[str]]) -> Bot:
    """A bot over one file a statement, each paragraph one passage."""
    folder = tmp_path / "statements"
    folder.mkdir(parents=True)
    for name, paragraphs in statements.items():
        (folder / f"{name}.txt").write_text("\n\n".join(paragraphs) + "\n", encoding="utf-8")
    return Bot(folder, tmp_path / "index", encoder=encoder, log=print)


@pytest.fixture
def harbour_bot(tmp_path, fake_encoder):
    """Two statements with the same paragraph on a harbour; four unrelated ones that only share
    the word "harbour"."""
    statements = {"port-a": [HARBOUR], "port-b": [HARBOUR]}
    statements.update({f"other-{i}": [text] for i, text in enumerate(UNRELATED)})
    return statements_bot(tmp_path, fake_encoder, statements)


@pytest.mark.parametrize("k", [3, 6])
def test_nearest_passages_from_unrelated_statements_lower_the_confidence(
    harbour_bot, tmp_path, fake_encoder, k
):
    ranking = harbour_bot.load().search(QUESTION, k)
    assert len(ranking.hits) == k
    first, second = ranking.hits[0].passage.doc_id, ranking.hits[1].passage.doc_id
    assert {first, second} == {"port-a", "port-b"}
    # of the five ranked first: the first, the same paragraph in another statement (cosine 1)
    # and three unrelated passages
    assert ranking.agreement == pytest.approx(2 / 5)
    assert ranking.confidence < ranking.hits[0].score  # the disagreement is taken off
    # the same paragraphs without the unrelated statements: nothing is taken off
    alone = statements_bot(
        tmp_path / "alone", fake_encoder, {"port-a": [HARBOUR], "port-b": [HARBOUR]}
    )
    agreeing = alone.load().search(QUESTION, k)
    assert agreeing.agreement == 1.0
    assert agreeing.confidence == pytest.approx(agreeing.hits[0].score)
    assert ranking.confidence < agreeing.confidence


def test_unrelated_paragraphs_of_one_statement_agree(tmp_path, fake_encoder):
    bot = statements_bot(tmp_path, fake_encoder, {"port": [HARBOUR, *UNRELATED]})
    ranking = bot.load().search(QUESTION, 3)
    assert ranking.agreement == 1.0  # their cosines are low, but they share the statement
    assert ranking.confidence == pytest.approx(ranking.hits[0].score)


def test_agreement_is_taken_over_the_passages_searched(harbour_bot):
    ranking = harbour_bot.load().search(QUESTION, 3, doc_ids={"port-a", "other-0"})
    assert [h.passage.doc_id for h in ranking.hits] == ["port-a", "other-0"]
    assert ranking.agreement == pytest.approx(1 / 2)
    everywhere = harbour_bot.load().search(QUESTION, 3)  # agreement 2/5 over all six
    assert everywhere.hits[0].score == pytest.approx(ranking.hits[0].score)
    assert everywhere.confidence < ranking.confidence < ranking.hits[0].score
