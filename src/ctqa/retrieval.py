"""Dense (FAISS) and lexical (BM25) search, fused; the answering sentence of each passage.

A passage's score mixes three signals, each on its own scale:
- `dense`: cosine of the question with the whole passage;
- `sentence`: cosine of the question with the passage's best sentence (a passage about many
  things still wins when one of its sentences is exactly on the question);
- `lexical`: BM25, divided by the best BM25 of this question.
`confidence` uses only signals comparable across questions (cosines and the share of the
question's rare words found), so that one threshold can decide abstention.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .chunking import Passage, Span
from .config import Settings
from .index import Index
from .lexical import terms


@dataclass(frozen=True)
class Hit:
    """One ranked passage with the signals behind its score."""

    row: int
    passage: Passage
    score: float
    sentence: Span
    dense: float
    sentence_dense: float
    lexical: float
    coverage: float


@dataclass(frozen=True)
class Ranking:
    """Passages best first, and how sure the retriever is that the first answers."""

    hits: list[Hit]
    confidence: float


class Retriever:
    """Searches one loaded `Index` with one encoder."""

    def __init__(self, index: Index, encoder, settings: Settings):
        self.index = index
        self.encoder = encoder
        self.settings = settings

    def search(self, query: str, k: int = 3, doc_ids: set[str] | None = None) -> Ranking:
        """The `k` best passages for `query` (optionally only from `doc_ids`)."""
        index, s = self.index, self.settings
        vector = self.encoder.encode([query])
        query_terms = terms(query)
        rows = self._candidates(vector, query_terms)
        if doc_ids is not None:
            rows = np.array(
                [r for r in rows if index.passages[r].doc_id in doc_ids], dtype=np.int64
            )
        if len(rows) == 0:
            return Ranking([], 0.0)
        q = vector[0]
        dense = index.passage_vectors.reconstruct_batch(rows) @ q
        per_sentence = self._sentence_cosines(rows, q)
        sentence_dense = np.array([sims.max() for sims in per_sentence], dtype=np.float32)
        bm25 = index.lexical.scores(query_terms)
        top_bm25 = float(bm25.max()) if len(bm25) else 0.0
        lexical = bm25[rows] / top_bm25 if top_bm25 > 0 else np.zeros(len(rows), np.float32)
        coverage = index.lexical.coverage(query_terms, rows)
        score = (
            s.weight_dense_passage * dense
            + s.weight_dense_sentence * sentence_dense
            + s.weight_lexical * lexical
        )
        order = np.argsort(-score, kind="stable")[:k]
        hits = [
            Hit(
                int(rows[i]),
                index.passages[rows[i]],
                float(score[i]),
                self._answering_sentence(int(rows[i]), per_sentence[i], query_terms),
                float(dense[i]),
                float(sentence_dense[i]),
                float(lexical[i]),
                float(coverage[i]),
            )
            for i in order
        ]
        return Ranking(hits, confidence(hits[0]) if hits else 0.0)

    def _candidates(self, vector: np.ndarray, query_terms: list[str]) -> np.ndarray:
        """Union of the top passages by dense passage, dense sentence and BM25 search."""
        index, n = self.index, self.settings.candidates
        total = index.passage_vectors.ntotal
        _, by_passage = index.passage_vectors.search(vector, min(n, total))
        _, by_sentence = index.sentence_vectors.search(
            vector, min(n, index.sentence_vectors.ntotal)
        )
        found = [by_passage[0], index.sentence_owner[by_sentence[0][by_sentence[0] >= 0]]]
        bm25 = index.lexical.scores(query_terms)
        if bm25.any():
            take = min(n, total)
            top = np.argpartition(-bm25, take - 1)[:take] if take < total else np.arange(total)
            found.append(top[bm25[top] > 0])
        rows = np.unique(np.concatenate(found).astype(np.int64))
        return rows[(rows >= 0) & (rows < total)]  # FAISS pads missing results with -1

    def _sentence_cosines(self, rows: np.ndarray, q: np.ndarray) -> list[np.ndarray]:
        """Cosine of the question with each sentence of each passage row."""
        index = self.index
        counts = [len(index.passages[r].sentences) for r in rows]
        sentence_rows = np.concatenate(
            [
                np.arange(index.sentence_first[r], index.sentence_first[r] + c)
                for r, c in zip(rows, counts, strict=True)
            ]
        )
        sims = index.sentence_vectors.reconstruct_batch(sentence_rows) @ q
        return np.split(sims, np.cumsum(counts)[:-1])

    def _answering_sentence(self, row: int, sims: np.ndarray, query_terms: list[str]) -> Span:
        """The passage's sentence that best answers: highest cosine, and where two are close,
        the one sharing more of the question's words."""
        passage = self.index.passages[row]
        if len(passage.sentences) == 1:
            return passage.sentences[0]
        wanted = set(query_terms)
        text = self.index.documents[passage.doc_id].text
        overlap = np.array(
            [
                len(wanted & set(terms(text[sp.start : sp.end]))) / max(1, len(wanted))
                for sp in passage.sentences
            ],
            dtype=np.float32,
        )
        return passage.sentences[int(np.argmax(sims + 0.1 * overlap))]


def confidence(hit: Hit) -> float:
    """How likely the passage answers the question, from signals comparable across questions."""
    return 0.6 * hit.sentence_dense + 0.4 * hit.coverage
