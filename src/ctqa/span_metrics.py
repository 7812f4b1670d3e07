"""SQuAD's exact match and F1 of an answer span against the annotators' answers.

Both compare normalised text: lowercase, no punctuation, no articles (a, an, the), single spaces;
a span scores its best against any of the answers.

>>> exact_match("the Normans.", ["Normans"]), round(f1("in Normandy, France", ["Normandy"]), 3)
(1.0, 0.5)
"""

from __future__ import annotations

import re
import string
from collections import Counter

ARTICLES = re.compile(r"\b(a|an|the)\b")
PUNCTUATION = set(string.punctuation) | {"’", "‘", "“", "”"}


def normalise(text: str) -> str:
    """Lowercase, without punctuation or articles, single-spaced.

    >>> normalise("The  Paris attacks!")
    'paris attacks'
    """
    text = "".join(c for c in text.lower() if c not in PUNCTUATION)
    return " ".join(ARTICLES.sub(" ", text).split())


def exact_match(span: str, answers: list[str] | tuple[str, ...]) -> float:
    return float(any(normalise(span) == normalise(a) for a in answers))


def f1(span: str, answers: list[str] | tuple[str, ...]) -> float:
    return max((_f1(normalise(span).split(), normalise(a).split()) for a in answers), default=0.0)


def _f1(predicted: list[str], truth: list[str]) -> float:
    common = sum((Counter(predicted) & Counter(truth)).values())
    if not common:
        return 0.0
    precision, recall = common / len(predicted), common / len(truth)
    return 2 * precision * recall / (precision + recall)
