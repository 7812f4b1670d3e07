"""What `ctqa eval` prints and writes: the figures table, per-question results and misses,
each mode's citation lengths and abstention AUCs, and the run over the sets that produces them.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

from .errors import CtqaError
from .evaluate import SetReport


def citation_lengths(bot, reports: list[SetReport]) -> tuple[float, float]:
    """Mean length (characters) of the first cited passage, and of the corpus's paragraphs."""
    index = bot.load().index
    paragraphs: dict[tuple[str, int], tuple[int, int]] = {}
    for p in index.passages:
        lo, hi = paragraphs.get((p.doc_id, p.paragraph), (p.start, p.end))
        paragraphs[(p.doc_id, p.paragraph)] = (min(lo, p.start), max(hi, p.end))
    mean_paragraph = sum(hi - lo for lo, hi in paragraphs.values()) / max(1, len(paragraphs))
    firsts = [r.first_length for report in reports for r in report.results if r.first_length]
    return sum(firsts) / max(1, len(firsts)), mean_paragraph


def format_table(reports: list[SetReport]) -> str:
    """A plain-text table of the figures of several reports."""
    header = (
        "set",
        "n",
        "right@1",
        "Hit@1",
        "Hit@3",
        "MRR@5",
        "answer",
        "abstain",
        "span EM",
        "span F1",
        "p50 ms",
        "p95 ms",
    )
    rows = [header]
    for r in reports:
        figures = (
            r.answered_right,
            r.hit_at_1,
            r.hit_at_3,
            r.mrr_at_5,
            r.answer_rate,
            r.abstention_rate,
            r.span_exact_match,
            r.span_f1,
        )
        rows.append(
            (
                r.name,
                str(r.questions),
                *("-" if v is None else f"{v:.3f}" for v in figures),
                f"{r.latency_p50_ms:.1f}",
                f"{r.latency_p95_ms:.1f}",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows
    )


def write_report(reports: list[SetReport], folder: Path, stem: str) -> Path:
    """Per-question results and figures as JSON under `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{stem}.json"
    payload = [asdict(r) for r in reports]
    path.write_text(json.dumps(payload, indent=1, ensure_ascii=False), encoding="utf-8")
    misses = folder / f"{stem}-misses.txt"
    with open(misses, "w", encoding="utf-8") as handle:
        for report in reports:
            if report.kind:
                continue  # a kind's report repeats its file's questions
            for r in report.results:
                wrong = (r.answerable and (r.rank != 1 or r.abstained)) or (
                    not r.answerable and not r.abstained
                )
                if wrong:
                    handle.write(
                        f"[{report.name}] {r.id} rank={r.rank} abstained={r.abstained} "
                        f"conf={r.confidence}\n  Q: {r.question}\n"
                    )
                    if r.query != r.question:
                        handle.write(f"  searched: {r.query}\n")
                    for cited in r.cited[:3]:
                        handle.write(f"  cited: {cited}\n")
    return path


def print_summary(name: str, mode: str, bot, reports, pictures: Path | None) -> None:
    """The citation lengths and abstention AUCs of one mode; with `pictures`, the trade-off."""
    from .abstention import abstention_aucs, plot_abstention

    first, paragraph = citation_lengths(bot, reports)
    aucs = ", ".join(f"{n} {a:.3f}" for n, a in abstention_aucs(reports).items())
    line = (
        f"{name} [{mode}]: mean first citation {first:.0f} chars, mean paragraph "
        f"{paragraph:.0f} chars; abstention ROC AUC against {aucs or '-'}"
    )
    if pictures is not None:
        title = f"{name}: answer vs abstention ({mode})"
        path = pictures / f"abstention-{name}.png"
        picture = plot_abstention(reports, bot.abstain_below(), path, title)
        line += f"; trade-off: {picture}"
    print(line)


def writable_folder(folder: Path) -> None:
    """`CtqaError` unless `folder` is, or can be made, a folder this process can write in."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".ctqa-write-check-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise CtqaError(
            f"cannot write the report in {folder} ({exc.strerror or exc}); pass --out a "
            "folder you can write in."
        ) from None


def run_eval(
    set_name: str, compare: bool, limit: int | None, index_root: Path | None, out: Path
) -> int:
    """`ctqa eval`: every file of the chosen sets asked of the shipped bot (with `compare`,
    of each way of ranking too, and of the reader), the figures printed as a table, beside
    each mode's citation lengths, abstention AUCs and conversation figures; per-question
    results and the abstention trade-off written under `out`."""
    from .bot import Bot
    from .config import Settings
    from .conversation_eval import alone_outcomes, conversation_figures
    from .evaluate import default_sets, run_set

    writable_folder(out)  # before the eval's minutes, not after
    settings = Settings.from_env()
    sets = default_sets()
    shipped = "reader" if settings.reader == "on" else settings.fusion
    modes = {shipped: {}}
    if compare:  # each way of ranking alone, then the shipped retrieval, then the reader
        baselines = {m: {"fusion": m, "reader": "off"} for m in ("dense", "lexical", "rrf")}
        both = {"weighted": {"fusion": "weighted", "reader": "off"}, "reader": {"reader": "on"}}
        modes = {**baselines, **both}
    all_reports, kept = [], []
    encoder = None  # loaded once, for every set and mode (the modes do not change it)
    for name in list(sets) if set_name == "all" else [set_name]:
        eval_set = sets[name]
        index = index_root / name if index_root else None
        for mode, overrides in modes.items():
            settings = Settings.from_env(**overrides)
            bot = Bot(corpus=eval_set.corpus, index=index, settings=settings, encoder=encoder)
            encoder = bot.load().encoder
            reports = run_set(bot, eval_set, limit)
            label = f" [{mode}]" if compare else ""
            for report in reports:
                report.name += label
            all_reports.extend(reports)
            if mode in (shipped, "weighted", "reader"):
                print_summary(name, mode, bot, reports, out if mode == shipped else None)
                # the pairs of a large set only for the shipped way: the reader reads slowly
                pairs = mode == shipped or eval_set.conversations is not None
                # the set's questions were just asked alone: their answers are not asked again
                asked = alone_outcomes(r for report in reports for r in report.results)
                text, share = conversation_figures(bot, eval_set, limit, pairs, asked)
                print(f"[{mode}] {text}")
                if share is not None and mode == shipped:
                    kept.append(share)
    print(format_table(all_reports))
    if len(kept) > 1:
        asked = sum(n for _, n in kept)
        pooled = sum(share * n for share, n in kept) / asked
        print(f"[{shipped}] all sets: standalone questions kept: {pooled:.3f} of {asked}")
    path = write_report(all_reports, out, "eval")
    print(f"Per-question report: {path} (misses: {path.with_name('eval-misses.txt')})")
    return 0
