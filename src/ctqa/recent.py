"""The searches made lately, so that a chat's follow-up does not search its earlier turns again.

A question with history is decided by searching its last few earlier questions again
(conversation.py): the same texts the turns before searched. `RecentSearches` keeps the last
`size` rankings of the index generation in use and gives them back for those earlier
questions only; the question being asked is always searched afresh, so that no answer depends
on what was asked before, only on the history it was given.

>>> class Counting:
...     calls = 0
...     def search(self, text, k, doc_ids):
...         Counting.calls += 1
...         return (text, k)
>>> recent, retriever = RecentSearches(size=8), Counting()
>>> recent.search(retriever, "Who led?", 3, None)       # the question asked: searched
('Who led?', 3)
>>> recent.search(retriever, "Who led?", 3, None, reuse=True), Counting.calls  # an earlier one
(('Who led?', 3), 1)
"""

from __future__ import annotations

import threading
from collections import OrderedDict


class RecentSearches:
    """The last `size` searches of one retriever (one index generation); 0 keeps none."""

    def __init__(self, size: int):
        self.size = max(0, size)
        self._found: OrderedDict = OrderedDict()
        self._retriever = None  # whose rankings `_found` holds
        self._lock = threading.Lock()  # the chat answers several questions at once

    def search(self, retriever, text: str, k: int, doc_ids: set[str] | None, reuse=False):
        """`retriever.search(text, k, doc_ids)`, kept; with `reuse`, the kept ranking when
        there is one."""
        key = (text, k, frozenset(doc_ids) if doc_ids is not None else None)
        if reuse:
            with self._lock:
                if self._retriever is retriever and key in self._found:
                    self._found.move_to_end(key)
                    return self._found[key]
        ranking = retriever.search(text, k, doc_ids)
        with self._lock:
            if self._retriever is not retriever:  # a new index generation: the old ones go
                self._found.clear()
                self._retriever = retriever
            self._found[key] = ranking
            self._found.move_to_end(key)
            while len(self._found) > self.size:
                self._found.popitem(last=False)
        return ranking
