"""ctqa benchmark: medians and ratios, each against a baseline measured in the same run.

    .venv/bin/python eval/bench/bench.py [--quick] [--only warm,onnx,threads,build,cold,scale]

Sections: 1 warm query (Bot.answer vs bare SentenceTransformer.encode), 2 peer (LangChain FAISS
+ HuggingFaceEmbeddings), 3 cold start (`ctqa --help` imports, `ctqa ask` and `ctqa serve`
processes), 4 index build (passages/s vs bare encode), 5 scale (a generated corpus of 100,000
passages; 5,000 with --quick), 6 ONNX Runtime encoders, 7 torch thread settings. Prints the
table as it goes and writes eval/results/bench.md and bench.json. Figures are noisy on a shared
machine: read the ratios.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_common import ROOT, Report, format_rows, statement_index, write_report  # noqa: E402

SECTIONS = ("warm", "onnx", "threads", "build", "cold", "scale")


@dataclass(frozen=True)
class Plan:
    """Sizes of a run."""

    mode: str
    rounds: int  # passes over the statement questions per timed comparison
    cold_runs: int  # process starts of each kind
    build_rounds: int
    scale: int  # passages of the generated corpus
    scale_rounds: int
    thread_reps: int  # worker processes per thread setting


QUICK = Plan("quick", 1, cold_runs=3, build_rounds=1, scale=5_000, scale_rounds=1, thread_reps=1)
FULL = Plan("full", 3, cold_runs=5, build_rounds=1, scale=100_000, scale_rounds=1, thread_reps=1)
# Table sections of each bench section, to merge a partial run (--only) into an earlier one.
ROWS = {
    "warm": ("1 warm query", "2 peer"),
    "cold": ("3 cold start",),
    "build": ("4 index build",),
    "scale": ("5 scale",),
    "onnx": ("6 onnx",),
    "threads": ("7 threads",),
}


def default_scale_dir(n: int) -> Path:
    """Where the generated corpus and its index are kept between runs (not in the repo)."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "ctqa" / "bench" / f"scale-{n}"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a first look")
    parser.add_argument(
        "--only", default=",".join(SECTIONS), help=f"comma-separated subset of {SECTIONS}"
    )
    parser.add_argument("--scale", type=int, help="passages of the generated corpus")
    parser.add_argument("--scale-dir", type=Path, help="keep the generated corpus and index here")
    parser.add_argument(
        "--rebuild-scale", action="store_true", help="rebuild the scale index even if fresh"
    )
    parser.add_argument(
        "--scale-vectors",
        choices=("composed", "memo", "real"),
        default="composed",
        help="how the scale build gets its vectors (see bench_scale.py); real is slowest",
    )
    parser.add_argument(
        "--scale-approx",
        default="",
        help="approximate FAISS prototypes to try at scale besides ctqa's setting (hnsw32)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "eval" / "results")
    args = parser.parse_args(argv)
    unknown = set(args.only.split(",")) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections: {', '.join(sorted(unknown))}")
    return args


def machine_note() -> str:
    import onnxruntime
    import torch

    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load average "
        f"{load}; Python {platform.python_version()}, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), onnxruntime {onnxruntime.__version__}"
    )


def run(args: argparse.Namespace) -> Report:
    """Run the chosen sections; the report holds every row."""
    from bench_query import statement_questions

    from ctqa import Bot
    from ctqa.encoder import load_encoder

    plan = QUICK if args.quick else FULL
    only = args.only.split(",")
    report = Report(plan.mode)
    questions = statement_questions()
    print(format_rows([]), flush=True)
    with tempfile.TemporaryDirectory(prefix="ctqa-bench-") as tmp:
        index = statement_index(Path(tmp))
        bot = Bot(corpus=ROOT / "seeds", index=index, log=lambda m: print(m, file=sys.stderr))
        encoder = bot.load().encoder  # the default backend (ONNX Runtime unless it fell back)
        settings = bot.settings
        # the baseline of every "bare encode": sentence-transformers on PyTorch
        torch_encoder = load_encoder(settings.threads, backend="torch")
        report.notes.append("start: " + machine_note())
        took: dict[str, float] = {}
        clock = time.perf_counter()

        def lap(name: str) -> None:
            nonlocal clock
            now = time.perf_counter()
            took[name] = now - clock
            clock = now

        if "warm" in only:
            from bench_query import chat_turns, reader_batching, warm_and_peer

            warm_and_peer(report, bot, questions, plan.rounds, baseline=torch_encoder)
            chat_turns(report, bot, plan.rounds)
            reader_batching(report, bot, questions, plan.rounds)
            lap("warm")
        if "onnx" in only:
            from bench_query import onnx_section

            onnx_section(report, torch_encoder, settings.threads, questions, plan.rounds)
            lap("onnx")
        if "threads" in only:
            from bench_threads import threads_section

            threads_section(report, plan.thread_reps)
            lap("threads")
        if "build" in only:
            from bench_build import build_section

            build_section(report, encoder, settings, plan.build_rounds, baseline=torch_encoder)
            lap("build")
        if "cold" in only:
            from bench_cold import cold_section

            cold_section(report, plan.cold_runs, index)
            lap("cold")
        if "scale" in only:
            from bench_scale import scale_section

            n = args.scale or plan.scale
            scale_section(
                report,
                n,
                args.scale_dir or default_scale_dir(n),
                index,
                plan.scale_rounds,
                vectors=args.scale_vectors,
                rebuild=args.rebuild_scale,
                approx=args.scale_approx,
            )
            lap("scale")
        report.notes.append(
            "sections took: " + ", ".join(f"{k} {v / 60:.1f} min" for k, v in took.items())
        )
        report.notes.append("end: " + machine_note())
    return report


def merge_earlier(report: Report, rerun: list[str], path: Path) -> None:
    """Keep the rows of sections this run skipped from an earlier run of the same mode."""
    import json

    from bench_common import Row

    if not path.is_file():
        return
    earlier = json.loads(path.read_text(encoding="utf-8"))
    if earlier.get("mode") != report.mode:
        return
    fresh = {label for name in rerun for label in ROWS[name]}
    kept = [Row(**r) for r in earlier.get("rows", []) if r["section"] not in fresh]
    if not kept:
        return
    report.rows = sorted(kept + report.rows, key=lambda r: int(r.section.split()[0]))
    for key, value in earlier.get("details", {}).items():
        report.details.setdefault(key, value)
    sections = sorted({r.section for r in kept})
    report.notes.append(
        f"rows of {', '.join(sections)} are from an earlier run ({earlier.get('created')}): "
        f"{' / '.join(n for n in earlier.get('notes', []) if n.startswith(('start', 'end')))}"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    report = run(args)
    only = args.only.split(",")
    if set(only) != set(SECTIONS):
        merge_earlier(report, only, args.out / "bench.json")
    minutes = (time.perf_counter() - started) / 60
    report.notes.append(f"the whole run took {minutes:.1f} min")
    command = "python eval/bench/bench.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    md, js = write_report(report, args.out, command.strip())
    print()
    print(format_rows(report.rows))
    for note in report.notes:
        print(f"- {note}")
    print(f"\nWritten: {md} and {js}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
