"""Build, save, load and verify the index of a corpus.

An index folder holds generations; `CURRENT` names the one in use. A build writes a complete
new generation beside it, flushes it to disk and switches `CURRENT` with an atomic rename, so a
reader sees the old generation or the new one, never a mix, and an interrupted build leaves
the previous one in use. A generation holds:

    manifest.json     format, model and weights hash, dimension, settings, documents, counts,
                      sha256 of every other file
    documents.json    each statement's id, title, date, file name, sha256 and text
    passages.jsonl    each passage's document, paragraph, offsets, sentence and unit offsets
    passages.faiss    inner-product index of passage vectors
    units.faiss       inner-product index of the passages' units (sentences and clauses), in
                      passage order
    lexical/          BM25 index of the passages (bm25s files: numpy arrays and JSON)
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .chunking import SPLITTER_NAME, UNITS_NAME, Passage, Span, chunk_document
from .config import Settings
from .corpus import Document, file_sha256, load_corpus, statement_paths
from .errors import IndexProblem
from .lexical import LEXICAL_SETTINGS, LexicalIndex

FORMAT_VERSION = 1
CURRENT = "CURRENT"


@dataclass(frozen=True)
class IndexStatus:
    """Whether an index matches its corpus and settings; `reason` says why not."""

    state: str  # "fresh", "missing", "stale" or "damaged"
    reason: str = ""

    @property
    def fresh(self) -> bool:
        return self.state == "fresh"


@dataclass
class Index:
    """A loaded generation: everything a query needs."""

    folder: Path
    manifest: dict
    documents: dict[str, Document]
    passages: list[Passage]
    passage_vectors: object  # faiss.IndexFlatIP
    unit_vectors: object  # faiss.IndexFlatIP, one row per unit, in passage order
    unit_owner: np.ndarray  # unit row -> passage number
    unit_first: np.ndarray  # passage number -> its first unit row
    lexical: LexicalIndex


def index_settings(settings: Settings, model_name: str, weights_sha256: str, dim: int) -> dict:
    """Everything that shapes an index's content; a change makes the index stale."""
    return {
        "format_version": FORMAT_VERSION,
        "model": {"name": model_name, "weights_sha256": weights_sha256, "dim": dim},
        "chunking": {
            "max_passage_tokens": settings.max_passage_tokens,
            "splitter": SPLITTER_NAME,
            "units": UNITS_NAME,
        },
        "lexical": LEXICAL_SETTINGS,
    }


def current_generation(index_dir: Path) -> Path | None:
    """Folder of the generation `CURRENT` names, or None when there is none."""
    try:
        name = (Path(index_dir) / CURRENT).read_text(encoding="utf-8").strip()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise IndexProblem(
            f"{index_dir}/{CURRENT} cannot be read ({exc}); rebuild with `ctqa index`."
        ) from None
    if not name or "/" in name or name.startswith("."):
        raise IndexProblem(f"{index_dir}/{CURRENT} is damaged; rebuild with `ctqa index`.")
    return Path(index_dir) / name


def read_manifest(generation: Path) -> dict:
    try:
        return json.loads((generation / "manifest.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise IndexProblem(
            f"the index at {generation.parent} is missing its manifest; rebuild with `ctqa index`."
        ) from None
    except (OSError, ValueError) as exc:
        raise IndexProblem(
            f"the index manifest in {generation} is damaged ({exc}); rebuild with `ctqa index`."
        ) from None


def corpus_fingerprint(corpus_dir: Path) -> dict[str, str]:
    """File name -> sha256 of every statement in the corpus folder."""
    return {path.name: file_sha256(path) for path in statement_paths(corpus_dir)}


def check_status(index_dir: Path, corpus_dir: Path | None, expected_settings: dict) -> IndexStatus:
    """Compare an index with its corpus and the code's settings, without loading vectors."""
    try:
        generation = current_generation(index_dir)
        if generation is None:
            return IndexStatus("missing", f"there is no index in {index_dir}")
        manifest = read_manifest(generation)
        verify_files(generation, manifest)
    except IndexProblem as exc:
        return IndexStatus("damaged", str(exc))
    if manifest.get("format_version") != FORMAT_VERSION:
        return IndexStatus(
            "stale",
            f"the index format is {manifest.get('format_version')}, "
            f"this ctqa reads {FORMAT_VERSION}",
        )
    built = {key: manifest.get(key) for key in expected_settings}
    for key, value in expected_settings.items():
        if built[key] != value:
            return IndexStatus("stale", f"the {key} settings changed since the index was built")
    if corpus_dir is not None:
        indexed = {d["path"]: d["sha256"] for d in manifest.get("documents", [])}
        actual = corpus_fingerprint(corpus_dir)
        if added := sorted(actual.keys() - indexed.keys()):
            return IndexStatus("stale", f"statement added: {', '.join(added)}")
        if removed := sorted(indexed.keys() - actual.keys()):
            return IndexStatus("stale", f"statement removed: {', '.join(removed)}")
        if changed := sorted(n for n in actual if actual[n] != indexed[n]):
            return IndexStatus("stale", f"statement changed: {', '.join(changed)}")
    return IndexStatus("fresh")


def verify_files(generation: Path, manifest: dict) -> None:
    """Every file the manifest lists exists and has its recorded sha256."""
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        raise IndexProblem(f"the index manifest in {generation} lists no files; rebuild it.")
    for name, expected in files.items():
        path = generation / name
        if not path.is_file():
            raise IndexProblem(f"index file {path} is missing; rebuild with `ctqa index`.")
        if file_sha256(path) != expected:
            raise IndexProblem(
                f"index file {path} is damaged (checksum mismatch); rebuild with `ctqa index`."
            )


def load_index(index_dir: Path, expected_settings: dict | None = None) -> Index:
    """Load and verify the current generation; `IndexProblem` says what is wrong."""
    import faiss

    generation = current_generation(index_dir)
    if generation is None:
        raise IndexProblem(f"there is no index in {index_dir}; build one with `ctqa index`.")
    manifest = read_manifest(generation)
    verify_files(generation, manifest)
    if manifest.get("format_version") != FORMAT_VERSION:
        raise IndexProblem(
            f"the index in {index_dir} has format {manifest.get('format_version')}, "
            f"this ctqa reads {FORMAT_VERSION}; rebuild with `ctqa index`."
        )
    if expected_settings:
        for key, value in expected_settings.items():
            if manifest.get(key) != value:
                raise IndexProblem(
                    f"the index in {index_dir} was built with other {key} settings; "
                    "rebuild with `ctqa index`."
                )
    try:
        docs = json.loads((generation / "documents.json").read_text(encoding="utf-8"))
        documents = {
            d["id"]: Document(**{k: d[k] for k in Document.__dataclass_fields__}) for d in docs
        }
        passages = []
        with open(generation / "passages.jsonl", encoding="utf-8") as handle:
            for line in handle:
                row = json.loads(line)
                doc = documents[row["doc"]]
                passages.append(
                    Passage(
                        doc.id,
                        row["paragraph"],
                        row["part"],
                        row["start"],
                        row["end"],
                        doc.text[row["start"] : row["end"]],
                        tuple(Span(s, e) for s, e in row["sentences"]),
                        tuple(Span(s, e) for s, e in row["units"]),
                    )
                )
        passage_vectors = faiss.read_index(str(generation / "passages.faiss"))
        unit_vectors = faiss.read_index(str(generation / "units.faiss"))
        lexical = LexicalIndex.load(generation / "lexical")
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
        raise IndexProblem(
            f"the index in {generation} cannot be read ({type(exc).__name__}); "
            "rebuild with `ctqa index`."
        ) from None
    counts = manifest.get("counts", {})
    n_units = sum(len(p.units) for p in passages)
    dim = manifest.get("model", {}).get("dim")
    if not (
        len(passages) == passage_vectors.ntotal == lexical.count == counts.get("passages")
        and n_units == unit_vectors.ntotal == counts.get("units")
        and passage_vectors.d == unit_vectors.d == dim
    ):
        raise IndexProblem(
            f"the index in {generation} is inconsistent (counts or dimension differ between "
            "its files); rebuild with `ctqa index`."
        )
    sizes = [len(p.units) for p in passages]
    owner = np.repeat(np.arange(len(passages)), sizes)
    first = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    return Index(
        generation,
        manifest,
        documents,
        passages,
        passage_vectors,
        unit_vectors,
        owner.astype(np.int64),
        first.astype(np.int64),
        lexical,
    )


@contextlib.contextmanager
def build_lock(index_dir: Path):
    """Only one build at a time per index folder."""
    with open(index_dir / ".lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _fsync_tree(folder: Path) -> None:
    for path in sorted(folder.rglob("*"), reverse=True):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    _fsync_dir(folder)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _reusable_vectors(index_dir: Path, settings_now: dict) -> dict[str, tuple]:
    """Vectors of the current generation, by document sha256, when its settings still hold."""
    try:
        old = load_index(index_dir, settings_now)
    except IndexProblem:
        return {}
    reuse: dict[str, tuple] = {}
    by_doc: dict[str, list[int]] = {}
    for i, p in enumerate(old.passages):
        by_doc.setdefault(p.doc_id, []).append(i)
    for doc_id, rows in by_doc.items():
        doc = old.documents[doc_id]
        first, last = rows[0], rows[-1]
        s_first = int(old.unit_first[first])
        s_last = int(old.unit_first[last]) + len(old.passages[last].units)
        reuse[doc.sha256] = (
            old.passage_vectors.reconstruct_n(first, last - first + 1),
            old.unit_vectors.reconstruct_n(s_first, s_last - s_first),
        )
    return reuse


def build_index(
    corpus_dir: Path,
    index_dir: Path,
    encoder,
    settings: Settings,
    count_tokens: Callable[[str], int],
    progress: bool = False,
) -> Path:
    """Chunk, embed and index every statement; switch `CURRENT` to the new generation.

    Statements unchanged since the current generation keep their vectors.
    """
    import faiss

    documents = load_corpus(corpus_dir)
    settings_now = index_settings(settings, encoder.name, encoder.weights_sha256, encoder.dim)
    index_dir = Path(index_dir)
    try:
        index_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise IndexProblem(
            f"cannot create the index folder {index_dir} ({exc.strerror})."
        ) from None
    with build_lock(index_dir):
        reuse = _reusable_vectors(index_dir, settings_now)
        passages: list[Passage] = []
        passage_rows, unit_rows = [], []
        to_embed: list[tuple[int, list[Passage]]] = []
        for doc in documents:
            doc_passages = chunk_document(doc, count_tokens, settings.max_passage_tokens)
            if doc.sha256 in reuse:
                p_vec, s_vec = reuse[doc.sha256]
                passage_rows.append(p_vec)
                unit_rows.append(s_vec)
            else:
                to_embed.append((len(passage_rows), doc_passages))
                passage_rows.append(None)
                unit_rows.append(None)
            passages.extend(doc_passages)
        _embed_missing(to_embed, passage_rows, unit_rows, encoder, settings, progress)
        p_matrix = np.vstack(passage_rows).astype(np.float32)
        u_matrix = np.vstack(unit_rows).astype(np.float32)

        name = f"gen-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{uuid.uuid4().hex[:8]}"
        staging = index_dir / f".{name}.tmp"
        try:
            staging.mkdir()
            _write_generation(
                staging, documents, passages, p_matrix, u_matrix, settings_now, corpus_dir, faiss
            )
            _fsync_tree(staging)
            final = index_dir / name
            os.rename(staging, final)
            pointer = index_dir / f".{CURRENT}.{uuid.uuid4().hex[:8]}.tmp"
            with open(pointer, "w", encoding="utf-8") as handle:
                handle.write(name + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(pointer, index_dir / CURRENT)
            _fsync_dir(index_dir)
        except OSError as exc:
            shutil.rmtree(staging, ignore_errors=True)
            raise IndexProblem(
                f"cannot write the index in {index_dir} ({exc.strerror or exc}); free disk space "
                "or fix the folder's permissions. The previous index is still in use."
            ) from None
        _remove_old_generations(index_dir, keep={name})
        return final


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


def _write_generation(
    folder, documents, passages, p_matrix, u_matrix, settings_now, corpus_dir, faiss
) -> None:
    # sources are stored as file names: the folder is wherever the corpus is at query time
    docs = [{**asdict(d), "source": Path(d.source).name} for d in documents]
    (folder / "documents.json").write_text(json.dumps(docs, ensure_ascii=False), encoding="utf-8")
    with open(folder / "passages.jsonl", "w", encoding="utf-8") as handle:
        for p in passages:
            handle.write(
                json.dumps(
                    {
                        "doc": p.doc_id,
                        "paragraph": p.paragraph,
                        "part": p.part,
                        "start": p.start,
                        "end": p.end,
                        "sentences": [[s.start, s.end] for s in p.sentences],
                        "units": [[u.start, u.end] for u in p.units],
                    }
                )
                + "\n"
            )
    for name, matrix in (("passages.faiss", p_matrix), ("units.faiss", u_matrix)):
        flat = faiss.IndexFlatIP(matrix.shape[1])
        flat.add(matrix)
        faiss.write_index(flat, str(folder / name))
    LexicalIndex.build([p.text for p in passages]).save(folder / "lexical")
    files = {
        str(path.relative_to(folder)): file_sha256(path)
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }
    manifest = {
        **settings_now,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "corpus": str(Path(corpus_dir).name),
        "documents": [
            {"id": d.id, "path": Path(d.source).name, "sha256": d.sha256} for d in documents
        ],
        "counts": {
            "documents": len(documents),
            "passages": len(passages),
            "units": int(u_matrix.shape[0]),
        },
        "files": files,
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")


def _remove_old_generations(index_dir: Path, keep: set[str]) -> None:
    """Delete generations other than `keep` and leftovers of interrupted builds."""
    for path in index_dir.iterdir():
        if path.name in keep or path.name in (CURRENT, ".lock"):
            continue
        if path.name.startswith(("gen-", ".gen-")) and path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        elif path.name.startswith(f".{CURRENT}.") and path.is_file():
            path.unlink(missing_ok=True)


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
    is missing, stale or damaged."""
    encoder = encoder_factory()
    expected = index_settings(settings, encoder.name, encoder.weights_sha256, encoder.dim)
    if corpus_dir is not None:
        statement_paths(corpus_dir)  # a missing or empty corpus folder is reported first
        status = check_status(index_dir, corpus_dir, expected)
        if not status.fresh:
            if log:
                log(f"Indexing {corpus_dir} ({status.reason})…")
            build_index(corpus_dir, index_dir, encoder, settings, count_tokens, progress)
    return load_index(index_dir, expected)
