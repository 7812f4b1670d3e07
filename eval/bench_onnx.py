"""The bundled MiniLM on ONNX Runtime: exported locally from the verified weights, optionally
int8-quantised; an encoder with the same interface as `ctqa.encoder.Encoder`.

sentence-transformers' own `backend="onnx"` needs `optimum-onnx`, whose only release (0.1.0)
requires transformers < 4.58, while ctqa pins transformers 5.24; so the model is exported with
`torch.onnx.export` and run with `onnxruntime` directly: mean pooling and L2 normalisation as
in the model's `1_Pooling` and ctqa's `Encoder.encode`.
"""

from __future__ import annotations

import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def export_onnx(encoder, path: Path, opset: int = 17) -> Path:
    """Write the transformer of a loaded ctqa `Encoder` to `path` as ONNX (fp32)."""
    import torch

    bert = encoder.model[0].auto_model

    class LastHidden(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, token_type_ids):
            out = self.model(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            )
            return out.last_hidden_state

    sample = encoder.model.tokenizer(
        ["a short one", "a slightly longer example sentence"], padding=True, return_tensors="pt"
    )
    axes = {name: {0: "batch", 1: "tokens"} for name in (*INPUTS, "last_hidden_state")}
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            LastHidden(bert).eval(),
            tuple(sample[name] for name in INPUTS),
            str(path),
            input_names=list(INPUTS),
            output_names=["last_hidden_state"],
            dynamic_axes=axes,
            opset_version=opset,
            dynamo=False,  # the torch.export-based exporter needs onnxscript
        )
    return path


def quantize_int8(source: Path, target: Path, matmul_only: bool = True) -> Path:
    """Dynamic int8 quantisation of the weights (activations stay float)."""
    import logging

    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)  # the quantizer sets up logging at import
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root.setLevel(logging.ERROR)  # and advises pre-processing
    try:
        quantize_dynamic(
            str(source),
            str(target),
            weight_type=QuantType.QInt8,
            per_channel=True,
            op_types_to_quantize=["MatMul"] if matmul_only else None,
        )
    finally:
        root.setLevel(level)
        root.handlers[:] = handlers
    return target


@dataclass
class OnnxEncoder:
    """Same interface as `ctqa.encoder.Encoder`: `encode(texts)` -> L2-normalised float32."""

    name: str
    weights_sha256: str
    dim: int
    session: object
    tokenizer: object
    label: str = "onnx"
    lock: threading.Lock = field(default_factory=threading.Lock)

    def encode(self, texts: list[str], batch_size: int = 32, progress: bool = False) -> np.ndarray:
        texts = list(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        order = np.argsort([-len(t) for t in texts], kind="stable")  # like sentence-transformers
        with self.lock:
            for at in range(0, len(texts), batch_size):
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


def onnx_encoder(path: Path, like, threads: int, label: str) -> OnnxEncoder:
    """An `OnnxEncoder` over the ONNX file, with the identity of `like` (a ctqa `Encoder`), so
    that an index built with either is accepted by the other."""
    return onnx_session_encoder(path, threads, label, like.model.max_seq_length)


def onnx_session_encoder(path: Path, threads: int, label: str, max_tokens: int = 256):
    """An `OnnxEncoder` made without importing torch: ONNX Runtime, tokenizers, and ctqa's
    record of the bundled model."""
    import onnxruntime as ort
    from tokenizers import Tokenizer

    from ctqa.config import MODEL_DIM, MODEL_NAME, MODEL_WEIGHTS_SHA256
    from ctqa.encoder import model_dir

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    tokenizer = Tokenizer.from_file(str(model_dir() / "tokenizer.json"))
    tokenizer.enable_truncation(max_tokens)
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
    return OnnxEncoder(MODEL_NAME, MODEL_WEIGHTS_SHA256, MODEL_DIM, session, tokenizer, label)


def ask_main(argv: list[str]) -> int:
    """`python eval/bench_onnx.py MODEL.onnx QUESTION CORPUS INDEX`: what `ctqa ask` would do
    with an ONNX backend (no torch import), for the cold-start comparison."""
    from ctqa import Bot
    from ctqa.config import Settings

    model, question, corpus, index = argv
    settings = Settings.from_env()
    encoder = onnx_session_encoder(Path(model), settings.threads, "onnx fp32")
    print(Bot(corpus=corpus, index=index, encoder=encoder).answer(question).text)
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(ask_main(sys.argv[1:]))
