"""The bundled MiniLM on ONNX Runtime: exported once from the verified weights, checked against
PyTorch, then loaded without importing torch.

Why: ONNX Runtime encodes a question several times faster than PyTorch on a small CPU, and a
process that never imports torch starts in a fraction of the time (see README, Benchmarks).
The export is local (`torch.onnx.export`): nothing is downloaded. sentence-transformers' own
`backend="onnx"` would need `optimum-onnx`, whose only release requires transformers < 4.58.

    ~/.cache/ctqa/models/<weights sha256[:16]>/model.onnx   the exported transformer
    ~/.cache/ctqa/models/<weights sha256[:16]>/model.json   its sha256 and the export check

>>> enc = load_onnx_encoder(threads=2)                  # doctest: +SKIP
>>> enc.encode(["Who led the delegation?"]).shape       # doctest: +SKIP
(1, 384)
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .config import MODEL_DIM, MODEL_NAME, MODEL_WEIGHTS_SHA256
from .errors import ModelError
from .files import file_sha256

INPUTS = ("input_ids", "attention_mask", "token_type_ids")
EXPORT_FORMAT = 1
# Largest difference allowed between an ONNX and a PyTorch vector component (unit vectors)
# before an export is refused; observed differences are about 1e-6.
EXPORT_TOLERANCE = 1e-4
# Texts the export is checked on: short, long, punctuation, accents, past the token limit.
CHECK_TEXTS = (
    "Who led the French delegation?",
    "jwg",
    "The two sides condemned terrorism in all its forms and manifestations, including the "
    "cross-border terrorism, and called for concerted action against al-Qa’ida, ISIS/Daesh, "
    "Lashkar-e-Tayyiba (LeT) and Jaish-e-Mohammad (JeM).",
    "Coopération à Paris, le 17 novembre 2021 — «hello» 12345!",
    " ".join(["financing of terrorism and money laundering"] * 60),
)


def model_cache_dir() -> Path:
    """Where exported models are kept: `$CTQA_MODEL_CACHE`, else the user's cache folder."""
    explicit = os.environ.get("CTQA_MODEL_CACHE")
    if explicit:
        return Path(explicit)
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "ctqa" / "models"


def onnx_files(cache_dir: Path | None = None) -> tuple[Path, Path]:
    """The model file and its record, for the pinned weights."""
    folder = (cache_dir or model_cache_dir()) / MODEL_WEIGHTS_SHA256[:16]
    return folder / "model.onnx", folder / "model.json"


@dataclass
class OnnxEncoder:
    """Same interface as `ctqa.encoder.Encoder`: `encode(texts)` gives L2-normalised float32
    rows, mean-pooled as in the model's `1_Pooling`."""

    name: str
    weights_sha256: str
    dim: int
    session: object
    tokenizer: object
    backend: str = "onnx"
    lock: threading.Lock = field(default_factory=threading.Lock)

    def encode(self, texts: list[str], batch_size: int = 32, progress: bool = False) -> np.ndarray:
        texts = list(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        # longest first, as sentence-transformers does: batches of similar length pad less
        order = np.argsort([-len(t) for t in texts], kind="stable")
        starts = range(0, len(texts), batch_size)
        if progress:
            from tqdm import tqdm

            starts = tqdm(starts, desc="Batches", unit="batch")
        with self.lock:  # one tokenizer, one session: one batch at a time
            for at in starts:
                rows = order[at : at + batch_size]
                out[rows] = self._batch([texts[i] for i in rows])
        return out

    def _batch(self, texts: list[str]) -> np.ndarray:
        encoded = self.tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encoded], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encoded], dtype=np.int64)
        feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        hidden = self.session.run(None, feed)[0]
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return pooled / np.clip(norms, 1e-12, None)


def load_onnx_encoder(
    threads: int,
    folder: Path | None = None,
    cache_dir: Path | None = None,
    path: Path | None = None,
) -> OnnxEncoder:
    """The exported model, after checking it is the file the export verified.

    Raises `ModelError` when onnxruntime is missing or the export is missing or damaged.
    `path` loads another ONNX file of the same model (the benchmark's int8 variant) unchecked.
    """
    try:
        import onnxruntime as ort
    except ImportError:
        raise ModelError("onnxruntime is not installed; run `make run` to install it.") from None
    from .minilm import max_tokens, model_dir

    folder = folder or model_dir()
    if path is None:
        path, record_path = onnx_files(cache_dir)
        record = _read_record(record_path)
        if not path.is_file() or record is None:
            raise ModelError(f"no ONNX export of the bundled model at {path} yet.")
        if file_sha256(path) != record.get("onnx_sha256"):
            raise ModelError(f"{path} does not match its export record.")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Idle worker threads sleep instead of spinning: on a shared 2-core machine spinning
    # takes the core another process (or the chat server) needs.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime reports a damaged file in many shapes
        raise ModelError(f"{path} cannot be loaded by onnxruntime ({exc}).") from exc
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))  # its own: padded, truncated
    tokenizer.enable_truncation(max_tokens(folder))
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
    return OnnxEncoder(MODEL_NAME, MODEL_WEIGHTS_SHA256, MODEL_DIM, session, tokenizer)


def _read_record(path: Path) -> dict | None:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("format") != EXPORT_FORMAT:
        return None
    return record


def export_onnx(torch_encoder, threads: int, cache_dir: Path | None = None) -> Path:
    """Export the transformer of a loaded PyTorch `Encoder`, check that ONNX Runtime gives the
    same vectors on `CHECK_TEXTS` (within `EXPORT_TOLERANCE`), then move it into place.

    A refused or interrupted export leaves no model file behind, and never a half-written one.
    """
    path, record_path = onnx_files(cache_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".export-") as tmp:
        candidate = Path(tmp) / "model.onnx"
        _export(torch_encoder, candidate)
        onnx = load_onnx_encoder(threads, cache_dir=cache_dir, path=candidate)
        expected = torch_encoder.encode(list(CHECK_TEXTS))
        difference = float(np.abs(onnx.encode(list(CHECK_TEXTS)) - expected).max())
        if not difference <= EXPORT_TOLERANCE:
            raise ModelError(
                f"the ONNX export differs from PyTorch by {difference:.2g} (more than "
                f"{EXPORT_TOLERANCE:g}); it was not kept, and PyTorch will be used."
            )
        import onnxruntime
        import torch

        record = {
            "format": EXPORT_FORMAT,
            "model": MODEL_NAME,
            "weights_sha256": MODEL_WEIGHTS_SHA256,
            "onnx_sha256": file_sha256(candidate),
            "max_difference_from_torch": difference,
            "torch": torch.__version__,
            "onnxruntime": onnxruntime.__version__,
        }
        staged_record = Path(tmp) / "model.json"
        staged_record.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        os.replace(candidate, path)  # the record last: a file without its record is not used
        os.replace(staged_record, record_path)
    return path


def _export(torch_encoder, target: Path, opset: int = 17) -> None:
    import torch

    bert = torch_encoder.model[0].auto_model

    class LastHidden(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, token_type_ids):
            out = self.model(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            )
            return out.last_hidden_state

    sample = torch_encoder.model.tokenizer(
        ["a short one", "a slightly longer example sentence"], padding=True, return_tensors="pt"
    )
    axes = {name: {0: "batch", 1: "tokens"} for name in (*INPUTS, "last_hidden_state")}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            LastHidden(bert).eval(),
            tuple(sample[name] for name in INPUTS),
            str(target),
            input_names=list(INPUTS),
            output_names=["last_hidden_state"],
            dynamic_axes=axes,
            opset_version=opset,
            dynamo=False,  # the torch.export-based exporter needs onnxscript
        )
