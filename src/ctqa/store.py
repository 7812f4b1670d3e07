"""One generation of the index on disk: written whole, and loaded and verified into an `Index`.

A generation folder holds:

    manifest.json     format, model and weights hash, dimension, settings, documents, counts,
                      sha256 of every other file, and a checksum of the manifest itself
    documents.json    each statement's id, title, date, file name, sha256 and text
    passages.jsonl    each passage's document, paragraph, offsets, sentence and unit offsets
    passages.faiss    inner-product index of passage vectors
    units.faiss       inner-product index of the passages' units (sentences and clauses), in
                      passage order
    lexical/          BM25 index of the passages (bm25s files: numpy arrays and JSON)

Everything is verified before a question is answered: a missing, damaged, inconsistent or
outdated generation raises `IndexProblem` with one sentence saying what is wrong and what to do.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .chunking import Passage, Span
from .config import passive_openmp
from .corpus import Document
from .errors import IndexDamaged, IndexOutdated, IndexProblem
from .files import file_sha256, write_synced
from .lexical import LexicalIndex
from .manifest import (
    REBUILD,
    current_generation,
    manifest_checksum,
    read_manifest,
    settings_difference,
    verify_files,
)
from .vectors import read_vectors, vector_index, vector_rows


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

    def unit_slice(self, first: int, last: int) -> slice:
        """The unit rows of passages `first` to `last` (inclusive): a passage's units are
        consecutive rows, in passage order."""
        start = int(self.unit_first[first])
        return slice(start, int(self.unit_first[last] + self.unit_count[last]))

    def units_of(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The unit rows of passages `rows`, one passage's after another's, and where each
        passage's units start in that list (every passage has at least one unit)."""
        counts = self.unit_count[rows]
        starts = np.cumsum(counts) - counts
        shift = np.repeat(self.unit_first[rows] - starts, counts)
        return np.arange(int(counts.sum())) + shift, starts


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
        passage_vectors = read_vectors(generation / "passages.faiss")
        unit_vectors = read_vectors(generation / "units.faiss")
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
    return Index(
        folder=generation,
        manifest=manifest,
        documents=documents,
        passages=passages,
        passage_vectors=passage_vectors,
        unit_vectors=unit_vectors,
        lexical=lexical,
    )


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
                    doc_id=doc.id,
                    paragraph=row["paragraph"],
                    part=row["part"],
                    start=row["start"],
                    end=row["end"],
                    text=doc.text[row["start"] : row["end"]],
                    sentences=tuple(Span(s, e) for s, e in row["sentences"]),
                    units=tuple(Span(s, e) for s, e in row["units"]),
                )
            )
    return documents, passages


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


@dataclass
class Contents:
    """What a new generation holds, and how much of it was embedded anew."""

    passages: list[Passage]
    passage_matrix: np.ndarray
    unit_matrix: np.ndarray
    embedded: int  # statements chunked and embedded by this build
    reused: int  # statements whose passages and vectors came from the current generation


def write_generation(folder: Path, documents, contents: Contents, shaping, corpus_dir) -> None:
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
        write_synced(folder / name, memoryview(faiss.serialize_index(vectors)))
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
        "corpus": Path(corpus_dir).resolve().name,  # "seeds", even when given as "."
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
