"""Shared pieces of the benchmark: timing, percentiles, result rows and the table.

>>> Latency.of([0.010, 0.020, 0.030]).p50_ms
20.0
>>> ratio(10.0, 8.0)
1.25
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ctqa.evaluate import percentile

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Latency:
    """Percentiles of timed calls, in milliseconds."""

    n: int
    p50_ms: float
    p95_ms: float

    @classmethod
    def of(cls, seconds: Sequence[float]) -> Latency:
        values = list(seconds)
        if not values:
            return cls(0, float("nan"), float("nan"))
        return cls(len(values), percentile(values, 0.5) * 1000, percentile(values, 0.95) * 1000)

    def __str__(self) -> str:
        return f"p50 {self.p50_ms:.1f} ms, p95 {self.p95_ms:.1f} ms"


@dataclass(frozen=True)
class Row:
    """One line of the table: a ctqa figure, its baseline from the same run, the ratio."""

    section: str
    measure: str
    ctqa: str
    baseline: str
    ratio: float | None = None
    target: str = ""
    holds: bool | None = None


@dataclass
class Report:
    """Everything a run measured: the table rows, and details per section for the JSON."""

    mode: str
    rows: list[Row] = field(default_factory=list)
    details: dict[str, object] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def add(self, row: Row) -> None:
        self.rows.append(row)
        print(format_rows([row], header=False), flush=True)


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def ratio(value: float, baseline: float) -> float:
    return round(value / baseline, 3) if baseline else float("nan")


def paired_overhead_ms(calls: Sequence[float], floor: Sequence[float]) -> float:
    """Median over items of (call seconds - floor seconds), in ms: the cost on top of the
    floor, steadier under load than either figure alone (`interleaved` pairs them by item).

    >>> paired_overhead_ms([0.012, 0.030], [0.010, 0.026])
    3.0
    """
    return round(median([a - b for a, b in zip(calls, floor, strict=True)]) * 1000, 3)


def interleaved(
    calls: dict[str, Callable[[object], object]],
    items: Sequence[object],
    rounds: int = 1,
    warmup: int = 5,
) -> dict[str, list[float]]:
    """Seconds per call of each named function on each item, the functions taking turns on
    every item (their order rotating), so that load from other processes hits them alike.

    >>> times = interleaved({"a": len, "b": str}, ["x", "yy"], rounds=2, warmup=1)
    >>> sorted(times), len(times["a"])
    (['a', 'b'], 4)
    """
    names = list(calls)
    for item in list(items)[:warmup]:
        for name in names:
            calls[name](item)
    samples: dict[str, list[float]] = {name: [] for name in names}
    turn = 0
    for _ in range(rounds):
        for item in items:
            order = names[turn % len(names) :] + names[: turn % len(names)]
            turn += 1
            for name in order:
                started = time.perf_counter()
                calls[name](item)
                samples[name].append(time.perf_counter() - started)
    return samples


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    """(seconds, result) of one call."""
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def statement_index(folder: Path) -> Path:
    """A copy of the committed index of seeds/ in `folder`, so that nothing the bench does
    (a rebuild when it is stale) touches embeddings/."""
    import shutil

    target = Path(folder) / "statement-index"
    if not target.exists():
        source = ROOT / "embeddings"
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns(".lock"))
    return target


def folder_bytes(folder: Path) -> int:
    """Total size of the files under `folder`."""
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())


def verdict(holds: bool | None) -> str:
    return {True: "yes", False: "NO", None: "-"}[holds]


def format_rows(rows: list[Row], header: bool = True) -> str:
    """Rows as a Markdown table."""
    head = ["section", "measure", "ctqa", "baseline (same run)", "ratio", "target", "holds"]
    lines = []
    if header:
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [
            r.section,
            r.measure,
            r.ctqa,
            r.baseline,
            "-" if r.ratio is None else f"{r.ratio:.2f}",
            r.target or "-",
            verdict(r.holds),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_report(report: Report, folder: Path, command: str) -> tuple[Path, Path]:
    """bench.md (the table and notes) and bench.json (rows and details) under `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    md = folder / "bench.md"
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    text = [
        f"# ctqa benchmark ({report.mode})",
        "",
        f"`{command}`, {stamp}. Every ratio is against a baseline measured in the same run.",
        "",
        format_rows(report.rows),
        "",
    ]
    if report.notes:
        text += ["Notes:", ""] + [f"- {n}" for n in report.notes] + [""]
    md.write_text("\n".join(text), encoding="utf-8")
    js = folder / "bench.json"
    payload = {
        "mode": report.mode,
        "command": command,
        "created": stamp,
        "rows": [asdict(r) for r in report.rows],
        "details": report.details,
        "notes": report.notes,
    }
    js.write_text(json.dumps(payload, indent=1, default=str), encoding="utf-8")
    return md, js
