"""The trained reader to ONNX: a float32 export, checked against PyTorch, and its int8 quantisation
(ONNX Runtime's dynamic quantisation: int8 weights, activations quantised on the fly). Which one
ships is decided on the tuning split (`calibrate.py`): int8 when it moves the figures by less
than 0.01, as it is four times smaller and about twice as fast on a CPU.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from .files import file_sha256
from .reader import INPUTS, batch_arrays, encode_pair, open_session, pair_tokenizer

OUTPUTS = ("answer_logit", "start_logits", "end_logits")
# Frozen while training, so the bundled MiniLM's own: a shipped float32 file leaves it out
# (47 of its 91 MB) and `reader.open_session` puts it back from the verified MiniLM weights.
SHARED = ("embeddings.word_embeddings.weight",)
# Float32 ONNX must give PyTorch's logits within this, or the export is refused.
EXPORT_TOLERANCE = 1e-3
CHECK_PAIRS = (
    ("Who led the Indian delegation?", "Mahaveer Singhvi, Joint Secretary, led the delegation."),
    ("jwg", "The Joint Working Group met in Paris."),
    ("What is the price of oil?", " ".join(["The price of oil rose sharply in 1973."] * 30)),
)


def export_float32(net, target: Path, opset: int = 17) -> None:
    import torch

    net.eval()
    tokenizer = pair_tokenizer()
    sample = batch_arrays([encode_pair(tokenizer, q, p) for q, p in CHECK_PAIRS[:2]])
    axes = {name: {0: "batch", 1: "tokens"} for name in (*INPUTS, "start_logits", "end_logits")}
    axes["answer_logit"] = {0: "batch"}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net,
            tuple(torch.from_numpy(sample[name]) for name in INPUTS),
            str(target),
            input_names=list(INPUTS),
            output_names=list(OUTPUTS),
            dynamic_axes=axes,
            opset_version=opset,
            dynamo=False,  # the torch.export-based exporter needs onnxscript
        )


def largest_difference(net, path: Path, threads: int) -> float:
    """Largest difference between PyTorch's and ONNX Runtime's logits on `CHECK_PAIRS`."""
    import torch

    tokenizer = pair_tokenizer()
    feed = batch_arrays([encode_pair(tokenizer, q, p) for q, p in CHECK_PAIRS])
    got = open_session(path, threads).run(None, feed)
    net.eval()
    with torch.no_grad():
        expected = net(*(torch.from_numpy(feed[name]) for name in INPUTS))
    mask = feed["attention_mask"].astype(bool)
    differences = [abs(got[0] - expected[0].numpy()).max()]
    for g, e in zip(got[1:], expected[1:], strict=True):
        differences.append(abs(g[mask] - e.numpy()[mask]).max())
    return float(max(differences))


def export_reader(net, out: Path, work: Path, threads: int, log=print) -> dict:
    """Write `work/reader-float32.onnx` and `out/reader.onnx` (int8); the facts of the export."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from .errors import ModelError

    out.mkdir(parents=True, exist_ok=True)
    float32 = work / "reader-float32.onnx"
    export_float32(net, float32)
    difference = largest_difference(net, float32, threads)
    if not difference <= EXPORT_TOLERANCE:
        raise ModelError(f"the reader's ONNX export differs from PyTorch by {difference:.2g}.")
    int8 = out / "reader.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantize_dynamic(str(float32), str(int8), weight_type=QuantType.QInt8, per_channel=True)
    int8_difference = largest_difference(net, int8, threads)
    log(
        f"exported: float32 off PyTorch by {difference:.1e}, int8 by {int8_difference:.2f} (logits)"
    )
    return {
        "file": int8.name,
        "quantised": True,
        "sha256": file_sha256(int8),
        "float32_file": str(float32),
        "float32_difference": difference,
        "int8_difference": int8_difference,
        "int8_bytes": int8.stat().st_size,
        "float32_bytes": float32.stat().st_size,
        "shipped_bytes": int8.stat().st_size,
    }


def ship_float32(out: Path, export: dict) -> dict:
    """Make the float32 export the shipped file (when int8 moved the tuning figures), without
    the weights it shares with the bundled MiniLM."""
    without_shared(Path(export["float32_file"]), out / "reader.onnx")
    return {
        **export,
        "sha256": file_sha256(out / "reader.onnx"),
        "quantised": False,
        "shared": list(SHARED),
        "shipped_bytes": (out / "reader.onnx").stat().st_size,
    }


def without_shared(source: Path, target: Path) -> None:
    """`source` without the `SHARED` initializers, which must equal MiniLM's."""
    import onnx
    from onnx import numpy_helper

    from .errors import ModelError
    from .minilm import model_dir, verified_weights
    from .reader import minilm_tensors

    model = onnx.load(str(source))
    expected = minilm_tensors(verified_weights(model_dir()), SHARED)
    kept = []
    for tensor in model.graph.initializer:
        if tensor.name not in SHARED:
            kept.append(tensor)
        elif not np.array_equal(numpy_helper.to_array(tensor), expected[tensor.name]):
            raise ModelError(f"the reader's {tensor.name} is not MiniLM's: it was trained.")
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept)
    onnx.save(model, str(target))
