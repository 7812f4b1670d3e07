"""Building the index of a corpus: only added and changed statements are chunked and
embedded; the rest keep their passages and vectors. `ensure_index` is what a bot calls: build
when the corpus is at hand and the index is missing, stale or damaged, then load.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .chunking import Passage, chunk_documents
from .config import Settings
from .corpus import load_corpus, statement_paths
from .errors import CorpusError, CtqaError, IndexProblem, IndexWriteError
from .generations import (
    build_lock,
    current_name,
    remove_leftovers,
    remove_old_generations,
    write_and_switch,
    write_failure,
)
from .manifest import check_status, index_settings
from .store import Contents, Index, load_index


def build_index(
    corpus_dir: Path,
    index_dir: Path,
    encoder,
    settings: Settings,
    count_tokens: Callable[[str], int],
    progress: bool = False,
    *,
    only_if_stale: bool = False,
) -> Path:
    """Chunk, embed and index every statement; switch `CURRENT` to the new generation.

    Statements unchanged since the current generation keep their passages and vectors: only
    added and changed ones are chunked and embedded. With `only_if_stale`, a build that finds
    the index fresh once it holds the lock (another process just built it) writes nothing.
    """
    documents = load_corpus(corpus_dir)
    shaping = index_settings(settings, encoder.name, encoder.weights_sha256, encoder.dim)
    index_dir = Path(index_dir)
    try:
        index_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise IndexWriteError(write_failure(index_dir, exc, None)) from None
    with build_lock(index_dir):
        remove_leftovers(index_dir)
        previous = current_name(index_dir)
        if only_if_stale and check_status(index_dir, corpus_dir, shaping).fresh:
            return index_dir / previous
        contents = _contents(
            documents, _reusable(index_dir, shaping), encoder, settings, count_tokens, progress
        )
        final = write_and_switch(index_dir, documents, contents, shaping, corpus_dir, previous)
        remove_old_generations(index_dir, keep={final.name, previous})
        return final


def _reusable(index_dir: Path, shaping: dict) -> dict[str, tuple]:
    """Passages and vectors of the current generation by statement sha256, when it loads and
    was built with the same settings; otherwise nothing is reused."""
    try:
        # how vectors are searched (flat or IVF) does not change them: they are reused
        old = load_index(index_dir, {k: v for k, v in shaping.items() if k != "vectors"})
    except IndexProblem:
        return {}
    p_all, u_all = old.passage_rows, old.unit_rows
    rows: dict[str, list[int]] = {}
    for i, p in enumerate(old.passages):
        rows.setdefault(p.doc_id, []).append(i)
    reuse: dict[str, tuple] = {}
    for doc_id, numbers in rows.items():
        first, last = numbers[0], numbers[-1]
        reuse[old.documents[doc_id].sha256] = (
            old.passages[first : last + 1],
            p_all[first : last + 1],
            u_all[old.unit_slice(first, last)],
        )
    return reuse


def _contents(documents, reuse, encoder, settings, count_tokens, progress) -> Contents:
    passages: list[Passage] = []
    passage_rows: list = []
    unit_rows: list = []
    to_embed: list[tuple[int, list[Passage]]] = []
    new = [doc for doc in documents if doc.sha256 not in reuse]
    chunked = iter(
        chunk_documents(new, count_tokens, settings.max_passage_tokens, settings.threads)
    )
    for doc in documents:
        if doc.sha256 in reuse:
            old_passages, p_vec, u_vec = reuse[doc.sha256]
            # same bytes, same settings: same passages; only the id follows a renamed file
            doc_passages = [
                p if p.doc_id == doc.id else dataclasses.replace(p, doc_id=doc.id)
                for p in old_passages
            ]
            passage_rows.append(p_vec)
            unit_rows.append(u_vec)
        else:
            doc_passages = next(chunked)
            to_embed.append((len(passage_rows), doc_passages))
            passage_rows.append(None)
            unit_rows.append(None)
        passages.extend(doc_passages)
    _embed_missing(to_embed, passage_rows, unit_rows, encoder, settings, progress)
    return Contents(
        passages=passages,
        passage_matrix=np.ascontiguousarray(np.vstack(passage_rows), dtype=np.float32),
        unit_matrix=np.ascontiguousarray(np.vstack(unit_rows), dtype=np.float32),
        embedded=len(to_embed),
        reused=len(documents) - len(to_embed),
    )


def _embed_missing(to_embed, passage_rows, unit_rows, encoder, settings, progress) -> None:
    texts, units = [], []
    for _, doc_passages in to_embed:
        for p in doc_passages:
            texts.append(p.text)
            units.extend(p.text[u.start - p.start : u.end - p.start] for u in p.units)
    if not texts:
        return
    vectors = encoder.encode(
        texts + units, batch_size=settings.encode_batch_size, progress=progress
    )
    p_vectors, u_vectors = vectors[: len(texts)], vectors[len(texts) :]
    p_at = s_at = 0
    for slot, doc_passages in to_embed:
        n_p = len(doc_passages)
        n_s = sum(len(p.units) for p in doc_passages)
        passage_rows[slot] = p_vectors[p_at : p_at + n_p]
        unit_rows[slot] = u_vectors[s_at : s_at + n_s]
        p_at += n_p
        s_at += n_s


def ensure_index(
    corpus_dir: Path | None,
    index_dir: Path,
    encoder_factory,
    settings: Settings,
    count_tokens,
    progress: bool = False,
    log=None,
) -> Index:
    """Load the index, building or rebuilding it first when the corpus is at hand and the index
    is missing, stale or damaged. When the rebuild cannot be written (disk full, read-only
    folder) and the previous index still matches the code's settings, it serves, with a
    warning through `log`."""
    encoder = encoder_factory()
    expected = index_settings(settings, encoder.name, encoder.weights_sha256, encoder.dim)
    if corpus_dir is not None:
        statement_paths(corpus_dir)  # a missing or empty corpus folder is reported first
        status = check_status(index_dir, corpus_dir, expected)
        if not status.fresh:
            if log:
                log(f"Indexing {corpus_dir} ({status.reason})…")
            try:
                build_index(
                    corpus_dir,
                    index_dir,
                    encoder,
                    settings,
                    count_tokens,
                    progress,
                    only_if_stale=True,
                )
            except (IndexWriteError, CorpusError) as exc:
                return _previous_or_raise(index_dir, expected, exc, status, log)
    return load_index(index_dir, expected)


def _previous_or_raise(index_dir, expected, exc: CtqaError, status, log) -> Index:
    """The previous index when the rebuild failed (it cannot be written, or a statement
    cannot be read) and that index still matches the settings; else the failure."""
    try:
        index = load_index(index_dir, expected)
    except IndexProblem:
        raise exc from None
    if log:
        log(
            f"ctqa: warning: {exc} Answering from the previous index meanwhile; "
            f"it misses: {status.reason}."
        )
    return index
