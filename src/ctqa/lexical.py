"""Lexical (BM25) search over passages, with bm25s and a Snowball stemmer.

Text is folded before stemming so that spelling variants meet: accents dropped, apostrophes
removed inside words (al-Qa’ida -> al qaida), case ignored.

>>> terms("Who led the French delegation?")
['who', 'led', 'french', 'deleg']
"""

from __future__ import annotations

import re
import threading
import unicodedata
from functools import lru_cache
from pathlib import Path

import numpy as np

LEXICAL_SETTINGS = {"library": "bm25s-0.3.16", "stemmer": "snowball-english", "fold": 1}
APOSTROPHES = re.compile(r"(?<=\w)['’‘`´](?=\w)")
WORD = re.compile(r"[a-z0-9]+")
# Words that frame a question rather than say what it asks about, stemmed like `terms`.
QUESTION_FRAME = frozenset(
    [
        "what",
        "which",
        "who",
        "whom",
        "whose",
        "when",
        "where",
        "why",
        "how",
        "whi",
        "did",
        "doe",
        "do",
        "done",
        "was",
        "were",
        "is",
        "are",
        "be",
        "been",
        "has",
        "have",
        "had",
        "can",
        "could",
        "would",
        "should",
        "will",
        "shall",
        "may",
        "might",
        "must",
        "say",
        "said",
        "tell",
        "told",
        "talk",
        "mention",
        "anyth",
        "someth",
        "they",
        "them",
        "their",
        "it",
        "its",
        "this",
        "that",
        "these",
        "those",
        "there",
        "here",
        "i",
        "me",
        "my",
        "we",
        "our",
        "you",
        "your",
        "he",
        "she",
        "his",
        "her",
        "him",
        "not",
        "no",
        "yes",
        "ani",
        "some",
        "much",
        "mani",
        "also",
        "just",
        "about",
        "regard",
    ]
)


# PyStemmer's stemmers must not be called concurrently.
_stem_lock = threading.Lock()


@lru_cache(maxsize=1)
def _stemmer():
    import Stemmer

    return Stemmer.Stemmer("english")


@lru_cache(maxsize=1)
def stopwords() -> frozenset[str]:
    from bm25s.stopwords import STOPWORDS_EN

    return frozenset(STOPWORDS_EN)


def fold(text: str) -> str:
    """Lowercase, accents and in-word apostrophes removed.

    >>> fold("Al-Qa’ida Café")
    'al-qaida cafe'
    """
    text = APOSTROPHES.sub("", text)
    if text.isascii():  # nothing to decompose: skips a Python step per character
        return text.lower()
    text = unicodedata.normalize("NFKD", text)
    return "".join(c for c in text if not unicodedata.combining(c)).lower()


def terms(text: str) -> list[str]:
    """Stemmed content words of `text`, in order, stopwords removed."""
    stop = stopwords()
    words = [w for w in WORD.findall(fold(text)) if w not in stop]
    with _stem_lock:
        return _stemmer().stemWords(words)


def query_terms(question: str) -> list[str]:
    """`terms` of a question without the words that only frame it ("what did they say about").

    >>> query_terms("What did they say about banning terrorist groups?")
    ['ban', 'terrorist', 'group']
    """
    return [t for t in terms(question) if t not in QUESTION_FRAME]


class LexicalIndex:
    """BM25 over a list of texts. `scores(query)` gives one score per text."""

    def __init__(self, retriever, doc_freq: dict[str, int], count: int):
        self._retriever = retriever
        self._doc_freq = doc_freq
        self.count = count

    @classmethod
    def build(cls, texts: list[str]) -> LexicalIndex:
        import bm25s

        tokenized = [terms(t) or [""] for t in texts]
        retriever = bm25s.BM25()
        retriever.index(tokenized, show_progress=False)
        return cls(retriever, _doc_freq(retriever), len(texts))

    def save(self, folder: Path) -> None:
        self._retriever.save(str(folder), show_progress=False)

    @classmethod
    def load(cls, folder: Path) -> LexicalIndex:
        import bm25s

        retriever = bm25s.BM25.load(str(folder), show_progress=False, verbosity=0)
        return cls(retriever, _doc_freq(retriever), int(retriever.scores["num_docs"]))

    def scores(self, query_terms: list[str]) -> np.ndarray:
        """BM25 score of every text for the query's terms (zeros when none is known)."""
        ids = self._retriever.get_tokens_ids(query_terms) if query_terms else []
        if not ids:
            return np.zeros(self.count, dtype=np.float32)
        return np.asarray(self._retriever.get_scores_from_ids(ids), dtype=np.float32)

    def coverage(self, query_terms: list[str], rows: np.ndarray) -> np.ndarray:
        """Share of the query's IDF weight whose terms occur in each of `rows` (0 to 1).

        Unlike a BM25 score this is comparable across queries, so it helps decide abstention.
        """
        unique = list(dict.fromkeys(query_terms))
        weights = np.array([self.idf(t) for t in unique], dtype=np.float32)
        if not unique or weights.sum() <= 0:
            return np.zeros(len(rows), dtype=np.float32)
        indptr = self._retriever.scores["indptr"]
        indices = self._retriever.scores["indices"]
        found = np.zeros(len(rows), dtype=np.float32)
        holds = np.zeros(self.count, dtype=bool)
        for term, weight in zip(unique, weights, strict=True):
            token = self._retriever.vocab_dict.get(term)
            if token is None or token + 1 >= len(indptr):
                continue
            holders = indices[indptr[token] : indptr[token + 1]]
            holds[holders] = True  # a mask, not np.isin: no sort of a common term's holders
            found += weight * holds[rows]
            holds[holders] = False
        return found / weights.sum()

    def idf(self, term: str) -> float:
        """Inverse document frequency of a stemmed term (terms never seen get the highest)."""
        df = self._doc_freq.get(term, 0)
        return float(np.log(1 + (self.count - df + 0.5) / (df + 0.5)))


def _doc_freq(retriever) -> dict[str, int]:
    indptr = np.asarray(retriever.scores["indptr"])
    counts = np.diff(indptr)
    return {token: int(counts[i]) for token, i in retriever.vocab_dict.items() if i < len(counts)}
