"""What kind of answer a question wants, and how much of it a passage holds.

Classic question answering matches the expected answer type: "Who led…?" and "Which groups
were named?" want names, and a passage full of names is likelier to hold them than one that
only talks about "individuals and entities". The encoder alone scores both alike.

>>> asks_for_names("Which terrorist groups were named?"), asks_for_names("Why did they meet?")
(True, False)
>>> round(name_share("They named Lashkar e-Tayyiba and Jaish-e-Mohammad."), 2)
0.33
"""

from __future__ import annotations

import re

NAME_QUESTION = re.compile(
    r"\b(?:who|whom|whose|name|names|named|naming|called"
    r"|which\s+(?:\w+\s+){0,3}(?:were|was|are|is)\s+(?:named|mentioned|listed|cited|singled))\b",
    re.IGNORECASE,
)
WORD = re.compile(r"[^\W\d_][^\s,;:()\"“”]*")
SENTENCE_END = ".!?:"


def asks_for_names(question: str) -> bool:
    """True when the question wants people, organisations or places by name."""
    return bool(NAME_QUESTION.search(question))


def name_share(text: str) -> float:
    """Share of the words of `text` that are capitalised inside a sentence (names, acronyms)."""
    words = list(WORD.finditer(text))
    if not words:
        return 0.0
    names = 0
    for match in words:
        i = match.start() - 1
        while i >= 0 and text[i].isspace():
            i -= 1
        if match.group()[0].isupper() and i >= 0 and text[i] not in SENTENCE_END:
            names += 1
    return names / len(words)
