"""The vectors of an index in FAISS: exact (flat) or IVF with float16 codes, read back whole.

>>> rows = np.eye(3, dtype=np.float32)
>>> vector_rows(vector_index(rows, {"index": "flat"}))[1]
array([0., 1., 0.], dtype=float32)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .config import passive_openmp

# How IVF indexes store vectors, and the k-means that places their cells (`vector_index`): 39
# training vectors a cell (FAISS's minimum, below which it warns) for 10 rounds.
IVF_CODES = "fp16"


KMEANS_POINTS_PER_CELL = 39


KMEANS_ROUNDS = 10


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
    # the minimum sample and 10 rounds, not FAISS's 64 a cell for 25: training stays a small
    # part of a large build, and recall against exact search holds (`make bench` prints it)
    ivf.cp.niter = KMEANS_ROUNDS
    size = min(n, KMEANS_POINTS_PER_CELL * cells)
    sample = np.random.default_rng(0).choice(n, size=size, replace=False)
    ivf.train(matrix[np.sort(sample)])
    ivf.add(matrix)
    return ivf


def vector_rows(vectors) -> np.ndarray:
    """Every vector of a FAISS index as one float32 (n, dim) array, row i holding vector i: a
    view of a flat index's own storage, or for IVF a decoded copy made once at load. A
    passage's units are consecutive rows, read together without FAISS. (float32 even where IVF
    stores float16: converting the rows a question reads on every question would cost more.)

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


def read_vectors(path: Path):
    passive_openmp()
    import faiss

    vectors = faiss.read_index(str(path))
    inner_product = vectors.metric_type == faiss.METRIC_INNER_PRODUCT
    if not (_known_kind(vectors) and inner_product and vectors.is_trained):
        raise ValueError(f"{path.name} is not a flat or IVF inner-product index")
    return vectors
