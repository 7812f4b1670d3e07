"""What the reader's training computes in: bfloat16 where the CPU has bfloat16 instructions
(AVX512-BF16 or AMX), float32 elsewhere. Without them PyTorch's bfloat16 matrix products run
tens of times slower than float32 (`eval/bench/bench_precision.py` prints the ratio: 78 on an
AVX2-only CPU), so a `make model` run would take days.

>>> chosen_precision("float32")
'float32'
"""

from __future__ import annotations

PRECISIONS = ("auto", "bfloat16", "float32")
# What a run computed in before its precision was recorded (checkpoints, records, model cards).
UNRECORDED = "bfloat16"


def recorded_precision(config: dict) -> str:
    """The precision a recorded recipe (`asdict` of a `TrainConfig`) computed in.

    >>> recorded_precision({"seed": 13}), recorded_precision({"precision": "float32"})
    ('bfloat16', 'float32')
    """
    return config.get("precision", UNRECORDED)


def chosen_precision(asked: str) -> str:
    """`asked`, with "auto" made "bfloat16" when the CPU has bfloat16 instructions, else
    "float32"."""
    if asked not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {asked!r}")
    if asked != "auto":
        return asked
    import torch

    capabilities = torch.cpu.get_capabilities()
    fast = capabilities.get("avx512_bf16") or capabilities.get("amx_bf16")
    return "bfloat16" if fast else "float32"


def autocast(precision: str):
    """The autocast context of `precision` ("bfloat16" or "float32")."""
    import torch

    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bfloat16")
