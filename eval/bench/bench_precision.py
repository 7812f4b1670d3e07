"""Why `make model` computes in float32 on some CPUs (src/ctqa/precision.py): one matrix product
of the reader's feed-forward size (64 pairs × 170 word pieces × 384, by 384 × 1536), in float32
and under bfloat16 autocast, on the training's 2 threads; prints both times, their ratio and
what `precision.chosen_precision("auto")` picks on this CPU.

    .venv/bin/python eval/bench/bench_precision.py
"""

from __future__ import annotations

import time


def product_ms(precision: str, repeats: int) -> float:
    """Median milliseconds of one product, computed as the training computes in `precision`."""
    import torch

    from ctqa.precision import autocast

    x, w = torch.randn(64, 170, 384), torch.randn(384, 1536)
    took = []
    for _ in range(repeats):
        started = time.perf_counter()
        with autocast(precision):
            x @ w
        took.append((time.perf_counter() - started) * 1000)
    return sorted(took)[len(took) // 2]


def main() -> None:
    import torch

    from ctqa.precision import chosen_precision

    torch.set_num_threads(2)
    float32 = product_ms("float32", 21)
    bfloat16 = product_ms("bfloat16", 5)
    cpu = torch.cpu.get_capabilities().get("cpu_name")
    print(f"{cpu}: float32 {float32:.1f} ms, bfloat16 autocast {bfloat16:.1f} ms a product")
    print(f"bfloat16 / float32: {bfloat16 / float32:.1f}; auto chooses {chosen_precision('auto')}")


if __name__ == "__main__":
    main()
