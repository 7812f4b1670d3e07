"""The vectors of an index in FAISS: exact (flat), or IVF that scans 4-bit codes and re-scores
what it finds on float16 copies of the vectors; either is read back whole.

>>> rows = np.eye(3, dtype=np.float32)
>>> vector_rows(vector_index(rows, {"index": "flat"}))[1]
array([0., 1., 0.], dtype=float32)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .config import passive_openmp

# How IVF indexes store vectors (`vector_index`), named in the manifest: a cell's vectors are
# scanned as product-quantizer codes, 4 bits for every 2 dimensions, with FAISS's fast-scan
# kernels, and what they find is re-scored on the float16 vectors.
IVF_CODES = "pq4-fastscan+fp16"
DIMS_PER_CODE = 2
CODE_BITS = 4


# The k-means that places the cells (and trains each code's 16 centroids): 39 training vectors
# a centroid (FAISS's minimum, below which it warns) for 10 rounds.
KMEANS_POINTS_PER_CELL = 39


KMEANS_ROUNDS = 10


# Re-scoring: a search of k re-scores REFINE_FACTOR * max(k, REFINE_FLOOR) of the best codes.
# The floor keeps a short search as sure as ctqa's own (50 passages, 150 units): many copies of
# one sentence, as in a corpus of boilerplate, would otherwise fill a short list. Chosen with
# SQuAD training questions over `make bench`'s 100,000 passages (`eval/bench/choose_refine.py`
# prints the recall of each choice against float16 IVF's).
REFINE_FACTOR = 16


REFINE_FLOOR = 50


def vector_index(matrix: np.ndarray, how: dict):
    """A FAISS inner-product index over the rows of `matrix`: exact (flat), or IVF as `how`
    (an index's "vectors" setting, checked by `index_settings`) asks. IVF scans 96 bytes a
    vector (at 384 dimensions) instead of 768 and re-scores what it finds on the vectors it
    also keeps in float16 (cosines within about 1e-3 of float32); search it with `nearest`.

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
    codes = dim // DIMS_PER_CODE if dim % DIMS_PER_CODE == 0 else dim
    scan = faiss.IndexIVFPQFastScan(
        quantizer, dim, cells, codes, CODE_BITS, faiss.METRIC_INNER_PRODUCT
    )
    scan.by_residual = True  # codes for the offset from the cell's centre: finer, same speed
    # the minimum sample and 10 rounds, not FAISS's 64 a cell for 25: training stays a small
    # part of a large build, and recall against exact search holds (`make bench` prints it)
    scan.cp.niter = KMEANS_ROUNDS
    scan.pq.cp.niter = KMEANS_ROUNDS
    stored = faiss.IndexScalarQuantizer(
        dim, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT
    )
    ivf = faiss.IndexRefine(scan, stored)
    size = min(n, KMEANS_POINTS_PER_CELL * max(cells, 2**CODE_BITS))
    sample = np.random.default_rng(0).choice(n, size=size, replace=False)
    ivf.train(matrix[np.sort(sample)])
    ivf.add(matrix)
    return ivf


def vector_rows(vectors) -> np.ndarray:
    """Every vector of a FAISS index as one float32 (n, dim) array, row i holding vector i: a
    view of a flat index's own storage, or for IVF a copy decoded once at load (of its float16
    vectors). A passage's units are consecutive rows, read together without FAISS. (float32
    even where IVF stores float16: converting the rows a question reads on every question would
    cost more.)

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


def nearest(
    vectors,
    queries: np.ndarray,
    k: int,
    nprobe: int,
    factor: int = REFINE_FACTOR,
    floor: int = REFINE_FLOOR,
) -> np.ndarray:
    """Row numbers of the `k` vectors with the highest inner product with each query, best
    first (-1 where there are fewer); an IVF index searches `nprobe` of its cells and re-scores
    `factor * max(k, floor)` of what it finds (`eval/bench/choose_refine.py` compares others).

    >>> rows = np.eye(3, dtype=np.float32)
    >>> nearest(vector_index(rows, {"index": "flat"}), rows[1:2], 2, nprobe=1)[0].tolist()
    [1, 0]
    """
    import faiss

    if isinstance(vectors, faiss.IndexRefine):
        # FAISS 1.15's fast-scan returns unrelated rows when asked for more cells than it has
        nprobe = min(nprobe, faiss.extract_index_ivf(vectors).nlist)
        cells = faiss.SearchParametersIVF(nprobe=nprobe)  # kept alive through the search
        params = faiss.IndexRefineSearchParameters(k_factor=factor, base_index_params=cells)
        return vectors.search(queries, max(k, floor), params=params)[1][:, :k]
    if isinstance(vectors, faiss.IndexIVF):  # float16 IVF, as indexes before fast-scan
        return vectors.search(queries, k, params=faiss.SearchParametersIVF(nprobe=nprobe))[1]
    return vectors.search(queries, k)[1]


def _known_kind(vectors) -> bool:
    """Flat; IVF as `vector_index` makes it; or IVF holding the vectors whole (float32, or
    float16 as earlier versions made), whose rows a new build reuses."""
    import faiss

    if isinstance(vectors, faiss.IndexFlat | faiss.IndexIVFFlat):
        return True
    if isinstance(vectors, faiss.IndexRefine):
        scan = faiss.downcast_index(vectors.base_index)
        stored = faiss.downcast_index(vectors.refine_index)
        return isinstance(scan, faiss.IndexIVFPQFastScan) and _float16(stored)
    return isinstance(vectors, faiss.IndexIVFScalarQuantizer) and _float16(vectors)


def _float16(vectors) -> bool:
    import faiss

    fp16 = faiss.ScalarQuantizer.QT_fp16
    return isinstance(vectors, faiss.IndexScalarQuantizer | faiss.IndexIVFScalarQuantizer) and (
        vectors.sq.qtype == fp16
    )


def read_vectors(path: Path):
    passive_openmp()
    import faiss

    vectors = faiss.read_index(str(path))
    inner_product = vectors.metric_type == faiss.METRIC_INNER_PRODUCT
    if not (_known_kind(vectors) and inner_product and vectors.is_trained):
        raise ValueError(f"{path.name} is not a flat or IVF inner-product index")
    return vectors
