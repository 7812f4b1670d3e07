"""`Bot` and `answer`: follow the conversation, retrieve, read (when on), abstain or cite.

>>> from ctqa import answer                                  # doctest: +SKIP
>>> a = answer("Who led the French delegation?")            # doctest: +SKIP
>>> a.citations[0].paragraph, a.citations[0].text[:40]     # doctest: +SKIP
(3, 'The two countries held the 15th Meeting ')
"""

from __future__ import annotations

import hashlib
import os
import sys
import threading
from dataclasses import replace
from pathlib import Path

from .config import Settings
from .conversation import FollowUpRule, follow
from .errors import CtqaError
from .questions import check_k, clean_question, user_turns
from .render import reply
from .results import Answer, Citation


def default_index_dir(corpus: Path) -> Path:
    """Where the index of a corpus lives when no index folder is given: a user cache folder."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ctqa"
    digest = hashlib.sha256(str(corpus.resolve()).encode()).hexdigest()[:10]
    return base / f"{corpus.resolve().name}-{digest}"


def own_index_dir(corpus: Path, settings: Settings) -> Path:
    """The index folder of `corpus` when none is given: the settings' index folder for the
    settings' corpus, except that the shipped `embeddings/` only ever holds the shipped
    `seeds/` (so `CTQA_CORPUS_DIR` alone never rebuilds it with another corpus); a user cache
    folder otherwise."""

    def same(a, b) -> bool:
        return Path(a).resolve() == Path(b).resolve()

    shipped = Settings()
    chose_index = not same(settings.index_dir, shipped.index_dir)
    if same(corpus, settings.corpus_dir) and (chose_index or same(corpus, shipped.corpus_dir)):
        return Path(settings.index_dir)
    return default_index_dir(corpus)


def corpus_beside(index) -> Path:
    """The corpus folder of a loaded index opened without one: the folder of the name its
    manifest records, beside the index folder (as `seeds/` is beside `embeddings/`) when it
    is there, else that name as it is."""
    name = Path(index.manifest.get("corpus", ""))
    if str(name) in ("", ".", "..") or len(name.parts) != 1:
        return name
    generation = Path(index.folder).absolute()
    for index_dir in (generation.parent, generation.resolve().parent):  # as given, then real
        if (index_dir.parent / name).is_dir():
            return index_dir.parent / name
    return name


class Bot:
    """Answers questions from a corpus of statements, citing them.

    >>> bot = Bot(corpus="seeds", index="embeddings")          # doctest: +SKIP
    >>> bot.answer("Where was the meeting held?").citations[0].paragraph   # doctest: +SKIP
    3

    With a corpus, the index is built or brought up to date on first use; with only an index,
    it is loaded and verified, and a damaged one is refused with a clear message.
    """

    def __init__(
        self,
        corpus: str | Path | None = None,
        index: str | Path | None = None,
        *,
        settings: Settings | None = None,
        encoder=None,
        reader=None,
        log=None,
    ):
        self.settings = settings or Settings.from_env()
        if corpus is None and index is None:
            corpus = self.settings.corpus_dir
        self.corpus = Path(corpus) if corpus is not None else None
        if index is None:
            index = own_index_dir(self.corpus, self.settings)
        self.index_dir = Path(index)
        self._encoder = encoder
        self._reader = reader
        self._live = None  # the retriever of the index's current generation, made on first use
        self._lock = threading.Lock()
        self._log = log if log is not None else (lambda msg: print(msg, file=sys.stderr))

    def load(self):
        """The `Retriever` of the index's current generation. The first call loads the model
        and builds or loads the index (`answer` calls it; call it first to pay that cost
        before a question); a generation that `ctqa index` switches in later is picked up by
        the next call, without a restart."""
        with self._lock:
            if self._live is None:
                from .build import ensure_index
                from .encoder import load_encoder
                from .live import LiveIndex
                from .minilm import token_counter
                from .retrieval import Retriever

                if self._encoder is None:
                    self._encoder = load_encoder(
                        self.settings.threads, backend=self.settings.encoder_backend, log=self._log
                    )
                index = ensure_index(
                    self.corpus,
                    self.index_dir,
                    lambda: self._encoder,
                    self.settings,
                    token_counter(),
                    log=self._log,
                )
                self._live = LiveIndex(
                    self.index_dir,
                    index,
                    make=lambda loaded: Retriever(loaded, self._encoder, self.settings),
                    log=self._log,
                )
        return self._live.get()

    def documents(self) -> dict:
        """The statements of the index generation in use, by id."""
        return self.load().index.documents

    def reader(self):
        """The trained reader (loaded and verified on first use), or None when
        `settings.reader` is "off"."""
        if self.settings.reader not in ("on", "off"):
            raise CtqaError(f"CTQA_READER={self.settings.reader!r}: use on or off.")
        if self.settings.reader == "off":
            return None
        with self._lock:
            if self._reader is None:
                from .reader import load_reader

                self._reader = load_reader(self.settings.threads)
            return self._reader

    def abstain_below(self) -> float:
        """The confidence below which the bot abstains: the reader's, or retrieval's."""
        reader = self.reader()
        return reader.calibration.abstain_below if reader else self.settings.abstain_below

    def answer(
        self,
        question: str,
        history: list | None = None,
        k: int = 3,
        doc_ids: set[str] | None = None,
    ) -> Answer:
        """Cited passages answering `question`, best first, or an abstention. `history` holds
        the conversation's earlier questions (strings or chat messages), oldest first; a
        question that leans on them is searched glued after them (see conversation.py), and
        `Answer.query` says so."""
        s = self.settings
        text = clean_question(question, s.max_question_chars)
        k = check_k(k, s.max_k)
        earlier = user_turns(history, s.max_history_turns, s.max_question_chars)
        retriever = self.load()  # one generation for the whole answer
        reader = self.reader()
        read = reader.calibration.candidates if reader is not None else 0
        wanted = max(k, read)
        rule = FollowUpRule.of(s)
        step = follow(
            [*earlier, text],
            lambda q: retriever.search(q, wanted, doc_ids),
            rule,
            recall=lambda q: retriever.recall(q, wanted, doc_ids),
        )
        ranking = step.ranking
        if reader is None:
            citations = [self._citation(h, retriever.index, score=h.score) for h in ranking.hits]
            confidence = ranking.confidence
        else:
            citations, confidence = self._read(reader, ranking, retriever.index)
        citations = citations[:k]
        abstained = not citations or confidence < self.abstain_below()
        shown, nearest = ([], citations) if abstained else (citations, [])
        found = Answer(
            question=text,
            query=ranking.query,
            citations=shown,
            abstained=abstained,
            text="",
            confidence=confidence,
            nearest=nearest,
        )
        return replace(found, text=reply(found))

    def _read(self, reader, ranking, index) -> tuple[list[Citation], float]:
        """The citations in the reader's order (those it read first, reordered; the rest after,
        in retrieval's order), and its probability that the first answers."""
        from .reader import rerank

        hits = ranking.hits
        read = hits[: reader.calibration.candidates]
        readings = reader.read(ranking.query, [h.passage.text for h in read])
        order = rerank([h.score for h in read], readings, reader.calibration, ranking.agreement)
        citations = [self._citation(read[i], index, readings[i], p) for i, p in order]
        citations += [self._citation(h, index) for h in hits[len(read) :]]
        return citations, (order[0][1] if order else 0.0)

    def _citation(self, hit, index, reading=None, score: float | None = None) -> Citation:
        """A ranked passage as a `Citation`; with the reader's `reading`, the answering sentence
        is the one holding its answer span."""
        doc = index.documents[hit.passage.doc_id]
        folder = self.corpus if self.corpus is not None else corpus_beside(index)
        p = hit.passage
        sentence, answer = (hit.sentence.start, hit.sentence.end), None
        if reading is not None:
            answer = (p.start + reading.span[0], p.start + reading.span[1])
            sentence = sentence_around(p.sentences, answer)
        return Citation(
            doc_id=doc.id,
            title=doc.title,
            date=doc.date,
            source=str(folder / doc.source),
            paragraph=p.paragraph,
            start=p.start,
            end=p.end,
            text=p.text,
            highlight=sentence,
            score=None if score is None else round(score, 4),
            answer=answer,
        )


def sentence_around(sentences, span: tuple[int, int]) -> tuple[int, int]:
    """(start, end) of the sentences that hold `span` (one, unless the span runs across).

    >>> from ctqa.chunking import Span
    >>> sentence_around([Span(0, 10), Span(11, 20), Span(21, 30)], (12, 15))
    (11, 20)
    """
    inside = [x for x in sentences if x.start < span[1] and span[0] < x.end] or [sentences[0]]
    return inside[0].start, inside[-1].end


_default_bot: Bot | None = None
_default_lock = threading.Lock()


def default_bot() -> Bot:
    """The process-wide bot over the default corpus (`seeds/` -> `embeddings/`)."""
    global _default_bot
    with _default_lock:
        if _default_bot is None:
            _default_bot = Bot()
        return _default_bot


def answer(question: str, *, history: list | None = None, k: int = 3) -> Answer:
    """Answer from the default corpus. See `Bot.answer`."""
    return default_bot().answer(question, history=history, k=k)
