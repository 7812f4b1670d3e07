"""Thread settings of the PyTorch encoder: thread count and OpenMP's wait policy (ctqa sets
OMP_WAIT_POLICY=PASSIVE unless it is set already).

Both are fixed when a process starts, so each variant runs in its own worker process
(`python eval/bench/bench_threads.py THREADS`), the variants taking turns.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_common import ROOT, Latency, Report, Row, ratio  # noqa: E402


@dataclass(frozen=True)
class Variant:
    label: str
    threads: int
    env: tuple[tuple[str, str], ...] = ()


VARIANTS = (
    Variant("torch 2 threads, OpenMP default wait", 2, (("CTQA_BENCH_OPENMP", "default"),)),
    Variant("torch 2 threads, OMP_WAIT_POLICY=PASSIVE", 2, (("OMP_WAIT_POLICY", "PASSIVE"),)),
    Variant("torch 1 thread", 1),
)


def worker(threads: int) -> list[float]:
    """Seconds of `Encoder.encode([question])` over the statement questions, after warm-up."""
    from bench_query import statement_questions

    from ctqa.encoder import load_encoder

    if os.environ.get("CTQA_BENCH_OPENMP") == "default":
        # OpenMP reads its settings when torch loads it: importing torch first keeps ctqa's
        # OMP_WAIT_POLICY=PASSIVE (set before its own import of torch) from applying.
        import torch  # noqa: F401
    encoder = load_encoder(threads, backend="torch")
    questions = [q.text for q in statement_questions()]
    for q in questions[:5]:
        encoder.encode([q])
    seconds = []
    for q in questions:
        started = time.perf_counter()
        encoder.encode([q])
        seconds.append(time.perf_counter() - started)
    return seconds


def run_variant(variant: Variant) -> list[float]:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    env.update(dict(variant.env))
    out = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), str(variant.threads)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def threads_section(report: Report, reps: int) -> None:
    """Section 7: encode p50 per variant, against the shipped setting (2 threads, default)."""
    samples: dict[str, list[float]] = {v.label: [] for v in VARIANTS}
    for rep in range(reps):
        order = VARIANTS[rep % len(VARIANTS) :] + VARIANTS[: rep % len(VARIANTS)]
        for variant in order:
            samples[variant.label] += run_variant(variant)
    lat = {label: Latency.of(values) for label, values in samples.items()}
    base = VARIANTS[0].label
    for variant in VARIANTS[1:]:
        report.add(
            Row(
                "7 threads",
                f"encode one question: {variant.label} (speed-up)",
                str(lat[variant.label]),
                f"{base}: {lat[base]}",
                ratio(lat[base].p50_ms, lat[variant.label].p50_ms),
            )
        )
    report.details["threads"] = {label: vars(v) for label, v in lat.items()}


if __name__ == "__main__":
    print(json.dumps(worker(int(sys.argv[1]))))
