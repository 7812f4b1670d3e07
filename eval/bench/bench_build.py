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
    bare_passages_s: list[float]  # SentenceTransformer.encode (PyTorch) of the passages
    same_backend_passages_s: list[float]  # ctqa's encoder on its own backend, passages
    same_backend_all_s: list[float]  # ctqa's encoder, passages and units


def embedded_texts(corpus: Path, settings) -> tuple[list[str], list[str], float]:
    """(passage texts, unit texts, seconds spent chunking) of a corpus, as ctqa chunks it."""
    from ctqa.chunking import chunk_document
    from ctqa.corpus import load_corpus
    from ctqa.minilm import token_counter

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


def measure_build(encoder, baseline, settings, corpus: Path, rounds: int) -> BuildTimes:
    """`build_index` with `encoder` into fresh folders, taking turns with bare encodes of the
    same texts: `baseline.model` (a SentenceTransformer) and `encoder` itself."""
    from ctqa.build import build_index
    from ctqa.minilm import token_counter

    texts, units, chunking = embedded_texts(corpus, settings)
    model, batch = baseline.model, settings.encode_batch_size
    model.encode(texts[:batch], batch_size=batch)  # warm
    encoder.encode(texts[:batch], batch_size=batch)
    times: dict[str, list[float]] = {"build": [], "bare": [], "same": [], "all": []}
    with tempfile.TemporaryDirectory(prefix="ctqa-bench-build-") as tmp:
        for i in range(rounds):
            folder = Path(tmp) / f"index-{i}"  # fresh: no vectors to reuse
            runs = {
                "bare": lambda: model.encode(texts, batch_size=batch),
                "build": lambda f=folder: build_index(
                    corpus, f, encoder, settings, token_counter()
                ),
                "same": lambda: encoder.encode(texts, batch_size=batch),
                "all": lambda: encoder.encode(texts + units, batch_size=batch),
            }
            for name, run in runs.items():
                times[name].append(timed(run)[0])
    return BuildTimes(
        len(texts), len(units), chunking, times["build"], times["bare"], times["same"], times["all"]
    )


def build_section(
    report: Report, encoder, settings, rounds: int, corpus=SQUAD_CORPUS, baseline=None
) -> None:
    """Section 4: ctqa's build with its `encoder` against bare `baseline.model.encode` (the
    PyTorch SentenceTransformer; `encoder` itself if None), and against its own backend."""
    t = measure_build(encoder, baseline or encoder, settings, corpus, rounds)
    backend = getattr(encoder, "backend", "?")
    ctqa_rate = t.passages / median(t.build_s)
    built = f"{ctqa_rate:.1f} passages/s ({median(t.build_s):.1f} s)"
    bare_rate = t.passages / median(t.bare_passages_s)
    r = ratio(ctqa_rate, bare_rate)
    report.add(
        Row(
            "4 index build",
            f"`build_index` ({backend}) on the SQuAD slice ({t.passages} passages), batch "
            f"{settings.encode_batch_size}",
            built,
            f"bare SentenceTransformer.encode of the passages {bare_rate:.1f} passages/s",
            r,
            ">= 0.9",
            r >= 0.9,
        )
    )
    same_rate = t.passages / median(t.same_backend_passages_s)
    report.add(
        Row(
            "4 index build",
            f"same, against bare encode of the passages on {backend}",
            built,
            f"{same_rate:.1f} passages/s",
            ratio(ctqa_rate, same_rate),
        )
    )
    all_rate = t.passages / median(t.same_backend_all_s)
    report.add(
        Row(
            "4 index build",
            f"same, against bare encode on {backend} of all ctqa embeds ({t.passages} passages "
            f"+ {t.units} units)",
            built,
            f"{all_rate:.1f} passages/s ({median(t.same_backend_all_s):.1f} s; chunking alone "
            f"{t.chunking_s:.1f} s)",
            ratio(ctqa_rate, all_rate),
        )
    )
    report.details["build"] = asdict(t)
