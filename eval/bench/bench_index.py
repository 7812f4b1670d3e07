"""Incremental indexing: a full build of 1,000 statements, then a rebuild after one changes.

The statements are made reproducibly from real text: the sentences of `eval/squad/corpus`
(found by ctqa's own splitter), drawn with a fixed seed into 2 to 5 paragraphs of 1 to 4
sentences each. Both builds use the bundled model; its loading is timed apart. The rebuild
should take at most 5% of the full build: only the changed statement is chunked and embedded.

    .venv/bin/python eval/bench/bench_index.py [--statements 1000] [--seed 15] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

from ctqa.build import build_index
from ctqa.chunking import paragraph_spans, sentence_spans
from ctqa.config import Settings
from ctqa.corpus import load_corpus
from ctqa.encoder import load_encoder
from ctqa.minilm import token_counter

SOURCE = Path(__file__).resolve().parents[1] / "squad" / "corpus"
TARGET = 0.05


def source_sentences(folder: Path = SOURCE) -> list[str]:
    """Every sentence of the source articles, in order."""
    sentences = []
    for doc in load_corpus(folder):
        for paragraph in paragraph_spans(doc.text, doc.body_start):
            sentences.extend(doc.text[s.start : s.end] for s in sentence_spans(doc.text, paragraph))
    return sentences


def statement(rng: random.Random, sentences: list[str]) -> str:
    """One made-up statement: a date marker, then paragraphs of drawn sentences."""
    date = f"date 20{rng.randint(10, 25)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    paragraphs = [
        " ".join(rng.choice(sentences) for _ in range(rng.randint(1, 4)))
        for _ in range(rng.randint(2, 5))
    ]
    return date + "\n" + "\n\n".join(paragraphs) + "\n"


def make_corpus(folder: Path, count: int, seed: int) -> None:
    rng = random.Random(seed)
    sentences = source_sentences()
    folder.mkdir(parents=True, exist_ok=True)
    for number in range(count):
        (folder / f"statement-{number:04d}.txt").write_text(
            statement(rng, sentences), encoding="utf-8"
        )


def timed_build(corpus: Path, index: Path, encoder, settings: Settings) -> tuple[float, dict]:
    started = time.perf_counter()
    generation = build_index(corpus, index, encoder, settings, token_counter())
    seconds = time.perf_counter() - started
    return seconds, json.loads((generation / "manifest.json").read_text(encoding="utf-8"))


def run(count: int, seed: int, work: Path) -> float:
    """Print both build times and their ratio; return the ratio."""
    corpus, index = work / "statements", work / "index"
    make_corpus(corpus, count, seed)
    settings = Settings.from_env()
    started = time.perf_counter()
    encoder = load_encoder(settings.threads)
    print(f"model loaded in {time.perf_counter() - started:.1f} s (not counted below)")
    full, manifest = timed_build(corpus, index, encoder, settings)
    counts = manifest["counts"]
    print(
        f"full build: {full:.1f} s for {counts['documents']} statements, "
        f"{counts['passages']} passages, {counts['units']} sentences and clauses"
    )
    changed = corpus / f"statement-{count // 2:04d}.txt"
    text = changed.read_text(encoding="utf-8")
    changed.write_text(text + "\nThe delegations will meet again next year.\n", encoding="utf-8")
    incremental, manifest = timed_build(corpus, index, encoder, settings)
    build = manifest["build"]
    print(
        f"incremental build after changing {changed.name}: {incremental:.2f} s "
        f"({build['embedded']} statement embedded, {build['reused']} reused)"
    )
    ratio = incremental / full
    verdict = "holds" if ratio <= TARGET else "MISSES"
    print(f"ratio: {ratio:.2%} of the full build (target <= {TARGET:.0%}: {verdict})")
    return ratio


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--statements", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--keep", type=Path, help="build here and keep it (default: a temp dir)")
    args = parser.parse_args(argv)
    if args.keep:
        ratio = run(args.statements, args.seed, args.keep)
    else:
        with tempfile.TemporaryDirectory(prefix="ctqa-bench-index-") as work:
            ratio = run(args.statements, args.seed, Path(work))
    return 0 if ratio <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
