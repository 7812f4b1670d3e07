"""The searches made lately, so that a chat's follow-up does not search its earlier turns again.

A question with history is decided by searching its last few earlier questions again
(conversation.py): the same texts the turns before searched. Each `Retriever` (one per index
generation) keeps its last `size` rankings here and gives them back for those earlier questions
only (`Retriever.recall`); the question being asked is always searched afresh, so that no answer
depends on what was asked before, only on the history it was given.

>>> recent = RecentSearches(size=1)
>>> recent.keep(("Who led?", 3, None), "ranking"); recent.kept(("Who led?", 3, None))
'ranking'
>>> recent.keep(("Where?", 3, None), "other"); recent.kept(("Who led?", 3, None)) is None
True
"""

from __future__ import annotations

import threading
from collections import OrderedDict


class RecentSearches:
    """The last `size` rankings, by (text, k, statements searched); 0 keeps none."""

    def __init__(self, size: int):
        self.size = max(0, size)
        self._found: OrderedDict = OrderedDict()
        self._lock = threading.Lock()  # the chat answers several questions at once

    def kept(self, key):
        """The ranking kept for `key`, or None."""
        with self._lock:
            if key not in self._found:
                return None
            self._found.move_to_end(key)
            return self._found[key]

    def keep(self, key, ranking) -> None:
        with self._lock:
            self._found[key] = ranking
            self._found.move_to_end(key)
            while len(self._found) > self.size:
                self._found.popitem(last=False)
