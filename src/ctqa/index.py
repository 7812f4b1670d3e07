"""Build, save, load and verify the index of a corpus.

An index folder holds generations; `CURRENT` names the one in use. A build writes a complete
new generation beside it, flushes it to disk and switches `CURRENT` with an atomic rename, so a
reader sees the old generation or the new one, never a mix, and an interrupted build leaves
the previous one in use. The generation before the current one is kept, so that a reader that
read `CURRENT` just before a switch can still load it; older ones are removed. A generation holds:

    manifest.json     format, model and weights hash, dimension, settings, documents, counts,
                      sha256 of every other file, and a checksum of the manifest itself
    documents.json    each statement's id, title, date, file name, sha256 and text
    passages.jsonl    each passage's document, paragraph, offsets, sentence and unit offsets
    passages.faiss    inner-product index of passage vectors
    units.faiss       inner-product index of the passages' units (sentences and clauses), in
                      passage order
    lexical/          BM25 index of the passages (bm25s files: numpy arrays and JSON)

Everything is verified before a question is answered: a missing, damaged, inconsistent or
outdated index raises `IndexProblem` with one sentence saying what is wrong and what to do.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import hashlib
import json
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Generic, TypeVar

import numpy as np

from .chunking import SPLITTER_NAME, UNITS_NAME, Passage, Span, chunk_documents
from .config import Settings, passive_openmp
from .corpus import Document, file_sha256, load_corpus, statement_paths
from .errors import CtqaError, IndexProblem
from .lexical import LEXICAL_SETTINGS, LexicalIndex

FORMAT_VERSION = 1
CURRENT = "CURRENT"
# The manifest keys that shape an index's content (see `index_settings`).
SHAPING_KEYS = ("format_version", "model", "chunking", "lexical", "vectors")
REBUILD = "rebuild with `ctqa index`"
VECTOR_INDEXES = ("auto", "flat", "ivf")
# How IVF indexes store vectors, and the k-means that places their cells (`vector_index`): 39
# training vectors a cell (FAISS's minimum, below which it warns) for 10 rounds.
IVF_CODES = "fp16"
KMEANS_POINTS_PER_CELL = 39
KMEANS_ROUNDS = 10


class IndexDamaged(IndexProblem):
    """An index file is missing, damaged or inconsistent with the others."""


class IndexOutdated(IndexProblem):
    """The index was built with another format, model or settings than this ctqa uses."""


class IndexWriteError(IndexProblem):
    """A build could not write its generation (disk full, read-only folder)."""


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
    """A loaded generation: everything a query needs, held in memory."""

    folder: Path
    manifest: dict
    documents: dict[str, Document]
    passages: list[Passage]
    passage_vectors: object  # faiss.IndexFlatIP, or IVF (see `vector_index`)
    unit_vectors: object  # the same, one row per unit, in passage order
    lexical: LexicalIndex
    # Made from the above, for the questions' hot path:
    unit_count: np.ndarray = field(init=False, repr=False)  # passage number -> its units
    unit_first: np.ndarray = field(init=False, repr=False)  # passage number -> first unit row
    unit_owner: np.ndarray = field(init=False, repr=False)  # unit row -> passage number
    passage_rows: np.ndarray = field(init=False, repr=False)  # every vector (`vector_rows`)
    unit_rows: np.ndarray = field(init=False, repr=False)

    def __post_init__(self):
        self.unit_count = np.array([len(p.units) for p in self.passages], dtype=np.int64)
        self.unit_first = np.cumsum(self.unit_count) - self.unit_count
        self.unit_owner = np.repeat(np.arange(len(self.passages), dtype=np.int64), self.unit_count)
        self.passage_rows = vector_rows(self.passage_vectors)
        self.unit_rows = vector_rows(self.unit_vectors)


def index_settings(settings: Settings, model_name: str, weights_sha256: str, dim: int) -> dict:
    """Everything that shapes an index's content; a change makes the index stale. An unknown
    `vector_index` is refused here, before a build embeds anything."""
    if settings.vector_index not in VECTOR_INDEXES:
        raise CtqaError(
            f"unknown vector index {settings.vector_index!r}; use one of "
            f"{', '.join(VECTOR_INDEXES)}."
        )
    return {
        "format_version": FORMAT_VERSION,
        "model": {"name": model_name, "weights_sha256": weights_sha256, "dim": dim},
        "chunking": {
            "max_passage_tokens": settings.max_passage_tokens,
            "splitter": SPLITTER_NAME,
            "units": UNITS_NAME,
        },
        "lexical": LEXICAL_SETTINGS,
        "vectors": {
            "index": settings.vector_index,
            "ivf_from": settings.ivf_from,
            "ivf_codes": IVF_CODES,
        },
    }


def vector_index(matrix: np.ndarray, how: dict):
    """A FAISS inner-product index over the rows of `matrix`: exact (flat), or IVF as `how`
    (an index's "vectors" setting, checked by `index_settings`) asks. IVF stores float16:
    half the memory to scan, and cosines within about 1e-3 of float32.

    >>> rows = np.eye(4, dtype=np.float32)
    >>> type(vector_index(rows, {"index": "auto", "ivf_from": 50_000})).__name__
    'IndexFlatIP'
    """
    passive_openmp()
    import faiss

    n, dim = matrix.shape
    kind = how.get("index", "flat")
    if kind == "auto":
        kind = "ivf" if n >= how.get("ivf_from", 50_000) else "flat"
    # fewer than 2 cells is a flat index with extra steps
    cells = int(min(4096, 4 * np.sqrt(n), n // KMEANS_POINTS_PER_CELL))
    if kind == "flat" or cells < 2:
        flat = faiss.IndexFlatIP(dim)
        flat.add(matrix)
        return flat
    quantizer = faiss.IndexFlatIP(dim)
    # the vectors themselves, not their residuals (nothing to add back when decoding)
    fp16 = faiss.ScalarQuantizer.QT_fp16
    ivf = faiss.IndexIVFScalarQuantizer(
        quantizer, dim, cells, fp16, faiss.METRIC_INNER_PRODUCT, False
    )
    # the minimum sample and 10 rounds, not 64 a cell for 25: at 943,953 units training takes
    # 37 s instead of 140, and recall@5 at nprobe 64 stays 0.99+ (0.997)
    ivf.cp.niter = KMEANS_ROUNDS
    size = min(n, KMEANS_POINTS_PER_CELL * cells)
    sample = np.random.default_rng(0).choice(n, size=size, replace=False)
    ivf.train(matrix[np.sort(sample)])
    ivf.add(matrix)
    return ivf


def vector_rows(vectors) -> np.ndarray:
    """Every vector of a FAISS index as one float32 (n, dim) array, row i holding vector i: a
    view of a flat index's own storage, or for IVF a decoded copy (5 s for 943,953 vectors). A
    passage's units are consecutive rows, read together without FAISS. (float32 even where IVF
    stores float16: numpy takes 1.6 ms to convert the ~2,000 rows a question reads.)

    >>> rows = np.eye(3, dtype=np.float32)
    >>> vector_rows(vector_index(rows, {"index": "flat"}))[1]
    array([0., 1., 0.], dtype=float32)
    """
    import faiss

    n, dim = vectors.ntotal, vectors.d
    if n == 0:
        return np.zeros((0, dim), dtype=np.float32)
    if isinstance(vectors, faiss.IndexFlat):
        return np.asarray(_Storage(vectors, faiss.rev_swig_ptr(vectors.get_xb(), n * dim)))
    return vectors.reconstruct_n(0, n)


class _Storage:
    """A flat index's vectors as a read-only array that keeps the index alive (a bare view of
    FAISS memory would outlive it)."""

    def __init__(self, vectors, flat: np.ndarray):
        self.vectors = vectors
        self.__array_interface__ = {
            "shape": (vectors.ntotal, vectors.d),
            "typestr": flat.dtype.str,
            "data": (flat.__array_interface__["data"][0], True),
            "version": 3,
        }


def _known_kind(vectors) -> bool:
    """Flat, or IVF holding the vectors whole (float32, or float16 as `vector_index` makes)."""
    import faiss

    if isinstance(vectors, faiss.IndexFlat | faiss.IndexIVFFlat):
        return True
    return (
        isinstance(vectors, faiss.IndexIVFScalarQuantizer)
        and vectors.sq.qtype == faiss.ScalarQuantizer.QT_fp16
    )


def search_params(vectors, nprobe: int):
    """FAISS search parameters: how many cells an IVF index searches (None for flat)."""
    import faiss

    return faiss.SearchParametersIVF(nprobe=nprobe) if isinstance(vectors, faiss.IndexIVF) else None


# ---- reading ---------------------------------------------------------------------------------


def current_generation(index_dir: Path) -> Path | None:
    """Folder of the generation `CURRENT` names, or None when there is none. Cheap: one small
    read, so a long-running reader can call it per question to notice a new generation."""
    try:
        name = (Path(index_dir) / CURRENT).read_text(encoding="utf-8").strip()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise IndexDamaged(f"{index_dir}/{CURRENT} cannot be read ({exc}); {REBUILD}.") from None
    if not name.startswith("gen-") or "/" in name or any(c.isspace() for c in name):
        raise IndexDamaged(f"{index_dir}/{CURRENT} is damaged; {REBUILD}.")
    return Path(index_dir) / name


def manifest_checksum(manifest: dict) -> str:
    """sha256 of the manifest's content without its own `checksum` entry."""
    body = {k: v for k, v in manifest.items() if k != "checksum"}
    text = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def read_manifest(generation: Path) -> dict:
    """The generation's manifest, checked: readable, a format this ctqa reads, its checksum."""
    path = generation / "manifest.json"
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise IndexDamaged(
            f"the index at {generation.parent} names generation {generation.name}, which is "
            f"missing or has no manifest; {REBUILD}."
        ) from None
    except (OSError, ValueError) as exc:
        raise IndexDamaged(f"the index manifest {path} is damaged ({exc}); {REBUILD}.") from None
    if not isinstance(manifest, dict):
        raise IndexDamaged(f"the index manifest {path} is damaged (not an object); {REBUILD}.")
    _check_format(manifest, generation)
    # manifests written before the checksum existed have none; their files are still checked
    if "checksum" in manifest and manifest["checksum"] != manifest_checksum(manifest):
        raise IndexDamaged(f"the index manifest {path} is damaged (checksum mismatch); {REBUILD}.")
    return manifest


def _check_format(manifest: dict, generation: Path) -> None:
    version = manifest.get("format_version")
    if version == FORMAT_VERSION:
        return
    if isinstance(version, int) and not isinstance(version, bool) and version > FORMAT_VERSION:
        raise IndexOutdated(
            f"the index in {generation.parent} was written by a newer ctqa (index format "
            f"{version}; this one reads {FORMAT_VERSION}); {REBUILD} or upgrade ctqa."
        )
    if isinstance(version, int) and not isinstance(version, bool) and version > 0:
        raise IndexOutdated(
            f"the index in {generation.parent} has the old format {version} (this ctqa reads "
            f"{FORMAT_VERSION}); {REBUILD}."
        )
    raise IndexDamaged(
        f"the index manifest in {generation} is damaged (format {version!r}); {REBUILD}."
    )


def verify_files(generation: Path, manifest: dict) -> None:
    """Every file the manifest lists exists and has its recorded sha256."""
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        raise IndexDamaged(f"the index manifest in {generation} lists no files; {REBUILD}.")
    for name, expected in files.items():
        path = generation / name
        if ".." in Path(name).parts or not path.is_file():
            raise IndexDamaged(f"index file {path} is missing; {REBUILD}.")
        if file_sha256(path) != expected:
            raise IndexDamaged(f"index file {path} is damaged (checksum mismatch); {REBUILD}.")


def settings_difference(built: dict, expected: dict) -> str | None:
    """How the settings an index was built with differ from `expected`, in words; None if not.

    >>> settings_difference({"model": {"name": "a", "weights_sha256": "1" * 64, "dim": 4}},
    ...                     {"model": {"name": "a", "weights_sha256": "2" * 64, "dim": 4}})
    'the model a (weights 111111111111…, 4 dimensions), not a (weights 222222222222…, 4 dimensions)'
    """
    for key, wanted in expected.items():
        have = built.get(key)
        if have == wanted:
            continue
        if key == "model" and isinstance(have, dict) and isinstance(wanted, dict):
            return f"the model {_model_words(have)}, not {_model_words(wanted)}"
        return f"other {key} settings ({_compact(have)}, not {_compact(wanted)})"
    return None


def _model_words(model: dict) -> str:
    sha = str(model.get("weights_sha256"))[:12]
    return f"{model.get('name')} (weights {sha}…, {model.get('dim')} dimensions)"


def _compact(value: object) -> str:
    return json.dumps(value, sort_keys=True)[:160]


def corpus_fingerprint(corpus_dir: Path) -> dict[str, str]:
    """File name -> sha256 of every statement in the corpus folder."""
    return {path.name: file_sha256(path) for path in statement_paths(corpus_dir)}


def corpus_changes(indexed: dict[str, str], actual: dict[str, str]) -> str:
    """Statements added, removed or changed, in words; empty when none.

    >>> corpus_changes({"a.txt": "1", "b.txt": "2"}, {"a.txt": "9", "c.txt": "3", "d.txt": "4"})
    'statements added: c.txt, d.txt; statement removed: b.txt; statement changed: a.txt'
    """
    parts = []
    for verb, names in (
        ("added", sorted(actual.keys() - indexed.keys())),
        ("removed", sorted(indexed.keys() - actual.keys())),
        ("changed", sorted(n for n in actual.keys() & indexed.keys() if actual[n] != indexed[n])),
    ):
        if names:
            noun = "statement" if len(names) == 1 else "statements"
            shown = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if names[10:] else "")
            parts.append(f"{noun} {verb}: {shown}")
    return "; ".join(parts)


def check_status(index_dir: Path, corpus_dir: Path | None, expected_settings: dict) -> IndexStatus:
    """Compare an index with its corpus and the code's settings, without loading vectors.
    Changes nothing on disk."""
    try:
        generation = current_generation(index_dir)
        if generation is None:
            return IndexStatus("missing", f"there is no index in {index_dir}")
        manifest = read_manifest(generation)
        verify_files(generation, manifest)
    except IndexOutdated as exc:
        return IndexStatus("stale", str(exc))
    except IndexProblem as exc:
        return IndexStatus("damaged", str(exc))
    if (difference := settings_difference(manifest, expected_settings)) is not None:
        return IndexStatus("stale", f"it was built with {difference}")
    if corpus_dir is not None:
        documents = manifest.get("documents", [])
        indexed = {d["path"]: d["sha256"] for d in documents if isinstance(d, dict)}
        if changes := corpus_changes(indexed, corpus_fingerprint(corpus_dir)):
            return IndexStatus("stale", changes)
    return IndexStatus("fresh")


def load_index(index_dir: Path, expected_settings: dict | None = None) -> Index:
    """Load and verify the current generation; `IndexProblem` says what is wrong.

    A build that switches `CURRENT` and removes generations while this reads is not a
    problem: the load starts again on the generation `CURRENT` now names.
    """
    index_dir = Path(index_dir)
    attempts = 3
    for attempt in range(attempts):
        generation = current_generation(index_dir)
        if generation is None:
            raise IndexProblem(f"there is no index in {index_dir}; build one with `ctqa index`.")
        try:
            return load_generation(generation, expected_settings)
        except IndexDamaged:
            if attempt == attempts - 1 or current_generation(index_dir) == generation:
                raise
    raise AssertionError("unreachable")


def load_generation(generation: Path, expected_settings: dict | None = None) -> Index:
    """Load and verify one generation folder."""
    manifest = read_manifest(generation)
    verify_files(generation, manifest)
    if expected_settings and (diff := settings_difference(manifest, expected_settings)):
        raise IndexOutdated(f"the index in {generation.parent} was built with {diff}; {REBUILD}.")
    try:
        documents, passages = _read_passages(generation)
        passage_vectors = _read_vectors(generation / "passages.faiss")
        unit_vectors = _read_vectors(generation / "units.faiss")
        lexical = LexicalIndex.load(generation / "lexical")
    except (OSError, ValueError, KeyError, TypeError, AttributeError, RuntimeError) as exc:
        raise IndexDamaged(
            f"the index in {generation} cannot be read ({type(exc).__name__}: "
            f"{str(exc)[:80]}); {REBUILD}."
        ) from None
    _check_consistent(generation, manifest, documents, passages, passage_vectors, unit_vectors)
    if lexical.count != len(passages):
        raise IndexDamaged(
            f"the index in {generation} is inconsistent (its lexical index holds "
            f"{lexical.count} passages, not {len(passages)}); {REBUILD}."
        )
    return Index(generation, manifest, documents, passages, passage_vectors, unit_vectors, lexical)


def _read_passages(generation: Path) -> tuple[dict[str, Document], list[Passage]]:
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
    return documents, passages


def _read_vectors(path: Path):
    passive_openmp()
    import faiss

    vectors = faiss.read_index(str(path))
    inner_product = vectors.metric_type == faiss.METRIC_INNER_PRODUCT
    if not (_known_kind(vectors) and inner_product and vectors.is_trained):
        raise ValueError(f"{path.name} is not a flat or IVF inner-product index")
    return vectors


def _check_consistent(generation, manifest, documents, passages, passage_vectors, unit_vectors):
    """Counts, dimensions and offsets agree between the files and the manifest."""
    counts = manifest.get("counts", {})
    n_units = sum(len(p.units) for p in passages)
    dim = manifest.get("model", {}).get("dim")
    problems = []
    if not len(passages) == passage_vectors.ntotal == counts.get("passages"):
        problems.append(
            f"{len(passages)} passages, {passage_vectors.ntotal} passage vectors, "
            f"{counts.get('passages')} in the manifest"
        )
    if not n_units == unit_vectors.ntotal == counts.get("units"):
        problems.append(
            f"{n_units} units, {unit_vectors.ntotal} unit vectors, {counts.get('units')} in the "
            "manifest"
        )
    if not passage_vectors.d == unit_vectors.d == dim:
        problems.append(
            f"vectors of {passage_vectors.d} and {unit_vectors.d} dimensions, not {dim}"
        )
    if not problems and not all(_within(p, documents[p.doc_id]) for p in passages):
        problems.append("a passage's offsets fall outside its statement")
    if problems:
        raise IndexDamaged(
            f"the index in {generation} is inconsistent ({'; '.join(problems)}); {REBUILD}."
        )


def _within(p: Passage, doc: Document) -> bool:
    if not 0 <= p.start < p.end <= len(doc.text):
        return False
    return all(p.start <= s.start < s.end <= p.end for s in p.sentences + p.units)


# ---- a long-running reader -------------------------------------------------------------------

T = TypeVar("T")


class LiveIndex(Generic[T]):
    """What `make` builds from the current generation, for a reader that runs for days.

    `get()` checks `CURRENT` (one small read) and, when a build has switched it, loads the new
    generation and swaps it in; a caller holds on to what `get()` returned for a whole search,
    so each search completes on one generation. While one thread loads a new generation the
    others keep getting the old one. A new generation that fails to load is reported once
    through `log` and the old one keeps serving.

    >>> live = LiveIndex(index_dir, load_index(index_dir), make=lambda ix: ix)  # doctest: +SKIP
    >>> live.get().folder.name                                                 # doctest: +SKIP
    'gen-20261127T002359-2234341a'
    """

    def __init__(self, index_dir: Path, first: Index, make: Callable[[Index], T], log=None):
        self.index_dir = Path(index_dir)
        self._make = make
        self._expected = {key: first.manifest.get(key) for key in SHAPING_KEYS}
        self._log = log or (lambda message: None)
        self._loading = threading.Lock()
        self._refused: str | None = None
        self._served = (first.folder.name, make(first))  # one tuple: swapped in one step

    @property
    def generation(self) -> str:
        """Name of the generation `get()` serves."""
        return self._served[0]

    def get(self) -> T:
        name, value = self._served
        wanted = self._wanted()
        if wanted is None or wanted in (name, self._refused):
            return value
        if not self._loading.acquire(blocking=False):
            return value
        try:
            return self._reload()
        finally:
            self._loading.release()

    def _wanted(self) -> str | None:
        try:
            generation = current_generation(self.index_dir)
        except IndexProblem:
            return None
        return generation.name if generation is not None else None

    def _reload(self) -> T:
        name, value = self._served
        wanted = self._wanted()
        if wanted is None or wanted in (name, self._refused):
            return value
        try:
            index = load_index(self.index_dir, self._expected)
        except IndexProblem as exc:
            self._refused = wanted
            self._log(f"the new index generation {wanted} is not used: {exc}")
            return value
        self._served = (index.folder.name, self._make(index))
        return self._served[1]


# ---- building --------------------------------------------------------------------------------


@contextlib.contextmanager
def build_lock(index_dir: Path):
    """Only one build at a time per index folder (released by the kernel if a build dies)."""
    try:
        handle = open(index_dir / ".lock", "a")  # noqa: SIM115 (closed by the with below)
    except OSError as exc:
        raise IndexWriteError(_write_failure(index_dir, exc, _previous_name(index_dir))) from None
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@dataclass
class _Contents:
    """What a new generation holds, and how much of it was embedded anew."""

    passages: list[Passage]
    passage_matrix: np.ndarray
    unit_matrix: np.ndarray
    embedded: int  # statements chunked and embedded by this build
    reused: int  # statements whose passages and vectors came from the current generation


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
        raise IndexWriteError(_write_failure(index_dir, exc, None)) from None
    with build_lock(index_dir):
        _remove_leftovers(index_dir)
        previous = _previous_name(index_dir)
        if only_if_stale and check_status(index_dir, corpus_dir, shaping).fresh:
            return index_dir / previous
        contents = _contents(
            documents, _reusable(index_dir, shaping), encoder, settings, count_tokens, progress
        )
        final = _write_and_switch(index_dir, documents, contents, shaping, corpus_dir, previous)
        _remove_old_generations(index_dir, keep={final.name, previous})
        return final


def _previous_name(index_dir: Path) -> str | None:
    try:
        generation = current_generation(index_dir)
    except IndexProblem:
        return None
    return generation.name if generation is not None else None


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
        u_first = int(old.unit_first[first])
        u_end = int(old.unit_first[last] + old.unit_count[last])
        reuse[old.documents[doc_id].sha256] = (
            old.passages[first : last + 1],
            p_all[first : last + 1],
            u_all[u_first:u_end],
        )
    return reuse


def _contents(documents, reuse, encoder, settings, count_tokens, progress) -> _Contents:
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
    return _Contents(
        passages,
        np.ascontiguousarray(np.vstack(passage_rows), dtype=np.float32),
        np.ascontiguousarray(np.vstack(unit_rows), dtype=np.float32),
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


def _write_and_switch(index_dir, documents, contents, shaping, corpus_dir, previous) -> Path:
    """Write the generation under a temporary name, flush it, rename it and point `CURRENT`
    at it; on failure remove what was written and leave `CURRENT` as it was."""
    name = f"gen-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{uuid.uuid4().hex[:8]}"
    staging = index_dir / f".{name}.tmp"
    final = index_dir / name
    pointer = index_dir / f".{CURRENT}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        staging.mkdir()
        _write_generation(staging, documents, contents, shaping, corpus_dir)
        _fsync_tree(staging)
        os.rename(staging, final)
        _write_synced(pointer, (name + "\n").encode("utf-8"))
        os.replace(pointer, index_dir / CURRENT)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(final, ignore_errors=True)
        with contextlib.suppress(OSError):
            pointer.unlink(missing_ok=True)
        raise IndexWriteError(_write_failure(index_dir, exc, previous)) from None
    # the switch is done; a failed directory flush only weakens durability on power loss
    with contextlib.suppress(OSError):
        _fsync_dir(index_dir)
    return final


def _write_failure(index_dir: Path, exc: OSError, previous: object) -> str:
    """One sentence: what stopped the build, what to do, and what still serves."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        cause, fix = "the disk is full", "free disk space"
    elif exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        cause = "the folder is read-only"
        fix = "make it writable (or pass another --index folder)"
    else:
        cause = "the write failed"
        fix = "free disk space or fix the folder's permissions"
    detail = exc.strerror or str(exc)
    rest = "the previous index is still in use" if previous else "no index was written"
    return (
        f"cannot write the index in {index_dir}: {cause} ({detail}); {fix} and run "
        f"`ctqa index` again; {rest}."
    )


def _write_synced(path: Path, data: bytes | memoryview) -> None:
    """Write a file and flush it to disk; every write error surfaces as `OSError`."""
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _write_generation(folder: Path, documents, contents: _Contents, shaping, corpus_dir) -> None:
    passive_openmp()
    import faiss

    passages = contents.passages
    # sources are stored as file names: the folder is wherever the corpus is at query time
    docs = [{**asdict(d), "source": Path(d.source).name} for d in documents]
    (folder / "documents.json").write_text(json.dumps(docs, ensure_ascii=False), encoding="utf-8")
    with open(folder / "passages.jsonl", "w", encoding="utf-8") as handle:
        for p in passages:
            handle.write(json.dumps(_passage_row(p)) + "\n")
    for name, matrix in (
        ("passages.faiss", contents.passage_matrix),
        ("units.faiss", contents.unit_matrix),
    ):
        vectors = vector_index(matrix, shaping["vectors"])
        # serialised in memory and written by Python: faiss's own writer can lose a failed
        # write (disk full) without an error
        _write_synced(folder / name, memoryview(faiss.serialize_index(vectors)))
        del vectors
    LexicalIndex.build([p.text for p in passages]).save(folder / "lexical")
    files = {
        str(path.relative_to(folder)): file_sha256(path)
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }
    manifest = {
        **shaping,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "corpus": str(Path(corpus_dir).name),
        "documents": [
            {"id": d.id, "path": Path(d.source).name, "sha256": d.sha256} for d in documents
        ],
        "counts": {
            "documents": len(documents),
            "passages": len(passages),
            "units": int(contents.unit_matrix.shape[0]),
        },
        "build": {"embedded": contents.embedded, "reused": contents.reused},
        "files": files,
    }
    manifest["checksum"] = manifest_checksum(manifest)
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")


def _passage_row(p: Passage) -> dict:
    return {
        "doc": p.doc_id,
        "paragraph": p.paragraph,
        "part": p.part,
        "start": p.start,
        "end": p.end,
        "sentences": [[s.start, s.end] for s in p.sentences],
        "units": [[u.start, u.end] for u in p.units],
    }


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


def _remove_leftovers(index_dir: Path) -> None:
    """Remove what interrupted builds left: temporary generations and pointer files. Runs
    under the build lock, so no build is writing them."""
    for path in index_dir.iterdir():
        if path.name.startswith(".gen-") and path.name.endswith(".tmp"):
            shutil.rmtree(path, ignore_errors=True)
        elif path.name.startswith(f".{CURRENT}.") and path.name.endswith(".tmp"):
            with contextlib.suppress(OSError):
                path.unlink()


def _remove_old_generations(index_dir: Path, keep: set[str | None]) -> None:
    """Delete generations other than `keep` (the new one and the one it replaced: a reader
    may have just read its name) and leftovers of interrupted builds."""
    _remove_leftovers(index_dir)
    for path in index_dir.iterdir():
        if path.name.startswith("gen-") and path.name not in keep and path.is_dir():
            shutil.rmtree(path, ignore_errors=True)


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
            except IndexWriteError as exc:
                return _previous_or_raise(index_dir, expected, exc, status, log)
    return load_index(index_dir, expected)


def _previous_or_raise(index_dir, expected, exc: IndexWriteError, status, log) -> Index:
    try:
        index = load_index(index_dir, expected)
    except IndexProblem:
        raise exc from None
    if log:
        log(f"ctqa: warning: {exc} Answering from it meanwhile; it misses: {status.reason}.")
    return index
