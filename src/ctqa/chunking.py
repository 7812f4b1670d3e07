"""`Document` to `Passage`s: paragraph-native chunks with sentence offsets. Pure functions.

A passage never crosses a paragraph. A paragraph longer than the encoder's token limit is
split at sentence boundaries (and a single over-long sentence at word boundaries). Every
offset points into the document's text: `doc.text[p.start:p.end] == p.text`.
"""

from __future__ import annotations

import multiprocessing
import re
import signal
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from functools import lru_cache

from .corpus import Document

PARAGRAPH_BREAK = re.compile(r"\n[ \t\r\f\v]*\n")
# Clause boundaries inside a sentence: punctuation, and the joints of enumerations.
CLAUSE_BREAK = re.compile(r"[,;:]\s+|\s+(?:and|as well as|including|but|or)\s+")
MIN_CLAUSE_WORDS = 4
# Text from which `chunk_documents` shares the work out between processes: about 2,000 paragraphs,
# a few seconds of sentence splitting, against well under a second to start the workers.
PARALLEL_FROM_CHARS = 1_000_000
SPLITTER_NAME = "pysbd-0.3.4"
UNITS_NAME = "sentences+clauses-1"


@dataclass(frozen=True)
class Span:
    """A half-open character range `[start, end)` in a document's text."""

    start: int
    end: int


@dataclass(frozen=True)
class Passage:
    """A citable chunk: one paragraph, or one sentence-aligned part of a long paragraph."""

    doc_id: str
    paragraph: int  # 1-based, in the document
    part: int  # 1-based part of the paragraph; 1 when the paragraph is whole
    start: int
    end: int
    text: str
    sentences: tuple[Span, ...]
    # What is embedded besides the whole passage: its sentences, then the clauses of
    # sentences that have several; a long enumeration is matched by its parts.
    units: tuple[Span, ...] = ()


def trimmed(text: str, start: int, end: int) -> Span | None:
    """Shrink `[start, end)` to exclude surrounding whitespace; None when nothing is left.

    >>> trimmed("  ab  ", 0, 6)
    Span(start=2, end=4)
    """
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return Span(start, end) if start < end else None


def paragraph_spans(text: str, start: int = 0) -> list[Span]:
    """Paragraphs of `text[start:]`, separated by blank lines.

    >>> paragraph_spans("One.\\n\\n  Two\\nlines.\\n")
    [Span(start=0, end=4), Span(start=8, end=18)]
    """
    spans, cursor = [], start
    for match in PARAGRAPH_BREAK.finditer(text, start):
        if (span := trimmed(text, cursor, match.start())) is not None:
            spans.append(span)
        cursor = match.end()
    if (span := trimmed(text, cursor, len(text))) is not None:
        spans.append(span)
    return spans


# pysbd builds its regular expressions from strings on every call: over 2,000 distinct ones on
# real text, four times what `re` caches, so most calls compiled again (half the time of a
# 20,000-passage build). A larger cache keeps them compiled; the attribute is private, hence
# the guard.
RE_CACHE_SIZE = 8192


@lru_cache(maxsize=1)
def _segmenter():
    import pysbd

    if getattr(re, "_MAXCACHE", RE_CACHE_SIZE) < RE_CACHE_SIZE:
        re._MAXCACHE = RE_CACHE_SIZE
    return pysbd.Segmenter(language="en", clean=False)


def sentence_spans(text: str, span: Span) -> list[Span]:
    """Sentences of `text[span.start:span.end]`, found by pysbd, as spans of `text`.

    >>> sentence_spans("Hi. We met in Paris. It rained.", Span(4, 31))
    [Span(start=4, end=20), Span(start=21, end=31)]
    """
    spans, cursor = [], span.start
    for sentence in _segmenter().segment(text[span.start : span.end]):
        sentence = sentence.strip()
        if not sentence:
            continue
        found = text.find(sentence, cursor, span.end)
        if found < 0:  # the splitter altered the text: keep the rest as one sentence
            break
        spans.append(Span(found, found + len(sentence)))
        cursor = found + len(sentence)
    if (rest := trimmed(text, cursor, span.end)) is not None:
        spans.append(rest)
    return spans


def clause_spans(text: str, sentence: Span) -> list[Span]:
    """Clauses of a sentence, each at least `MIN_CLAUSE_WORDS` words (short pieces join the
    next one); empty when the sentence is a single clause.

    >>> t = "They met in Paris, discussed sanctions and agreed to share information on funding."
    >>> [t[c.start:c.end] for c in clause_spans(t, Span(0, len(t)))]
    ['They met in Paris', 'discussed sanctions and agreed to share information on funding.']
    """
    pieces, cursor = [], sentence.start
    for match in CLAUSE_BREAK.finditer(text, sentence.start, sentence.end):
        pieces.append(Span(cursor, match.start()))
        cursor = match.end()
    pieces.append(Span(cursor, sentence.end))
    clauses: list[Span] = []
    start = None
    for piece in pieces:
        start = piece.start if start is None else start
        if len(text[start : piece.end].split()) >= MIN_CLAUSE_WORDS:
            clauses.append(Span(start, piece.end))
            start = None
    if start is not None:
        if clauses:
            clauses[-1] = Span(clauses[-1].start, sentence.end)
        else:
            return []
    return clauses if len(clauses) > 1 else []


def unit_spans(text: str, sentences: list[Span]) -> tuple[Span, ...]:
    """A passage's embedded units: its sentences, then the clauses of each sentence."""
    return tuple(sentences) + tuple(c for s in sentences for c in clause_spans(text, s))


def split_words(text: str, span: Span, fits: Callable[[Span], bool]) -> Iterator[Span]:
    """Split an over-long sentence at word boundaries into spans that each `fits`."""
    words = [
        Span(m.start() + span.start, m.end() + span.start)
        for m in re.finditer(r"\S+", text[span.start : span.end])
    ]
    i = 0
    while i < len(words):
        j = i + 1
        while j < len(words) and fits(Span(words[i].start, words[j].end)):
            j += 1
        yield Span(words[i].start, words[j - 1].end)
        i = j


def pack_sentences(
    text: str, sentences: list[Span], fits: Callable[[Span], bool]
) -> list[list[Span]]:
    """Group consecutive sentences greedily into runs whose whole span `fits`."""
    pieces: list[Span] = []
    for sentence in sentences:
        pieces.extend([sentence] if fits(sentence) else split_words(text, sentence, fits))
    groups: list[list[Span]] = []
    for piece in pieces:
        if groups and fits(Span(groups[-1][0].start, piece.end)):
            groups[-1].append(piece)
        else:
            groups.append([piece])
    return groups


def chunk_document(
    doc: Document, count_tokens: Callable[[str], int], max_tokens: int
) -> list[Passage]:
    """Passages of one document, in order. `count_tokens` counts the encoder's word pieces
    of a text including its special tokens; no passage counts more than `max_tokens`."""
    text = doc.text

    def fits(span: Span) -> bool:
        return count_tokens(text[span.start : span.end]) <= max_tokens

    passages = []
    for number, paragraph in enumerate(paragraph_spans(text, doc.body_start), start=1):
        sentences = sentence_spans(text, paragraph)
        groups = [sentences] if fits(paragraph) else pack_sentences(text, sentences, fits)
        for part, group in enumerate(groups, start=1):
            start, end = group[0].start, group[-1].end
            passages.append(
                Passage(
                    doc_id=doc.id,
                    paragraph=number,
                    part=part,
                    start=start,
                    end=end,
                    text=text[start:end],
                    sentences=tuple(group),
                    units=unit_spans(text, group),
                )
            )
    return passages


def chunk_documents(
    docs: list[Document],
    count_tokens: Callable[[str], int],
    max_tokens: int,
    workers: int = 1,
    parallel_from: int = PARALLEL_FROM_CHARS,
) -> list[list[Passage]]:
    """`chunk_document` of each document, in order. With `workers` > 1 and at least
    `parallel_from` characters of text, the documents are chunked by that many processes
    (sentence splitting is pure Python: threads would take turns); the passages are the same.
    Where processes cannot be started, one process chunks everything.
    """
    size = sum(len(doc.text) for doc in docs)
    if workers > 1 and len(docs) > 1 and size >= parallel_from:
        try:
            return chunk_in_pool(docs, count_tokens, max_tokens, min(workers, len(docs)))
        except (OSError, ValueError, BrokenProcessPool):
            pass  # no fork on this system, or no processes to be had (limits): chunk here
    return [chunk_document(doc, count_tokens, max_tokens) for doc in docs]


def chunk_in_pool(docs, count_tokens, max_tokens, workers) -> list[list[Passage]]:
    """`chunk_document` of each of `docs`, in `workers` forked processes."""
    # fork: "spawn" and "forkserver" run the caller's main script again in each worker, which a
    # script without an `if __name__ == "__main__"` guard does not survive. The workers only
    # split sentences; the splitter is loaded first so that they import nothing.
    _segmenter()
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(
        workers, mp_context=context, initializer=_worker_setup, initargs=(count_tokens, max_tokens)
    ) as pool:
        chunksize = max(1, len(docs) // (8 * workers))
        return list(pool.map(_worker_chunk, docs, chunksize=chunksize))


_worker_args: tuple = ()


def _worker_setup(count_tokens, max_tokens) -> None:
    global _worker_args
    _worker_args = (count_tokens, max_tokens)
    # Ctrl-C is the build's to handle: the pool then stops its workers without tracebacks
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _worker_chunk(doc: Document) -> list[Passage]:
    return chunk_document(doc, *_worker_args)
