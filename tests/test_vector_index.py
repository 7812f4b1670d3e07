"""The vector index setting: exact (flat) search, or IVF for large indexes; switching between
them re-uses every vector; IVF's answers stay those of exact search."""

from __future__ import annotations

import dataclasses
import shutil

import faiss
import numpy as np
import pytest
from conftest import SQUAD_CORPUS, index_answers, require

from ctqa import Settings
from ctqa.build import build_index
from ctqa.errors import CtqaError
from ctqa.manifest import check_status, index_settings
from ctqa.minilm import token_counter
from ctqa.store import load_index
from ctqa.vectors import nearest, read_vectors, vector_index, vector_rows


def rows(n: int, dim: int = 16, seed: int = 0) -> np.ndarray:
    matrix = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return matrix / np.linalg.norm(matrix, axis=1, keepdims=True)


def test_auto_is_flat_below_the_threshold_and_ivf_from_it():
    small, large = rows(999), rows(1000)
    how = {"index": "auto", "ivf_from": 1000}
    assert isinstance(vector_index(small, how), faiss.IndexFlatIP)
    ivf = vector_index(large, how)
    assert isinstance(ivf, faiss.IndexRefine)
    assert faiss.extract_index_ivf(ivf).nlist == 25  # 1000 // 39 cells
    assert ivf.ntotal == 1000
    # too few vectors for two cells: flat, whatever is asked
    assert isinstance(vector_index(rows(60), {"index": "ivf"}), faiss.IndexFlatIP)


def test_ivf_searching_every_cell_finds_what_exact_search_finds_and_fewer_cells_is_close():
    matrix, queries = rows(20_000, dim=32), rows(50, dim=32, seed=1)
    flat = vector_index(matrix, {"index": "flat"})
    ivf = vector_index(matrix, {"index": "ivf"})
    cells = faiss.extract_index_ivf(ivf).nlist
    _, exact = flat.search(queries, 5)
    every = nearest(ivf, queries, 5, nprobe=cells)
    # re-scored on what IVF stores (float16); against float32 only near-ties may swap
    stored = vector_index(vector_rows(ivf).astype(np.float32), {"index": "flat"})
    assert (every == stored.search(queries, 5)[1]).all()
    assert np.mean([len(set(a) & set(b)) / 5 for a, b in zip(every, exact, strict=True)]) > 0.98
    # more cells than there are is every cell (FAISS's fast-scan alone would return other rows)
    assert (nearest(ivf, queries, 5, nprobe=cells + 100) == every).all()
    some = nearest(ivf, queries, 5, nprobe=1)
    assert (some != exact).any()  # one cell of 512 misses some: the setting is applied
    assert (nearest(flat, queries, 5, nprobe=1) == exact).all()  # flat: every vector, always


def _float16_ivf(matrix: np.ndarray, how: dict):
    """IVF as ctqa built it before fast-scan: float16 vectors in every cell."""
    n, dim = matrix.shape
    quantizer = faiss.IndexFlatIP(dim)
    fp16 = faiss.ScalarQuantizer.QT_fp16
    ivf = faiss.IndexIVFScalarQuantizer(
        quantizer, dim, max(2, n // 39), fp16, faiss.METRIC_INNER_PRODUCT, False
    )
    ivf.train(matrix)
    ivf.add(matrix)
    return ivf


def test_a_float16_ivf_index_of_an_earlier_version_still_loads_and_searches(tmp_path):
    """A build reuses the vectors of the index before it, which may be the float16 IVF that
    ctqa made before fast-scan."""
    matrix, queries = rows(5000, dim=32), rows(10, dim=32, seed=1)
    old = _float16_ivf(matrix, {"index": "ivf"})
    faiss.write_index(old, str(tmp_path / "units.faiss"))
    loaded = read_vectors(tmp_path / "units.faiss")
    assert np.abs(vector_rows(loaded) - matrix).max() < 1e-3
    _, exact = vector_index(matrix, {"index": "flat"}).search(queries, 5)
    assert (nearest(loaded, queries, 5, nprobe=old.nlist) == exact).all()


def test_an_index_of_the_float16_ivf_is_rebuilt_from_its_own_vectors(
    tmp_path, fake_encoder, monkeypatch
):
    require(SQUAD_CORPUS.is_dir(), "the SQuAD slice corpus is missing")
    import ctqa.manifest
    import ctqa.store

    index, settings = tmp_path / "index", Settings(vector_index="ivf")
    with monkeypatch.context() as earlier_version:
        earlier_version.setattr(ctqa.manifest, "IVF_CODES", "fp16")
        earlier_version.setattr(ctqa.store, "vector_index", _float16_ivf)
        build_index(SQUAD_CORPUS, index, fake_encoder, settings, token_counter())
        old = load_index(index)
    assert isinstance(old.unit_vectors, faiss.IndexIVFScalarQuantizer)
    embedded = len(fake_encoder.encoded)
    shaping = index_settings(settings, fake_encoder.name, fake_encoder.weights_sha256, 64)
    assert "vectors" in check_status(index, SQUAD_CORPUS, shaping).reason
    build_index(SQUAD_CORPUS, index, fake_encoder, settings, token_counter())
    assert len(fake_encoder.encoded) == embedded  # nothing embedded again
    loaded = load_index(index, shaping)
    assert isinstance(loaded.unit_vectors, faiss.IndexRefine)
    assert np.abs(loaded.unit_rows - old.unit_rows).max() < 1e-3


@pytest.mark.parametrize("kind", ["flat", "ivf"])
def test_vector_rows_hold_every_vector_in_row_order(kind):
    matrix = rows(5000, dim=32)
    vectors = vector_index(matrix, {"index": kind})
    held = vector_rows(vectors)
    assert held.shape == matrix.shape
    assert held.dtype == np.float32
    if kind == "flat":  # FAISS's own storage, not a copy of it (IVF's rows are reconstruct_n)
        assert np.array_equal(held, vectors.reconstruct_n(0, 5000))
        assert np.array_equal(held, matrix)
    else:  # stored as float16: each row is its vector to within float16 rounding
        assert np.abs(held - matrix).max() < 1e-3
        assert np.abs(held @ matrix[0] - matrix @ matrix[0]).max() < 1e-3


def test_a_flat_index_rows_outlive_every_other_reference_to_it():
    import gc

    matrix = rows(5000, dim=32)
    held = vector_rows(vector_index(matrix, {"index": "flat"}))  # no other reference kept
    gc.collect()
    [np.ones(len(matrix) * 32) for _ in range(20)]  # reuse freed memory, were it freed
    assert np.array_equal(held, matrix)
    assert not held.flags.writeable  # FAISS's storage: read-only


def test_an_unknown_vector_index_is_refused_and_the_old_index_kept(corpus, tmp_path, fake_encoder):
    index = tmp_path / "index"
    build_index(corpus, index, fake_encoder, Settings(), token_counter())
    before = index_answers(index)
    embedded = len(fake_encoder.encoded)
    (corpus / "new.txt").write_text("The sides met again in Paris.\n", encoding="utf-8")
    with pytest.raises(CtqaError, match="unknown vector index 'hnsw'; use one of auto, flat, ivf"):
        build_index(corpus, index, fake_encoder, Settings(vector_index="hnsw"), token_counter())
    assert index_answers(index) == before
    assert len(fake_encoder.encoded) == embedded  # refused before the new statement is embedded


def test_switching_to_ivf_reuses_every_vector_and_keeps_the_answers(tmp_path, fake_encoder):
    require(SQUAD_CORPUS.is_dir(), "the SQuAD slice corpus is missing")
    index = tmp_path / "index"
    flat_settings = Settings(vector_index="flat")
    build_index(SQUAD_CORPUS, index, fake_encoder, flat_settings, token_counter())
    embedded = len(fake_encoder.encoded)
    flat_units = np.array(load_index(index).unit_rows)
    ivf_settings = dataclasses.replace(flat_settings, vector_index="ivf")
    shaping = index_settings(ivf_settings, fake_encoder.name, fake_encoder.weights_sha256, 64)
    status = check_status(index, SQUAD_CORPUS, shaping)
    assert not status.fresh and "vectors" in status.reason
    build_index(SQUAD_CORPUS, index, fake_encoder, ivf_settings, token_counter())
    assert len(fake_encoder.encoded) == embedded  # nothing embedded again
    loaded = load_index(index, shaping)
    assert isinstance(loaded.unit_vectors, faiss.IndexRefine)
    assert loaded.manifest["vectors"] == {
        "index": "ivf",
        "ivf_from": 50_000,
        "ivf_codes": "pq4-fastscan+fp16",
    }
    assert np.abs(loaded.unit_rows - flat_units).max() < 1e-3  # the same, through float16
    assert check_status(index, SQUAD_CORPUS, shaping).fresh


@pytest.mark.slow
def test_ivf_cites_what_exact_search_cites_on_squad(tmp_path):
    """On the SQuAD slice (5,120 units in 131 cells, 64 of them searched), IVF and exact search
    put the same passage first for nearly every question. One real build; the IVF index
    re-uses its vectors."""
    require(SQUAD_CORPUS.is_dir(), "the SQuAD slice corpus is missing")
    from ctqa import Bot
    from ctqa.evaluate import load_questions

    def bot(kind: str) -> Bot:
        return Bot(
            corpus=SQUAD_CORPUS,
            index=tmp_path / kind,
            settings=Settings.from_env(vector_index=kind),
            log=lambda _: None,
        )

    flat = bot("flat")
    flat.load()  # noqa: B018 - builds the index
    shutil.copytree(tmp_path / "flat", tmp_path / "ivf")
    ivf = bot("ivf")
    assert isinstance(ivf.load().index.unit_vectors, faiss.IndexRefine)
    assert ivf.load().index.manifest["build"]["embedded"] == 0
    questions = [q.question for q in load_questions(SQUAD_CORPUS.parent / "questions.jsonl")]

    def first(bot: Bot, question: str):  # which passage and sentence; scores differ by ~1e-4
        return [(c.doc_id, c.start, c.highlight) for c in bot.answer(question).citations[:1]]

    same = [first(flat, q) == first(ivf, q) for q in questions[:300]]
    print(f"IVF and exact search cite the same first passage for {np.mean(same):.3f}")
    assert np.mean(same) >= 0.98
