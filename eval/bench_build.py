"""Index build speed on the SQuAD slice against bare `model.encode` of the same passages."""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from bench_common import ROOT, Report, Row, median, ratio, timed

SQUAD_CORPUS = ROOT / "eval" / "squad" / "corpus"


@dataclass(frozen=True)
class BuildTimes:
    """Seconds of each run; texts are what ctqa embeds (passages, then their units)."""

    passages: int
    units: int
    chunking_s: float
    build_s: list[float]
    bare_passages_s: list[float]
    bare_all_s: list[float]


def embedded_texts(corpus: Path, settings) -> tuple[list[str], list[str], float]:
    """(passage texts, unit texts, seconds spent chunking) of a corpus, as ctqa chunks it."""
    from ctqa.chunking import chunk_document
    from ctqa.corpus import load_corpus
    from ctqa.encoder import token_counter

    count = token_counter()

    def chunk():
        return [
            p
            for doc in load_corpus(corpus)
            for p in chunk_document(doc, count, settings.max_passage_tokens)
        ]

    seconds, passages = timed(chunk)
    units = [p.text[u.start - p.start : u.end - p.start] for p in passages for u in p.units]
    return [p.text for p in passages], units, seconds


def measure_build(encoder, settings, corpus: Path, rounds: int) -> BuildTimes:
    """`build_index` into fresh folders, taking turns with bare encodes of the same texts."""
    from ctqa.encoder import token_counter
    from ctqa.index import build_index

    texts, units, chunking = embedded_texts(corpus, settings)
    model, batch = encoder.model, settings.encode_batch_size
    model.encode(texts[:batch], batch_size=batch)  # warm
    build, bare_p, bare_all = [], [], []
    with tempfile.TemporaryDirectory(prefix="ctqa-bench-build-") as tmp:
        for i in range(rounds):
            folder = Path(tmp) / f"index-{i}"  # fresh: no vectors to reuse
            bare_p.append(timed(lambda: model.encode(texts, batch_size=batch))[0])
            build.append(
                timed(lambda f=folder: build_index(corpus, f, encoder, settings, token_counter()))[
                    0
                ]
            )
            bare_all.append(timed(lambda: model.encode(texts + units, batch_size=batch))[0])
    return BuildTimes(len(texts), len(units), chunking, build, bare_p, bare_all)


def build_section(report: Report, encoder, settings, rounds: int, corpus=SQUAD_CORPUS) -> None:
    """Section 4."""
    t = measure_build(encoder, settings, corpus, rounds)
    ctqa_rate = t.passages / median(t.build_s)
    bare_rate = t.passages / median(t.bare_passages_s)
    r = ratio(ctqa_rate, bare_rate)
    report.add(
        Row(
            "4 index build",
            f"`build_index` on the SQuAD slice ({t.passages} passages), batch "
            f"{settings.encode_batch_size}",
            f"{ctqa_rate:.1f} passages/s ({median(t.build_s):.1f} s)",
            f"bare encode of the passages {bare_rate:.1f} passages/s",
            r,
            ">= 0.9",
            r >= 0.9,
        )
    )
    all_rate = t.passages / median(t.bare_all_s)
    report.add(
        Row(
            "4 index build",
            f"same, against bare encode of all ctqa embeds ({t.passages} passages + "
            f"{t.units} units)",
            f"{ctqa_rate:.1f} passages/s",
            f"{all_rate:.1f} passages/s ({median(t.bare_all_s):.1f} s; chunking alone "
            f"{t.chunking_s:.1f} s)",
            ratio(ctqa_rate, all_rate),
        )
    )
    report.details["build"] = asdict(t)
