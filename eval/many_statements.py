"""Abstention on a corpus of many short statements: the SQuAD slice's articles cut into
statements of three paragraphs each (98 files), indexed with the real model.

A question's nearest passages then often come from sibling statements on the same subject; the
agreement that abstention weighs must not count those against it (they agree by cosine), or it
would abstain on questions the corpus answers. Prints the answer rate on SQuAD's answerable
questions and the abstention rate on `outside.jsonl`: as shipped (retrieval alone, its
confidence less a disagreement penalty), counting agreement by statement alone, and with the
reader on.

    .venv/bin/python eval/many_statements.py
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np

from ctqa import Bot, Settings

SQUAD = Path(__file__).resolve().parent / "squad"
PARAGRAPHS_PER_STATEMENT = 3


def split_corpus(folder: Path) -> int:
    """Write every article as statements of `PARAGRAPHS_PER_STATEMENT` paragraphs."""
    count = 0
    for article in sorted((SQUAD / "corpus").glob("*.txt")):
        paragraphs = [p for p in article.read_text(encoding="utf-8").split("\n\n") if p.strip()]
        for i in range(0, len(paragraphs), PARAGRAPHS_PER_STATEMENT):
            part = paragraphs[i : i + PARAGRAPHS_PER_STATEMENT]
            (folder / f"{article.stem}-{count:03d}.txt").write_text(
                "\n\n".join(part) + "\n", encoding="utf-8"
            )
            count += 1
    return count


def questions(name: str) -> list[str]:
    with open(SQUAD / name, encoding="utf-8") as lines:
        rows = [json.loads(line) for line in lines]
    return [r["question"] for r in rows if r["answerable"] or name == "outside.jsonl"]


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        corpus, index = Path(tmp) / "statements", Path(tmp) / "index"
        corpus.mkdir()
        print(f"{split_corpus(corpus)} statements of at most {PARAGRAPHS_PER_STATEMENT} paragraphs")
        asked, outside = questions("questions.jsonl"), questions("outside.jsonl")
        variants = {
            "shipped": {},
            "agreement by statement alone": {"agreement_cosine": float("inf")},
            "reader on": {"reader": "on"},
        }
        for label, change in variants.items():
            # the index is built once: these settings do not shape it
            bot = Bot(corpus=corpus, index=index, settings=Settings.from_env(**change))
            answered = np.mean([not bot.answer(q).abstained for q in asked])
            abstained = np.mean([bot.answer(q).abstained for q in outside])
            print(
                f"{label}: answer rate {answered:.3f} ({len(asked)} questions), "
                f"outside abstention {abstained:.3f} ({len(outside)})"
            )


if __name__ == "__main__":
    main()
