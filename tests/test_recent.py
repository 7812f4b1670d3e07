"""The searches a retriever keeps for a chat's follow-ups (recent.py): reused only when asked,
bounded, and dropped with the index generation that made them."""

import pytest

from ctqa.recent import RecentSearches
from ctqa.retrieval import Retriever


@pytest.fixture
def counted(fake_bot):
    """The fake bot's retriever, with every search it really makes listed in `searched`."""
    retriever = fake_bot.load()
    return counting(retriever)


def counting(retriever):
    real = retriever._search
    retriever.searched = []

    def search(text, k, doc_ids):
        retriever.searched.append(text)
        return real(text, k, doc_ids)

    retriever._search = search
    return retriever


def test_a_kept_search_is_reused_only_when_asked_and_for_the_same_k_and_statements(counted):
    first = counted.search("q", 3)
    assert counted.recall("q", 3) is first
    assert counted.search("q", 3) is not first  # the question asked: afresh
    assert len(counted.recall("q", 5).hits) >= len(first.hits)
    statement = first.hits[0].passage.doc_id
    assert {h.passage.doc_id for h in counted.recall("q", 3, {statement}).hits} == {statement}
    assert counted.searched == ["q"] * 4


def test_only_the_last_searches_are_kept():
    recent = RecentSearches(size=2)
    for text in ("a", "b", "c"):
        recent.keep((text, 3, None), text.upper())
    assert recent.kept(("a", 3, None)) is None  # dropped: searched again
    assert recent.kept(("c", 3, None)) == "C"  # kept
    none = RecentSearches(size=0)
    none.keep(("d", 3, None), "D")
    assert none.kept(("d", 3, None)) is None


def test_a_new_index_generation_drops_the_searches_of_the_old_one(counted):
    counted.search("q", 3)
    new = counting(Retriever(counted.index, counted.encoder, counted.settings))
    assert new.recall("q", 3).query == "q" and new.searched == ["q"]
    counted.search("r", 3)
    assert new.recall("q", 3) and new.searched == ["q"]  # its own, kept
    assert counted.recall("r", 3) and counted.searched == ["q", "r"]


def test_a_negative_size_keeps_nothing():
    recent = RecentSearches(size=-3)
    recent.keep(("q", 3, None), "Q")
    assert recent.kept(("q", 3, None)) is None
