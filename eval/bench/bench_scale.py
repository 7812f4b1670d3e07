"""Scale: a reproducible corpus of N passages recombined from the SQuAD slice's sentences,
its index build (time, size, peak memory) and query latency, exact and approximate.

The build and the queries run in worker processes (`python eval/bench/bench_scale.py build|query`)
so that their peak memory is their own; each prints one JSON object.

Every generated paragraph is 2 to 4 sentences drawn with a fixed seed from the slice's 1,627,
so passages are unique but sentences (and so the units ctqa embeds) repeat. Embedding 100,000
passages and about a million units takes hours on two busy cores, so the build's vectors are,
by choice (`--scale-vectors`):
- "composed" (default): each distinct sentence and clause embedded once; a passage's vector is
  the normalised mean of its sentences' (`ComposedEncoder`). Everything else is ctqa's build.
- "memo": each distinct text embedded once per call (`MemoEncoder`); the index is the same as
  a plain build's.
- "real": ctqa's build as is.
For the first two, the time of what was not embedded is estimated from timed samples.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_common import (  # noqa: E402
    ROOT,
    Latency,
    Report,
    Row,
    folder_bytes,
    interleaved,
    paired_overhead_ms,
    ratio,
)

GENERATOR = "squad-sentences-2to4-v1"
SQUAD_CORPUS = ROOT / "eval" / "squad" / "corpus"
PER_DOCUMENT = 100


def sentence_pool(source: Path = SQUAD_CORPUS) -> list[str]:
    """Sentences of the corpus, as ctqa's chunking splits them, in corpus order."""
    from ctqa.chunking import chunk_document
    from ctqa.corpus import load_corpus
    from ctqa.minilm import token_counter

    count = token_counter()
    return [
        doc.text[s.start : s.end]
        for doc in load_corpus(source)
        for p in chunk_document(doc, count, 256)
        for s in p.sentences
    ]


def paragraphs(pool: list[str], n: int, seed: int, fits=lambda text: True) -> list[tuple[str, ...]]:
    """`n` paragraphs of 2 to 4 sentences of `pool` drawn with `seed`, as their sentences; a
    paragraph that does not `fit` loses sentences from its end.

    >>> pool = ["A.", "B.", "C.", "D."]
    >>> paragraphs(pool, 2, seed=1) == paragraphs(pool, 2, seed=1)
    True
    """
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        chosen = rng.sample(pool, rng.randint(2, min(4, len(pool))))
        while len(chosen) > 1 and not fits(" ".join(chosen)):
            chosen.pop()
        out.append(tuple(chosen))
    return out


def generated_paragraphs(n: int, seed: int, source: Path = SQUAD_CORPUS) -> list[tuple[str, ...]]:
    """The paragraphs `generate_corpus` writes, as their sentences."""
    from ctqa.minilm import token_counter

    count = token_counter()
    return paragraphs(sentence_pool(source), n, seed, fits=lambda t: count(t) <= 256)


@dataclass(frozen=True)
class Generated:
    """A generated corpus folder and what made it."""

    folder: Path
    passages: int
    documents: int
    seed: int
    generator: str = GENERATOR


def generate_corpus(folder: Path, n: int, seed: int, source: Path = SQUAD_CORPUS) -> Generated:
    """Write `n` paragraphs into files of `PER_DOCUMENT` under `folder`; reuse an identical
    earlier generation. Paragraphs fit the encoder (at most 256 word pieces), so each is one
    passage."""

    folder = Path(folder)
    stamp = folder / "generated.json"
    wanted = {"passages": n, "seed": seed, "generator": GENERATOR}
    if stamp.is_file() and json.loads(stamp.read_text()) == wanted:
        docs = len(list(folder.glob("*.txt")))
        return Generated(folder, n, docs, seed)
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.txt"):
        old.unlink()
    texts = [" ".join(p) for p in generated_paragraphs(n, seed, source)]
    docs = 0
    for at in range(0, n, PER_DOCUMENT):
        body = "\n\n".join(texts[at : at + PER_DOCUMENT]) + "\n"
        (folder / f"generated-{docs:05d}.txt").write_text(body, encoding="utf-8")
        docs += 1
    stamp.write_text(json.dumps(wanted), encoding="utf-8")
    return Generated(folder, n, docs, seed)


@dataclass
class MemoEncoder:
    """Wraps an encoder: each call embeds each distinct text once, and keeps a sample of the
    texts it did not need to embed, to estimate what they would have cost."""

    inner: object
    requested: int = 0
    encoded: int = 0
    skipped_sample: list[str] = field(default_factory=list)
    _skipped: int = 0

    @property
    def name(self):
        return self.inner.name

    @property
    def weights_sha256(self):
        return self.inner.weights_sha256

    @property
    def dim(self):
        return self.inner.dim

    def encode(self, texts, batch_size: int = 32, progress: bool = False) -> np.ndarray:
        texts = list(texts)
        slots: dict[str, int] = {}
        inverse = np.empty(len(texts), dtype=np.int64)
        rng = random.Random(len(texts))
        for i, text in enumerate(texts):
            slot = slots.get(text)
            if slot is None:
                slot = slots[text] = len(slots)
            else:
                self._sample(text, rng)
            inverse[i] = slot
        self.requested += len(texts)
        self.encoded += len(slots)
        unique = self.inner.encode(list(slots), batch_size=batch_size, progress=progress)
        return unique[inverse]

    def _sample(self, text: str, rng: random.Random, size: int = 2000) -> None:
        """Reservoir sampling over the texts not embedded again."""
        self._skipped += 1
        if len(self.skipped_sample) < size:
            self.skipped_sample.append(text)
        elif (j := rng.randrange(self._skipped)) < size:
            self.skipped_sample[j] = text


@dataclass
class ComposedEncoder:
    """For a generated corpus: embeds each distinct sentence and clause once, and gives a
    generated passage the normalised mean of its sentences' vectors instead of embedding it.
    The index has ctqa's structure, texts and unit vectors; only passage vectors are stand-ins.
    Keeps samples of what it did not embed, to estimate what embedding it would have cost."""

    inner: object
    sentences: dict[str, tuple[str, ...]]  # generated passage text -> its sentences
    cache: dict[str, np.ndarray] = field(default_factory=dict)
    requested: int = 0
    encoded: int = 0
    composed: list[str] = field(default_factory=list)  # sample of composed passages
    composed_count: int = 0
    skipped_sample: list[str] = field(default_factory=list)
    _skipped: int = 0

    name = property(lambda self: self.inner.name)
    weights_sha256 = property(lambda self: self.inner.weights_sha256)
    dim = property(lambda self: self.inner.dim)

    def encode(self, texts, batch_size: int = 32, progress: bool = False) -> np.ndarray:
        texts = list(texts)
        need: dict[str, None] = {}
        for text in texts:
            for part in self.sentences.get(text) or (text,):
                if part not in self.cache:
                    need[part] = None
        if need:
            vectors = self.inner.encode(list(need), batch_size=batch_size, progress=progress)
            self.cache.update(zip(need, vectors, strict=True))
        self.requested += len(texts)
        self.encoded += len(need)
        rng = random.Random(len(texts))
        out = np.empty((len(texts), self.inner.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            if text in self.cache:
                out[i] = self.cache[text]
                if text not in need:
                    self._skipped += 1
                    _reservoir(self.skipped_sample, text, self._skipped, rng)
                continue
            mean = np.mean([self.cache[p] for p in self.sentences[text]], axis=0)
            out[i] = mean / max(float(np.linalg.norm(mean)), 1e-12)
            self.composed_count += 1
            _reservoir(self.composed, text, self.composed_count, rng, size=300)
        return out


def _reservoir(sample: list, item, seen: int, rng: random.Random, size: int = 2000) -> None:
    if len(sample) < size:
        sample.append(item)
    elif (j := rng.randrange(seen)) < size:
        sample[j] = item


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker_build(corpus: Path, index: Path, vectors: str, threads: int | None) -> dict:
    """Build the index of `corpus` into `index`; figures as a dict. `vectors`: "real" (ctqa's
    build as is), "memo" (each distinct text embedded once) or "composed" (`ComposedEncoder`)."""
    from ctqa.build import build_index
    from ctqa.config import Settings
    from ctqa.encoder import load_encoder
    from ctqa.minilm import token_counter

    settings = Settings.from_env()
    real = load_encoder(threads or settings.threads)
    rss_before = peak_rss_mb()
    if vectors == "composed":
        stamp = json.loads((corpus / "generated.json").read_text())
        made = generated_paragraphs(stamp["passages"], stamp["seed"])
        encoder = ComposedEncoder(real, {" ".join(p): p for p in made})
        del made
    else:
        encoder = MemoEncoder(real) if vectors == "memo" else real
    started = time.perf_counter()
    generation = build_index(corpus, index, encoder, settings, token_counter(), progress=False)
    seconds = time.perf_counter() - started
    figures = {
        "seconds": seconds,
        "peak_rss_mb": peak_rss_mb(),
        "rss_after_model_mb": rss_before,
        "index_bytes": folder_bytes(generation),
        "counts": json.loads((generation / "manifest.json").read_text())["counts"],
        "vectors": vectors,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if vectors != "real":
        figures |= {"texts_requested": encoder.requested, "texts_encoded": encoder.encoded}
        figures["estimated_seconds_embedding_all"] = seconds + skipped_cost(
            real, encoder, settings.encode_batch_size
        )
    return figures


def skipped_cost(real, encoder, batch_size: int) -> float:
    """Seconds the texts an encoder did not embed would have cost, from timed samples."""
    cost = 0.0
    groups = [(encoder.skipped_sample, encoder.requested - encoder.encoded)]
    if isinstance(encoder, ComposedEncoder):
        groups = [
            (encoder.skipped_sample, encoder._skipped),
            (encoder.composed, encoder.composed_count),
        ]
    for sample, count in groups:
        if sample and count:
            started = time.perf_counter()
            real.encode(sample, batch_size=batch_size)
            cost += (time.perf_counter() - started) / len(sample) * count
    return cost


# kind -> search settings tried, (passage index, unit index): nprobe or efSearch
# (IVF is ctqa's own `vector_index` setting now: the "scale shipped" row measures it.)
APPROXIMATE = {
    "hnsw32": ((64, 150), (128, 150)),
}


def approximate(flat, kind: str, seed: int = 0):
    """An approximate copy of a flat inner-product index: "hnsw32" (HNSW graph, 32 links) or
    "ivf" (inverted lists over 4·sqrt(n) k-means cells, with a direct map to reconstruct)."""
    import faiss

    vectors = flat.reconstruct_n(0, flat.ntotal)
    if kind == "hnsw32":
        index = faiss.IndexHNSWFlat(flat.d, 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 80
    elif kind == "ivf":
        cells = int(min(4096, max(16, 4 * np.sqrt(flat.ntotal))))
        quantizer = faiss.IndexFlatIP(flat.d)
        index = faiss.IndexIVFFlat(quantizer, flat.d, cells, faiss.METRIC_INNER_PRODUCT)
        rng = np.random.default_rng(seed)
        sample = rng.choice(flat.ntotal, size=min(flat.ntotal, 64 * cells), replace=False)
        index.train(vectors[np.sort(sample)])
    else:
        raise ValueError(f"unknown approximate index {kind!r}")
    index.add(vectors)
    if kind == "ivf":
        index.make_direct_map()
    return index


def set_search(index, kind: str, value: int, k: int) -> None:
    """Set how hard an approximate index searches: efSearch (at least k) or nprobe."""
    if kind == "hnsw32":
        index.hnsw.efSearch = max(value, k)
    else:
        index.nprobe = value


def kind_name(vectors) -> str:
    """A FAISS index's class, and for a re-scored one the classes it is made of."""
    import faiss

    if isinstance(vectors, faiss.IndexRefine):
        parts = (
            faiss.downcast_index(vectors.base_index),
            faiss.downcast_index(vectors.refine_index),
        )
        return "+".join(type(part).__name__ for part in parts)
    return type(vectors).__name__


def recall_at_5(exact, found: np.ndarray, queries: np.ndarray) -> float:
    """Share of the rows an approximate search `found` for `queries` (5 a query) that score at
    least exact search's 5th best (ties, as between repeated sentences, count as found)."""
    from ctqa.vectors import vector_rows

    want, _ = exact.search(queries, 5)
    rows = vector_rows(exact)
    got = np.einsum("qkd,qd->qk", rows[np.maximum(found, 0)], queries)
    hit = (got >= want[:, 4:5] - 1e-5) & (found >= 0)
    return float(hit.mean())


def flat_copy(vectors):
    """An exact (flat) index over the same vectors as `vectors` (itself if flat already)."""
    import faiss

    if isinstance(vectors, faiss.IndexFlat):
        return vectors
    flat = faiss.IndexFlatIP(vectors.d)
    flat.add(vectors.reconstruct_n(0, vectors.ntotal))
    return flat


def switcher(bot):
    """A function that makes `bot` search a given variant of its loaded index (its FAISS
    indexes swapped for exact or other approximate ones)."""
    retriever = bot.load()
    if bot.load() is not retriever:
        raise RuntimeError("the bot makes a new retriever per question; cannot swap its index")

    def use(index) -> None:
        retriever.index = index

    return use


def using(use, variant, tune, call):
    """`call` on `variant` of the index, with its search settings set first."""

    def run(q):
        use(variant)
        tune()
        return call(q)

    return run


def worker_query(
    statement_index: Path, index: Path, rounds: int, kinds: tuple[str, ...] = tuple(APPROXIMATE)
) -> dict:
    """Bot.answer p50/p95 on the statement and on the scale index, exact and approximate,
    with the bare encode, taking turns on the statement questions; recall@5 of the
    approximate searches on SQuAD and statement questions."""
    import dataclasses

    from bench_query import ask, statement_questions

    from ctqa import Bot
    from ctqa.config import Settings
    from ctqa.encoder import load_encoder
    from ctqa.evaluate import load_questions
    from ctqa.vectors import nearest

    settings = Settings.from_env()
    encoder = load_encoder(settings.threads)
    statement = Bot(corpus=ROOT / "seeds", index=statement_index, encoder=encoder)
    statement.load()  # noqa: B018 - loads it
    rss_before = peak_rss_mb()
    scale = Bot(index=index, encoder=encoder)
    load_s = time.perf_counter()
    idx = scale.load().index
    load_s = time.perf_counter() - load_s
    rss_loaded = peak_rss_mb()
    use = switcher(scale)
    questions = statement_questions()
    shipped = idx  # as ctqa loads it: `vector_index` "auto" makes IVF indexes at this size
    idx = dataclasses.replace(
        shipped,
        passage_vectors=flat_copy(shipped.passage_vectors),
        unit_vectors=flat_copy(shipped.unit_vectors),
    )
    calls = {
        "encode": lambda q: encoder.encode([q.text]),
        "statement": ask(statement),
        "scale exact": using(use, idx, lambda: None, ask(scale)),
        "scale shipped": using(use, shipped, lambda: None, ask(scale)),
    }
    squad = [q.question for q in load_questions(ROOT / "eval/squad/questions.jsonl")][:200]
    vectors = encoder.encode(squad + [q.text for q in questions])
    n = settings.candidates
    exact_answers = using(use, idx, lambda: None, lambda q: scale.answer(q, k=5))
    shipped_answers = using(use, shipped, lambda: None, lambda q: scale.answer(q, k=5))
    meta = {
        "shipped": {
            "kinds": [kind_name(v) for v in (shipped.passage_vectors, shipped.unit_vectors)],
            "nprobe": [settings.nprobe_passages, settings.nprobe_units],
            "recall_passages_at_5": recall_at_5(
                idx.passage_vectors,
                nearest(shipped.passage_vectors, vectors, 5, settings.nprobe_passages),
                vectors,
            ),
            "recall_units_at_5": recall_at_5(
                idx.unit_vectors,
                nearest(shipped.unit_vectors, vectors, 5, settings.nprobe_units),
                vectors,
            ),
            "answers_same_top5": same_answers(exact_answers, shipped_answers, squad[:50]),
            # the statement's questions: the generated corpus answers none of them, and their
            # nearest passages are near-ties among repeated sentences
            "answers_same_top5_unanswered": same_answers(
                exact_answers, shipped_answers, [q.text for q in questions[:50]]
            ),
        }
    }
    for kind in kinds:
        values = APPROXIMATE[kind]
        started = time.perf_counter()
        p_index = approximate(idx.passage_vectors, kind)
        u_index = approximate(idx.unit_vectors, kind)
        built = time.perf_counter() - started
        variant = dataclasses.replace(idx, passage_vectors=p_index, unit_vectors=u_index)
        for p_value, u_value in values:
            setting = "efSearch" if kind == "hnsw32" else "nprobe"
            name = f"{kind} {setting} {p_value} (passages) / {u_value} (units)"

            def tune(kind=kind, p_value=p_value, u_value=u_value, p_index=p_index, u_index=u_index):
                set_search(p_index, kind, p_value, n)
                set_search(u_index, kind, u_value, 3 * n)

            tune()
            approx = using(use, variant, tune, lambda q: scale.answer(q, k=5))
            meta[name] = {
                "build_s": built,
                "recall_passages_at_5": recall_at_5(
                    idx.passage_vectors, p_index.search(vectors, 5)[1], vectors
                ),
                "recall_units_at_5": recall_at_5(
                    idx.unit_vectors, u_index.search(vectors, 5)[1], vectors
                ),
                "answers_same_top5": same_answers(exact_answers, approx, squad[:50]),
            }
            calls[name] = using(use, variant, tune, ask(scale))
    # Exact search streams 1.4 GB per question and evicts what the other searches keep in the
    # CPU caches: it is timed in a pass of its own, with its own encode samples, on every other
    # question (its p50 barely moves, and the whole set would lengthen the run for nothing).
    exact_call = calls.pop("scale exact")
    samples = interleaved(calls, questions, rounds=rounds)
    overhead = {
        name: paired_overhead_ms(values, samples["encode"])
        for name, values in samples.items()
        if name != "encode"
    }
    alone = interleaved(
        {"encode": calls["encode"], "exact": exact_call}, questions[::2], rounds=rounds
    )
    samples["scale exact"] = alone["exact"]
    overhead["scale exact"] = paired_overhead_ms(alone["exact"], alone["encode"])
    return {
        "latency": {name: vars(Latency.of(values)) for name, values in samples.items()},
        "overhead_ms": overhead,
        "approx": meta,
        "load_s": load_s,
        "rss_before_scale_mb": rss_before,
        "rss_loaded_mb": rss_loaded,
        "peak_rss_mb": peak_rss_mb(),
        "passages": idx.passage_vectors.ntotal,
        "units": idx.unit_vectors.ntotal,
    }


def same_answers(exact, approx, questions: list[str]) -> float:
    """Share of the top 5 cited passages (answered or nearest) that both searches give."""
    shares = []
    for q in questions:
        a, b = exact(q), approx(q)
        ka = {(c.doc_id, c.start) for c in a.citations or a.nearest}
        kb = {(c.doc_id, c.start) for c in b.citations or b.nearest}
        shares.append(len(ka & kb) / max(1, len(ka)))
    return float(np.mean(shares)) if shares else float("nan")


def run_worker(args: list[str], timeout: float | None = None) -> dict:
    """Run this file as a worker process; its last stdout line is the JSON result."""
    out = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )
    if out.returncode != 0:
        raise RuntimeError(f"scale worker {args[0]} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def recorded_build(index: Path, corpus: Path, vectors: str, search_too: bool = True) -> dict:
    """The recorded build figures of `index` when it is still fresh for `corpus` and was built
    with the same kind of `vectors`, else {}. With `search_too` False, an index fresh but for
    how its vectors are searched (flat or IVF, which a re-index changes without embedding)
    counts as fresh."""
    from ctqa.config import MODEL_DIM, MODEL_NAME, MODEL_WEIGHTS_SHA256, Settings
    from ctqa.manifest import check_status, index_settings

    record = index / "bench-build.json"
    if not record.is_file():
        return {}
    expected = index_settings(Settings.from_env(), MODEL_NAME, MODEL_WEIGHTS_SHA256, MODEL_DIM)
    if not search_too:
        expected.pop("vectors")
    if not check_status(index, corpus, expected).fresh:
        return {}
    figures = json.loads(record.read_text())
    return figures if figures.get("vectors") == vectors else {}


def scale_section(
    report: Report,
    n: int,
    folder: Path,
    statement_index: Path,
    rounds: int,
    seed: int = 20211117,
    vectors: str = "composed",
    rebuild: bool = False,
    approx: str = ",".join(APPROXIMATE),
) -> None:
    """Section 5."""
    gen = generate_corpus(folder / "corpus", n, seed)
    index = folder / "index"
    build = {} if rebuild else recorded_build(index, gen.folder, vectors)
    reused = bool(build)
    earlier = {} if rebuild or build else recorded_build(index, gen.folder, vectors, False)
    if earlier:
        # only how vectors are searched changed: ctqa re-indexes without embedding anything
        again = run_worker(["build", str(gen.folder), str(index), "--vectors", vectors])
        build = {**earlier, "reindexed_s": again["seconds"], "index_bytes": again["index_bytes"]}
        (index / "bench-build.json").write_text(json.dumps(build), encoding="utf-8")
        reused = True
    if not build:
        shutil.rmtree(index, ignore_errors=True)  # a build would reuse vectors from an old one
        build = run_worker(["build", str(gen.folder), str(index), "--vectors", vectors])
        (index / "bench-build.json").write_text(json.dumps(build), encoding="utf-8")
    counts = build["counts"]
    when = f"reused build of {build['created']}" if reused else "built in this run"
    if "reindexed_s" in build:
        when += f", re-indexed for the vectors setting in {build['reindexed_s']:.0f} s"
    est = build.get("estimated_seconds_embedding_all")
    how = (
        f" ({vectors} vectors: embedded {build['texts_encoded']:,} distinct texts for "
        f"{build['texts_requested']:,}; est. {est:.0f} s embedding all)"
        if est
        else ""
    )
    report.add(
        Row(
            "5 scale",
            f"build {counts['passages']:,} passages, {counts['units']:,} units ({when})",
            f"{build['seconds']:.0f} s{how}",
            f"peak RSS {build['peak_rss_mb']:.0f} MB (model alone "
            f"{build['rss_after_model_mb']:.0f} MB), index {build['index_bytes'] / 1e6:.0f} MB",
        )
    )
    q = run_worker(
        ["query", str(statement_index), str(index), "--rounds", str(rounds), "--approx", approx]
    )
    lat = {name: Latency(**v) for name, v in q["latency"].items()}
    over = q["overhead_ms"]
    base = lat["statement"]
    baseline = f"statement {base} (+{over['statement']:.1f} ms over encode)"
    r = ratio(lat["scale exact"].p50_ms, base.p50_ms)
    report.add(
        Row(
            "5 scale",
            f"Bot.answer at {q['passages']:,} passages, {q['units']:,} units, exact (flat) "
            f"search (every other question); index load {q['load_s']:.1f} s, RSS "
            f"{q['rss_loaded_mb']:.0f} MB",
            f"{lat['scale exact']} (+{over['scale exact']:.1f} ms over encode)",
            baseline,
            r,
            "<= 1.5",
            r <= 1.5,
        )
    )
    shipped = q["approx"].pop("shipped")
    r = ratio(lat["scale shipped"].p50_ms, base.p50_ms)
    recall = min(shipped["recall_passages_at_5"], shipped["recall_units_at_5"])
    report.add(
        Row(
            "5 scale",
            f"same, as shipped (vector_index auto: {' / '.join(shipped['kinds'])}, nprobe "
            f"{shipped['nprobe'][0]} / {shipped['nprobe'][1]}): recall@5 passages "
            f"{shipped['recall_passages_at_5']:.3f}, units {shipped['recall_units_at_5']:.3f}; "
            f"same top-5 answers {shipped['answers_same_top5']:.3f} (SQuAD questions the corpus "
            f"answers), {shipped['answers_same_top5_unanswered']:.3f} (statement questions it "
            "does not)",
            f"{lat['scale shipped']} (+{over['scale shipped']:.1f} ms over encode)",
            baseline,
            r,
            "<= 1.5, recall@5 >= 0.99",
            r <= 1.5 and recall >= 0.99,
        )
    )
    for name, meta in q["approx"].items():
        r = ratio(lat[name].p50_ms, base.p50_ms)
        recall = min(meta["recall_passages_at_5"], meta["recall_units_at_5"])
        report.add(
            Row(
                "5 scale",
                f"same, approximate {name}: recall@5 passages "
                f"{meta['recall_passages_at_5']:.3f}, units {meta['recall_units_at_5']:.3f}; "
                f"same top-5 answers {meta['answers_same_top5']:.3f}; "
                f"built in {meta['build_s']:.0f} s",
                f"{lat[name]} (+{over[name]:.1f} ms over encode)",
                baseline,
                r,
                "<= 1.5, recall@5 >= 0.99",
                r <= 1.5 and recall >= 0.99,
            )
        )
    report.details["scale"] = {"generated": asdict(gen), "build": build, "query": q}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="scale bench worker (run by eval/bench/bench.py)")
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build")
    b.add_argument("corpus", type=Path)
    b.add_argument("index", type=Path)
    b.add_argument("--vectors", choices=("composed", "memo", "real"), default="composed")
    b.add_argument("--threads", type=int)
    q = sub.add_parser("query")
    q.add_argument("statement_index", type=Path)
    q.add_argument("index", type=Path)
    q.add_argument("--rounds", type=int, default=1)
    q.add_argument("--approx", default=",".join(APPROXIMATE), help="approximate kinds to try")
    args = parser.parse_args(argv)
    if args.command == "build":
        result = worker_build(args.corpus, args.index, args.vectors, args.threads)
    else:
        kinds = tuple(k for k in args.approx.split(",") if k)
        result = worker_query(args.statement_index, args.index, args.rounds, kinds)
    print(json.dumps(result, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
