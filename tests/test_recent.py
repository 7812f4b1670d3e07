"""The searches kept for a chat's follow-ups (recent.py): reused only when asked, bounded, and
dropped with the index generation that made them."""

from ctqa.recent import RecentSearches


class CountingRetriever:
    def __init__(self):
        self.searched: list[str] = []

    def search(self, text, k, doc_ids):
        self.searched.append(text)
        return (text, k, doc_ids, len(self.searched))


def test_a_kept_search_is_reused_only_when_asked_and_for_the_same_k_and_statements():
    recent, retriever = RecentSearches(size=8), CountingRetriever()
    first = recent.search(retriever, "q", 3, None)
    assert recent.search(retriever, "q", 3, None, reuse=True) is first
    assert recent.search(retriever, "q", 3, None) is not first  # the question asked: afresh
    assert recent.search(retriever, "q", 5, None, reuse=True)[1] == 5
    assert recent.search(retriever, "q", 3, {"a"}, reuse=True)[2] == {"a"}
    assert retriever.searched == ["q"] * 4


def test_only_the_last_searches_are_kept():
    recent, retriever = RecentSearches(size=2), CountingRetriever()
    for text in ("a", "b", "c"):
        recent.search(retriever, text, 3, None)
    recent.search(retriever, "a", 3, None, reuse=True)  # dropped: searched again
    recent.search(retriever, "c", 3, None, reuse=True)  # kept
    assert retriever.searched == ["a", "b", "c", "a"]
    none = RecentSearches(size=0)
    none.search(retriever, "d", 3, None)
    none.search(retriever, "d", 3, None, reuse=True)
    assert retriever.searched[-2:] == ["d", "d"]


def test_a_new_index_generation_drops_the_searches_of_the_old_one():
    recent, old, new = RecentSearches(size=8), CountingRetriever(), CountingRetriever()
    recent.search(old, "q", 3, None)
    assert recent.search(new, "q", 3, None, reuse=True)[0] == "q" and new.searched == ["q"]
    recent.search(old, "r", 3, None)
    assert recent.search(new, "q", 3, None, reuse=True) and new.searched == ["q", "q"]


def test_a_negative_size_keeps_nothing():
    recent, retriever = RecentSearches(size=-3), CountingRetriever()
    recent.search(retriever, "q", 3, None)
    recent.search(retriever, "q", 3, None, reuse=True)
    assert retriever.searched == ["q", "q"]
