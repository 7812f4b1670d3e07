"""Dense (FAISS) and lexical (BM25) search, fused; the answering sentence of each passage.

Each candidate passage gets four signals:
- `dense`: cosine of the question with the whole passage;
- `unit`: cosine with the passage's best unit (a sentence, or a clause of a long sentence), so
  a passage about many things still wins when one of its parts is exactly on the question;
- `lexical`: BM25, divided by the best BM25 of this question;
- `coverage`: the share of the question's rare-word weight (IDF) found in the passage.
`fusion="weighted"` (shipped) ranks by a weighted sum of `dense`, `unit` and `coverage`
(coverage beat relative BM25 on both eval sets); `"rrf"` by reciprocal
rank fusion of dense and BM25; `"dense"` and `"lexical"` by one signal alone (baselines for
`ctqa eval --compare`). `confidence` uses only signals comparable across questions (cosines and
coverage), so that one threshold can decide abstention.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .chunking import Passage, Span
from .config import Settings
from .index import Index
from .lexical import terms

RRF_K = 60


@dataclass(frozen=True)
class Hit:
    """One ranked passage with the signals behind its score."""

    row: int
    passage: Passage
    score: float
    sentence: Span  # the answering sentence
    dense: float
    unit: float
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
        index = self.index
        vector = self.encoder.encode([query])
        query_terms = terms(query)
        bm25 = index.lexical.scores(query_terms)
        rows = self._candidates(vector, bm25)
        if doc_ids is not None:
            keep = [index.passages[r].doc_id in doc_ids for r in rows]
            rows = rows[np.array(keep, dtype=bool)] if len(rows) else rows
        if len(rows) == 0:
            return Ranking([], 0.0)
        q = vector[0]
        dense = index.passage_vectors.reconstruct_batch(rows) @ q
        per_unit = self._unit_cosines(rows, q)
        unit = np.array([sims.max() for sims in per_unit], dtype=np.float32)
        top_bm25 = float(bm25.max())
        lexical = bm25[rows] / top_bm25 if top_bm25 > 0 else np.zeros(len(rows), np.float32)
        coverage = index.lexical.coverage(query_terms, rows)
        score = self._fuse(dense, unit, lexical, coverage)
        order = np.argsort(-score, kind="stable")[:k]
        hits = [
            Hit(
                int(rows[i]),
                index.passages[rows[i]],
                float(score[i]),
                self._answering_sentence(int(rows[i]), per_unit[i], query_terms),
                float(dense[i]),
                float(unit[i]),
                float(lexical[i]),
                float(coverage[i]),
            )
            for i in order
        ]
        return Ranking(hits, confidence(hits[0]) if hits else 0.0)

    def _fuse(self, dense, unit, lexical, coverage) -> np.ndarray:
        s = self.settings
        if s.fusion == "dense":
            return dense
        if s.fusion == "lexical":
            return lexical + 1e-3 * dense  # dense only breaks ties between equal BM25 scores
        if s.fusion == "rrf":
            return _rrf(dense) + _rrf(lexical)
        return s.weight_dense * dense + s.weight_unit * unit + s.weight_lexical * coverage

    def _candidates(self, vector: np.ndarray, bm25: np.ndarray) -> np.ndarray:
        """Union of the top passages by dense passage, dense unit and BM25 search."""
        index, n = self.index, self.settings.candidates
        total = index.passage_vectors.ntotal
        _, by_passage = index.passage_vectors.search(vector, min(n, total))
        _, by_unit = index.unit_vectors.search(vector, min(3 * n, index.unit_vectors.ntotal))
        found = [by_passage[0], index.unit_owner[by_unit[0][by_unit[0] >= 0]]]
        if bm25.any():
            take = min(n, total)
            top = np.argpartition(-bm25, take - 1)[:take] if take < total else np.arange(total)
            found.append(top[bm25[top] > 0])
        rows = np.unique(np.concatenate(found).astype(np.int64))
        return rows[(rows >= 0) & (rows < total)]  # FAISS pads missing results with -1

    def _unit_cosines(self, rows: np.ndarray, q: np.ndarray) -> list[np.ndarray]:
        """Cosine of the question with each unit of each passage row."""
        index = self.index
        counts = [len(index.passages[r].units) for r in rows]
        unit_rows = np.concatenate(
            [
                np.arange(index.unit_first[r], index.unit_first[r] + c)
                for r, c in zip(rows, counts, strict=True)
            ]
        )
        sims = index.unit_vectors.reconstruct_batch(unit_rows) @ q
        return np.split(sims, np.cumsum(counts)[:-1])

    def _answering_sentence(self, row: int, unit_sims: np.ndarray, query_terms: list[str]) -> Span:
        """The sentence holding the passage's best unit; where two sentences are close, the one
        sharing more of the question's words."""
        passage = self.index.passages[row]
        if len(passage.sentences) == 1:
            return passage.sentences[0]
        wanted = set(query_terms)
        text = self.index.documents[passage.doc_id].text
        scores = []
        for sentence in passage.sentences:
            inside = [
                sim
                for unit, sim in zip(passage.units, unit_sims, strict=True)
                if sentence.start <= unit.start and unit.end <= sentence.end
            ]
            shared = len(wanted & set(terms(text[sentence.start : sentence.end])))
            scores.append(max(inside) + 0.1 * shared / max(1, len(wanted)))
        return passage.sentences[int(np.argmax(scores))]


def _rrf(values: np.ndarray) -> np.ndarray:
    """Reciprocal-rank-fusion contribution of one signal: 1 / (60 + rank)."""
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[np.argsort(-values, kind="stable")] = np.arange(1, len(values) + 1)
    return 1.0 / (RRF_K + ranks)


def confidence(hit: Hit) -> float:
    """How likely the passage answers the question, from signals comparable across questions."""
    return 0.6 * hit.unit + 0.4 * hit.coverage
