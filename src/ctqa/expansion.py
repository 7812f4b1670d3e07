"""Query expansion from the corpus itself: acronyms spelled out, misspellings mapped to its words.

Two things defeat both the encoder and BM25 on real questions: initialisms the text never
writes ("where was the jwg held" for "Joint Working Group") and spelling variants ("al-Qaeda"
for "al-Qa’ida"). Both are resolved against the corpus's own vocabulary, so the same code
serves any set of statements; nothing is keyed to known questions.

>>> expander = QueryExpander.build(["The Joint Working Group met al-Qa’ida experts."], set())
>>> expander.expand("Where did the JWG discuss al-Qaeda?").text
'Where did the Joint Working Group (JWG) discuss al-Qaeda?'
>>> expander.expand("Where did the JWG discuss al-Qaeda?").corrections
{'qaeda': 'qaida'}
"""

from __future__ import annotations

import itertools
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Set
from dataclasses import dataclass, field

from .lexical import APOSTROPHES, WORD, fold, stopwords

# A word of letters only (in-word apostrophes are removed before matching names).
LETTERS = re.compile(r"[^\W\d_]+")
CONNECTOR_MAX = 3  # short lowercase words that may sit inside a name: "e", "ul", "of", "al"
LONGEST_NAME = 6  # words
MIN_FUZZY_LENGTH = 5
# Corrections remembered per word: users' questions share words, and a fuzzy search over a large
# corpus's vocabulary costs about half a millisecond a word. Forgotten all at once when full.
CORRECTIONS_KEPT = 10_000
_UNSEEN = object()


@dataclass(frozen=True)
class Expansion:
    """A question as searched: `text` for the encoder, `corrections` for the lexical index."""

    text: str
    acronyms: dict[str, str] = field(default_factory=dict)  # "JWG" -> "Joint Working Group"
    corrections: dict[str, str] = field(default_factory=dict)  # folded word -> corpus word
    unresolved: tuple[str, ...] = ()  # acronym-like words no name or phrase was found for

    def lexical_text(self) -> str:
        """`text` with misspelled words replaced by the corpus's spelling."""
        return " ".join(self.corrections.get(w, w) for w in WORD.findall(fold(self.text)))


class QueryExpander:
    """Knows the corpus's words and the names whose initials make an acronym."""

    def __init__(self, words: set[str], names: dict[str, str], model_words: Set[str]):
        self.words = words
        self.names = names
        self.model_words = model_words
        self._by_length: dict[int, list[str]] = defaultdict(list)
        for word in sorted(words):
            self._by_length[len(word)].append(word)
        self._pools: dict[tuple[int, int], list[str]] = {}
        self._corrected: dict[str, str | None] = {}  # word -> its correction, or None

    @classmethod
    def build(cls, texts: Iterable[str], model_words: Set[str]) -> QueryExpander:
        """From the passages' texts and the encoder's whole-word vocabulary."""
        words: set[str] = set()
        counts: dict[str, Counter[str]] = defaultdict(Counter)
        for text in texts:
            words.update(WORD.findall(fold(text)))
            for key, name in names_in(text):
                counts[key][name] += 1
        names = {key: found.most_common(1)[0][0] for key, found in counts.items()}
        return cls(words, names, model_words)

    def expand(self, query: str, nearby: Iterable[str] = ()) -> Expansion:
        """Spell out unknown acronyms; map unknown words to close corpus words.

        Acronyms are looked up among the corpus's capitalised names, then among the lowercase
        phrases of `nearby` texts (the passages a first search found), for "CFT" written out
        only as "combating financing of terrorism".
        """
        nearby = list(nearby)
        acronyms: dict[str, str] = {}
        unresolved = []
        for token in self.unknown_acronyms(query):
            name = self.names.get(token.lower()) or _phrase_in(nearby, token.lower())
            if name:
                acronyms[token] = name
            else:
                unresolved.append(token)
        text = query
        for token, name in acronyms.items():
            text = re.sub(rf"\b{re.escape(token)}\b", f"{name} ({token})", text)
        return Expansion(text, acronyms, self._corrections(query), tuple(unresolved))

    def unknown_acronyms(self, query: str) -> list[str]:
        """Words of `query` that look like acronyms the corpus never writes as such."""
        found = []
        for match in LETTERS.finditer(query):
            token = match.group()
            key = token.lower()
            if not 2 <= len(token) <= LONGEST_NAME or key in self.words or token in found:
                continue
            if sum(c.isupper() for c in token) >= 2 or key not in self.model_words:
                found.append(token)
        return found

    def _corrections(self, query: str) -> dict[str, str]:
        found = {}
        for word in WORD.findall(fold(query)):
            if len(word) < MIN_FUZZY_LENGTH or word in self.words or not word.isalpha():
                continue
            # one lookup, then the local value: another thread may clear the memory meanwhile
            closest = self._corrected.get(word, _UNSEEN)
            if closest is _UNSEEN:
                if len(self._corrected) >= CORRECTIONS_KEPT:
                    self._corrected.clear()
                closest = self._corrected[word] = self.closest(word)
            if closest is not None:
                found[word] = closest
        return found

    def closest(self, word: str) -> str | None:
        """The corpus word within one edit (two for long words) that starts alike, if any."""
        from rapidfuzz import process
        from rapidfuzz.distance import Levenshtein

        limit = 1 if len(word) < 9 else 2
        best = process.extractOne(
            word, self._pool(len(word), limit), scorer=Levenshtein.distance, score_cutoff=limit
        )
        return best[0] if best and best[0][0] == word[0] else None

    def _pool(self, length: int, limit: int) -> list[str]:
        """The corpus words within `limit` edits of a word of `length` could be: those whose
        length differs by at most `limit`, in sorted order (so ties break as over all words)."""
        key = (length, limit)
        if key not in self._pools:
            near = range(length - limit, length + limit + 1)
            self._pools[key] = sorted(w for n in near for w in self._by_length.get(n, ()))
        return self._pools[key]


def _phrase_in(texts: list[str], key: str) -> str | None:
    """The first run of words in `texts` whose initials, stopwords skipped or not, are `key`."""
    stop = stopwords()
    for text in map(APOSTROPHES.sub, itertools.repeat(""), texts):
        words = list(LETTERS.finditer(text))
        for i in range(len(words)):
            if words[i].group()[0].lower() != key[0] or words[i].group().lower() in stop:
                continue
            for j in range(i + 1, min(len(words), i + len(key) + 2)):
                if text[words[j - 1].end() : words[j].start()] not in (" ", "-"):
                    break
                window = [w.group() for w in words[i : j + 1]]
                content = "".join(w[0] for w in window if w.lower() not in stop).lower()
                every = "".join(w[0] for w in window).lower()
                if key in (content, every) and window[-1].lower() not in stop:
                    return text[words[i].start() : words[j].end()]
    return None


def names_in(text: str) -> list[tuple[str, str]]:
    """(initials, name) for every run of capitalised words in `text`, and its sub-runs.

    Short lowercase connectors may sit inside a name; the initials are given both with and
    without them.

    >>> sorted(set(names_in("led by Lashkar e-Tayyiba (LeT)")))
    [('let', 'Lashkar e-Tayyiba'), ('lt', 'Lashkar e-Tayyiba')]
    """
    text = APOSTROPHES.sub("", text)
    found = []
    for run in _capitalised_runs(text):
        for i, first in enumerate(run):
            if not first.group()[0].isupper():
                continue
            for j in range(i + 1, min(len(run), i + LONGEST_NAME)):
                last = run[j]
                if not last.group()[0].isupper():
                    continue
                window = run[i : j + 1]
                name = text[first.start() : last.end()]
                every = "".join(m.group()[0] for m in window).lower()
                capitals = "".join(m.group()[0] for m in window if m.group()[0].isupper())
                found.append((every, name))
                if len(capitals) >= 2 and capitals.lower() != every:
                    found.append((capitals.lower(), name))
    return found


def _capitalised_runs(text: str) -> list[list[re.Match]]:
    """Runs of adjacent words (space or hyphen apart) that are capitalised or short connectors."""
    runs: list[list[re.Match]] = []
    current: list[re.Match] = []
    for match in LETTERS.finditer(text):
        word = match.group()
        fits = word[0].isupper() or (word.islower() and len(word) <= CONNECTOR_MAX)
        adjacent = bool(current) and text[current[-1].end() : match.start()] in (" ", "-")
        if fits and (adjacent or not current):
            current.append(match)
            continue
        if current:
            runs.append(current)
        current = [match] if fits else []
    if current:
        runs.append(current)
    return runs
