"""Dense (FAISS) and lexical (BM25) search, fused; the answering sentence of each passage.

The question is first expanded from the corpus (acronyms spelled out, misspellings mapped: see
`expansion.py`). Each candidate passage then gets these signals:
- `dense`: cosine of the question with the whole passage;
- `unit`: cosine with the passage's best unit (a sentence, or a clause of a long sentence), so
  a passage about many things still wins when one of its parts is exactly on the question;
- `lexical`: BM25, divided by the best BM25 of this question;
- `coverage`: the share of the question's rare-word weight (IDF) found in the passage;
- `names`: the share of names in the passage, only when the question asks for names.
`fusion="weighted"` (shipped) ranks by a weighted sum of `dense`, `unit`, `coverage` and
`names` (coverage beat relative BM25 on both eval sets); `"rrf"` by reciprocal rank fusion of
dense and BM25; `"dense"` and `"lexical"` by one signal alone (baselines for
`ctqa eval --compare`). The confidence that decides abstention is always the weighted score of
the first passage (its parts mean the same for every question, so one threshold serves all),
lowered when the passages ranked next disagree with it (confidence.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from .answer_type import asks_for_names, name_share
from .chunking import Passage, Span
from .confidence import agreements, confidence_of
from .config import Settings
from .expansion import QueryExpander
from .lexical import query_terms, terms
from .recent import RecentSearches
from .store import Index
from .vectors import nearest

RRF_K = 60
NEAR_BEST_UNIT = 0.1  # cosine
# Added to a sentence's best unit cosine when it holds all of the question's words (a share of
# it for some): of two sentences about as close, the answering one shares more words.
SHARED_WORDS_BONUS = 0.1
# Passages searched for the words an unknown acronym abbreviates (the closest ones).
NEARBY_PASSAGES = 20
# Passages ranked first (the first included) whose agreement with the first counts.
AGREEMENT_PASSAGES = 5


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
    names: float  # share of names, when the question asks for names (else 0)


@dataclass(frozen=True)
class Ranking:
    """Passages best first, and how sure the retriever is that the first answers."""

    hits: list[Hit]
    confidence: float
    query: str  # what was searched: the question with acronyms spelled out
    agreement: float = 1.0  # share of the passages ranked first that agree with the first
    vector: np.ndarray | None = field(default=None, compare=False)  # the query's embedding
    # Every candidate passage searched (its row) and its score, the ranked ones and the rest:
    # kept as searched, so that a question costs nothing more when they are not read.
    candidates: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64), compare=False)
    candidate_scores: np.ndarray = field(default_factory=lambda: np.zeros(0), compare=False)

    def score_of(self, row: int) -> float:
        """The score of passage `row`; one that was not even a candidate scores as the lowest
        candidate did (it is further still).

        >>> r = Ranking([], 0.0, "q", candidates=np.array([4, 9]),
        ...             candidate_scores=np.array([0.6, 0.1]))
        >>> r.score_of(4), r.score_of(7)
        (0.6, 0.1)
        """
        found = np.flatnonzero(self.candidates == row)
        if len(found):
            return float(self.candidate_scores[found[0]])
        return float(self.candidate_scores.min()) if len(self.candidate_scores) else 0.0


class Retriever:
    """Searches one loaded `Index` with one encoder."""

    def __init__(self, index: Index, encoder, settings: Settings):
        self.index = index
        self.encoder = encoder
        self.settings = settings
        import faiss  # loaded with the index already

        faiss.omp_set_num_threads(settings.threads)
        self.expander = QueryExpander.build((p.text for p in index.passages), _model_words())
        self.recent = RecentSearches(settings.recent_searches)

    def search(self, query: str, k: int = 3, doc_ids: set[str] | None = None) -> Ranking:
        """The `k` best passages for `query` (optionally only from `doc_ids`)."""
        ranking = self._search(query, k, doc_ids)
        self.recent.keep(_search_key(query, k, doc_ids), ranking)
        return ranking

    def recall(self, query: str, k: int = 3, doc_ids: set[str] | None = None) -> Ranking:
        """`search`, or the same ranking kept from a recent search of `query` (recent.py): for
        a conversation's earlier questions, which the turns before searched."""
        kept = self.recent.kept(_search_key(query, k, doc_ids))
        return kept if kept is not None else self.search(query, k, doc_ids)

    def _search(self, query: str, k: int, doc_ids: set[str] | None) -> Ranking:
        index = self.index
        expansion = self.expander.expand(query)
        vector, wanted, bm25, rows = self._first_pass(expansion)
        if expansion.unresolved:
            # An acronym the corpus only writes out in lowercase: look for it in what was found,
            # the passages closest to the question first.
            closeness = index.passage_rows[rows] @ vector[0]
            closest = rows[np.argsort(-closeness, kind="stable")[:NEARBY_PASSAGES]]
            nearby = [index.passages[r].text for r in closest]
            wider = self.expander.expand(query, nearby)
            if wider.acronyms != expansion.acronyms:
                expansion = wider
                vector, wanted, bm25, rows = self._first_pass(expansion)
        query = expansion.text
        if doc_ids is not None:
            keep = [index.passages[r].doc_id in doc_ids for r in rows]
            rows = rows[np.array(keep, dtype=bool)] if len(rows) else rows
        if len(rows) == 0:
            return Ranking(hits=[], confidence=0.0, query=query, vector=vector[0])
        q = vector[0]
        dense = index.passage_rows[rows] @ q
        unit, per_unit = self._unit_cosines(rows, q)
        top_bm25 = float(bm25.max())
        lexical = bm25[rows] / top_bm25 if top_bm25 > 0 else np.zeros(len(rows), np.float32)
        coverage = index.lexical.coverage(wanted, rows)
        names = np.zeros(len(rows))
        weighted = self._weighted(dense, unit, coverage, names)
        score = self._fuse(weighted, dense, lexical)
        ranked = max(k, AGREEMENT_PASSAGES)
        if asks_for_names(query) and self.settings.weight_names:
            weighted, score, names = self._add_name_shares(weighted, score, ranked, rows, per_unit)
        order = np.argsort(-score, kind="stable")[:ranked]
        agreement = self._agreement(rows[order[:AGREEMENT_PASSAGES]])
        first = float(weighted[order[0]])
        confidence = confidence_of(first, agreement, self.settings.weight_disagreement)
        hits = [
            Hit(
                row=int(rows[i]),
                passage=index.passages[rows[i]],
                score=float(score[i]),
                sentence=self._answering_sentence(int(rows[i]), per_unit[i], wanted),
                dense=float(dense[i]),
                unit=float(unit[i]),
                lexical=float(lexical[i]),
                coverage=float(coverage[i]),
                names=float(names[i]),
            )
            for i in order[:k]
        ]
        return Ranking(
            hits=hits,
            confidence=confidence,
            query=query,
            agreement=agreement,
            vector=q,
            candidates=rows,
            candidate_scores=score,
        )

    def _first_pass(self, expansion):
        """Query vector, query terms, BM25 of every passage and the candidate rows."""
        vector = self.encoder.encode([expansion.text])
        wanted = query_terms(expansion.lexical_text())
        bm25 = self.index.lexical.scores(wanted)
        return vector, wanted, bm25, self._candidates(vector, bm25)

    def _weighted(self, dense, unit, coverage, names) -> np.ndarray:
        """The shipped score; also the confidence that decides abstention, whatever the fusion,
        since its parts (cosines, shares) mean the same for every question."""
        s = self.settings
        return (
            s.weight_dense * dense
            + s.weight_unit * unit
            + s.weight_lexical * coverage
            + s.weight_names * names
        )

    def _agreement(self, rows: np.ndarray) -> float:
        """Share of `rows` (passage rows, best first) that agree with the first (`agreements`).
        The rows are those searched, after any `doc_ids` filter, so a search restricted to one
        statement always agrees; fewer than `AGREEMENT_PASSAGES` rows count as they are."""
        index = self.index
        docs = [index.passages[r].doc_id for r in rows]
        agree = agreements(docs, index.passage_rows[rows], self.settings.agreement_cosine)
        return float(agree[0].mean())

    def _fuse(self, weighted, dense, lexical) -> np.ndarray:
        fusion = self.settings.fusion
        if fusion == "dense":
            return dense
        if fusion == "lexical":
            return lexical + 1e-3 * dense  # dense only breaks ties between equal BM25 scores
        if fusion == "rrf":
            return _rrf(dense) + _rrf(lexical)
        return weighted

    def _add_name_shares(self, weighted, score, k, rows, per_unit):
        """(`weighted`, `score`, name shares) with each passage's name share added, reading the
        passages best first and stopping once no unread one can reach the first `k` (its share
        stays 0): a share adds at most `weight_names`, and reading a passage's names is the
        slowest step of a search over a large corpus."""
        gain = self.settings.weight_names
        moves = self.settings.fusion == "weighted"  # other fusions rank without names
        order = np.argsort(-score, kind="stable")
        weighted, score, names = weighted.copy(), score.copy(), np.zeros(len(rows))
        read = 0
        while read < len(order):
            batch = order[read : read + k]
            names[batch] = self._name_shares(rows[batch], [per_unit[i] for i in batch])
            weighted[batch] += gain * names[batch]
            if moves:
                score[batch] = weighted[batch]
            read += len(batch)
            if read < len(order):
                kth = np.partition(score[order[:read]], read - k)[read - k]
                unread_best = score[order[read]] + (max(gain, 0.0) if moves else 0.0)
                if kth > unread_best:
                    break
        return weighted, score, names

    def _name_shares(self, rows: np.ndarray, per_unit: list[np.ndarray]) -> np.ndarray:
        """Share of names in each passage's most name-rich unit among those the question
        matched nearly as well as the best (a list of names is rarely the closest part)."""
        shares = []
        for row, sims in zip(rows, per_unit, strict=True):
            passage = self.index.passages[row]
            text = self.index.documents[passage.doc_id].text
            close = np.flatnonzero(sims >= sims.max() - NEAR_BEST_UNIT)
            units = [passage.units[i] for i in close]
            shares.append(max(name_share(text[u.start : u.end]) for u in units))
        return np.array(shares, dtype=np.float32)

    def _candidates(self, vector: np.ndarray, bm25: np.ndarray) -> np.ndarray:
        """Union of the top passages by dense passage, dense unit and BM25 search."""
        index, n = self.index, self.settings.candidates
        total = index.passage_vectors.ntotal
        s = self.settings
        by_passage = nearest(index.passage_vectors, vector, min(n, total), s.nprobe_passages)
        by_unit = nearest(
            index.unit_vectors, vector, min(3 * n, index.unit_vectors.ntotal), s.nprobe_units
        )
        found = [by_passage[0], index.unit_owner[by_unit[0][by_unit[0] >= 0]]]
        if bm25.any():
            take = min(n, total)
            top = np.argpartition(-bm25, take - 1)[:take] if take < total else np.arange(total)
            found.append(top[bm25[top] > 0])
        rows = np.unique(np.concatenate(found).astype(np.int64))
        return rows[(rows >= 0) & (rows < total)]  # FAISS pads missing results with -1

    def _unit_cosines(self, rows: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, UnitCosines]:
        """(Best unit cosine of each passage row, the cosines of all its units)."""
        units, starts = self.index.units_of(rows)
        sims = self.index.unit_rows[units] @ q
        return np.maximum.reduceat(sims, starts), UnitCosines(sims, starts)  # float32, as the rows

    def _answering_sentence(self, row: int, unit_sims: np.ndarray, wanted: list[str]) -> Span:
        """The sentence holding the passage's best unit; where two sentences are close, the one
        sharing more of the question's words."""
        passage = self.index.passages[row]
        if len(passage.sentences) == 1:
            return passage.sentences[0]
        wanted = set(wanted)
        text = self.index.documents[passage.doc_id].text
        best = [
            max(
                sim
                for unit, sim in zip(passage.units, unit_sims, strict=True)
                if sentence.start <= unit.start and unit.end <= sentence.end
            )
            for sentence in passage.sentences
        ]
        top, scores = max(best), []
        for sentence, sim in zip(passage.sentences, best, strict=True):
            if sim + SHARED_WORDS_BONUS < top:
                scores.append(-np.inf)  # shared words could not lift it to the best one
                continue
            shared = len(wanted & set(terms(text[sentence.start : sentence.end])))
            scores.append(sim + SHARED_WORDS_BONUS * shared / max(1, len(wanted)))
        return passage.sentences[int(np.argmax(scores))]


@dataclass(frozen=True)
class UnitCosines:
    """The question's cosine with every unit of the candidate passages, one passage's after
    another's; `[i]` is candidate i's. Sliced on demand: only the few passages ranked first
    read theirs, and splitting every candidate's costs more than the rest of the step.

    >>> UnitCosines(np.array([0.1, 0.5, 0.2]), np.array([0, 2]))[0]
    array([0.1, 0.5])
    """

    sims: np.ndarray
    starts: np.ndarray

    def __getitem__(self, i: int) -> np.ndarray:
        end = self.starts[i + 1] if i + 1 < len(self.starts) else len(self.sims)
        return self.sims[self.starts[i] : end]


def _search_key(query: str, k: int, doc_ids: set[str] | None) -> tuple:
    return query, k, frozenset(doc_ids) if doc_ids is not None else None


@lru_cache(maxsize=1)
def _model_words() -> frozenset[str]:
    """Whole words the encoder knows (its WordPiece vocabulary without the `##` pieces)."""
    from .minilm import load_tokenizer

    return frozenset(w for w in load_tokenizer().get_vocab() if w.isalpha())


def _rrf(values: np.ndarray) -> np.ndarray:
    """Reciprocal-rank-fusion contribution of one signal: 1 / (60 + rank)."""
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[np.argsort(-values, kind="stable")] = np.arange(1, len(values) + 1)
    return 1.0 / (RRF_K + ranks)
