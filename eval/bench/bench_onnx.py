"""An int8 variant of ctqa's ONNX export (src/ctqa/onnx_encoder.py), for the comparison in
section 6: dynamic quantisation of the MatMul weights. Not shipped: its Hit@1 moves."""

from __future__ import annotations

from pathlib import Path


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
