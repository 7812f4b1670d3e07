"""How much fast-scan IVF re-scores (`ctqa.vectors.REFINE_FACTOR`, `REFINE_FLOOR`): recall@5
against exact search of each choice, on SQuAD training questions (every 20th of
`eval/squad-train/questions.jsonl`, 400), over `make bench`'s 100,000-passage index, beside
the float16 IVF that ctqa built before (same cells, same nprobe).

Run `make bench` first (it builds the index in ~/.cache/ctqa/bench/), then:

    .venv/bin/python eval/bench/choose_refine.py

"at k" is the size of the search: 5 as the bench's recall row asks, or ctqa's own (50 passages,
150 units), keeping the top 5. No reported question is used.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench import default_scale_dir  # noqa: E402
from bench_common import ROOT  # noqa: E402
from bench_scale import recall_at_5  # noqa: E402

TRAINING_QUESTIONS = ROOT / "eval" / "squad-train" / "questions.jsonl"
CHOICES = ((4, 50), (8, 50), (8, 150), (16, 50))  # (factor, floor)


def float16_ivf(rows: np.ndarray, cells: int):
    """IVF with float16 vectors in every cell, trained as `vector_index` trains its cells."""
    import faiss

    from ctqa.vectors import KMEANS_POINTS_PER_CELL, KMEANS_ROUNDS

    dim = rows.shape[1]
    quantizer = faiss.IndexFlatIP(dim)
    fp16 = faiss.ScalarQuantizer.QT_fp16
    ivf = faiss.IndexIVFScalarQuantizer(
        quantizer, dim, cells, fp16, faiss.METRIC_INNER_PRODUCT, False
    )
    ivf.cp.niter = KMEANS_ROUNDS
    size = min(len(rows), KMEANS_POINTS_PER_CELL * cells)
    sample = np.random.default_rng(0).choice(len(rows), size=size, replace=False)
    ivf.train(rows[np.sort(sample)])
    ivf.add(rows)
    return ivf


def main() -> None:
    import faiss

    from ctqa.config import Settings
    from ctqa.encoder import load_encoder
    from ctqa.store import load_index
    from ctqa.vectors import nearest

    folder = default_scale_dir(100_000) / "index"
    if not (folder / "CURRENT").is_file():
        sys.exit(f"no index in {folder}: run `make bench` first, which builds it.")
    settings = Settings.from_env()
    index = load_index(folder)
    lines = TRAINING_QUESTIONS.read_text(encoding="utf-8").splitlines()
    questions = [json.loads(line)["question"] for line in lines[::20][:400]]
    queries = load_encoder(settings.threads).encode(questions)
    searches = (
        ("passages", index.passage_vectors, index.passage_rows, settings.candidates,
         settings.nprobe_passages),
        ("units", index.unit_vectors, index.unit_rows, 3 * settings.candidates,
         settings.nprobe_units),
    )  # fmt: skip
    print(f"recall@5 against exact search, {len(questions)} SQuAD training questions")
    for name, vectors, rows, own_k, nprobe in searches:
        exact = faiss.IndexFlatIP(rows.shape[1])
        exact.add(rows)
        old = float16_ivf(rows, faiss.extract_index_ivf(vectors).nlist)
        found = nearest(old, queries, 5, nprobe)
        before = recall_at_5(exact, found, queries)
        print(f"{name} ({len(rows):,}, nprobe {nprobe}): float16 IVF {before:.3f}")
        for factor, floor in CHOICES:
            figures = []
            for k in (5, own_k):
                found = nearest(vectors, queries, k, nprobe, factor, floor)[:, :5]
                figures.append(f"at k {k} {recall_at_5(exact, found, queries):.3f}")
            print(f"  fast-scan, factor {factor}, floor {floor}: {', '.join(figures)}")


if __name__ == "__main__":
    main()
