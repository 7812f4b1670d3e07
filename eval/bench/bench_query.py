"""Warm query latency against the bare encoder, the LangChain peer, and the ONNX encoders."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench_common import ROOT, Latency, Report, Row, interleaved, paired_overhead_ms, ratio


@dataclass(frozen=True)
class Question:
    """A question as the bench asks it: the text and the earlier turns, if any."""

    text: str
    history: tuple[str, ...] = ()


def statement_questions(limit: int | None = None) -> list[Question]:
    """Every question of the statement eval set (answerable, unanswerable, follow-ups)."""
    from ctqa.evaluate import default_sets, load_questions

    questions = [
        Question(q.question, q.history)
        for path in default_sets()["statement"].files
        for q in load_questions(path)
    ]
    return questions[:limit] if limit else questions


def ask(bot, k: int = 3) -> Callable[[Question], object]:
    return lambda q: bot.answer(q.text, history=list(q.history) or None, k=k)


def bare_encode(model) -> Callable[[Question], object]:
    """`SentenceTransformer.encode(question)` as a user of the library would call it."""
    return lambda q: model.encode(q.text)


@dataclass(frozen=True)
class Peer:
    """LangChain's FAISS vector store with HuggingFaceEmbeddings over the same passages."""

    store: object
    package: str

    def search(self, q: Question, k: int = 3):
        return self.store.similarity_search(q.text, k=k)


def build_peer(texts: list[str], model_path: Path) -> Peer:
    """The peer, or ImportError when the bench extra is not installed."""
    try:
        from langchain_huggingface import HuggingFaceEmbeddings

        package = "langchain-huggingface"
    except ImportError:  # langchain-huggingface pins huggingface-hub < 2, which ctqa cannot
        import warnings

        from langchain_community.embeddings import HuggingFaceEmbeddings

        warnings.filterwarnings("ignore", message=".*HuggingFaceEmbeddings.*")  # deprecated alias
        package = "langchain-community"
    from langchain_community.vectorstores import FAISS

    embeddings = HuggingFaceEmbeddings(
        model_name=str(model_path),
        model_kwargs={"device": "cpu", "local_files_only": True},
        encode_kwargs={"normalize_embeddings": True},
    )
    return Peer(FAISS.from_texts(texts, embeddings), package)


def warm_and_peer(
    report: Report,
    bot,
    questions: list[Question],
    rounds: int,
    baseline=None,
    with_peer: bool = True,
    with_reader: bool = True,
) -> None:
    """Sections 1 and 2: Bot.answer as shipped (the default backend, and PyTorch) and with the
    reader on, bare `SentenceTransformer.encode` of `baseline` (a PyTorch ctqa Encoder; the
    bot's own encoder if None) and the peer's search, taking turns."""
    from ctqa.minilm import model_dir

    retriever = bot.load()  # loads the model and the index
    baseline = baseline or retriever.encoder
    calls = {"bare": bare_encode(baseline.model), "ctqa": ask(bot)}
    if with_reader:
        calls["reader"] = ask(like(bot, reader="on" if bot.settings.reader == "off" else "off"))
    backend = getattr(retriever.encoder, "backend", "?")
    if baseline is not retriever.encoder:
        calls["ctqa torch"] = ask(statement_bot(baseline, bot.index_dir))
    peer = None
    try:
        if with_peer:
            peer = build_peer([p.text for p in retriever.index.passages], model_dir())
            calls["peer"] = peer.search
    except ImportError as exc:
        report.notes.append(f"peer skipped: {exc}; install the bench extra.")
    samples = interleaved(calls, questions, rounds=rounds)
    lat = {name: Latency.of(values) for name, values in samples.items()}
    over = {name: paired_overhead_ms(v, samples["bare"]) for name, v in samples.items()}
    what = f"{len(questions)} statement questions x{rounds}"
    shipped = f"CTQA_READER={bot.settings.reader}, as shipped"
    r = ratio(lat["ctqa"].p50_ms, lat["bare"].p50_ms)
    report.add(
        Row(
            "1 warm query",
            f"Bot.answer ({shipped}), default backend ({backend}), {what}",
            f"{lat['ctqa']} ({over['ctqa']:+.1f} ms vs encode)",
            f"bare SentenceTransformer.encode {lat['bare']}",
            r,
            "<= 1.25",
            r <= 1.25,
        )
    )
    if "reader" in lat:
        other = "on" if bot.settings.reader == "off" else "off"
        p50 = lat["reader"].p50_ms
        report.add(
            Row(
                "1 warm query",
                f"Bot.answer, CTQA_READER={other} ({backend}), {what}",
                f"{lat['reader']} ({over['reader']:+.1f} ms vs encode)",
                f"bare SentenceTransformer.encode {lat['bare']}",
                ratio(p50, lat["bare"].p50_ms),
                "p50 <= 40 ms with the reader on" if other == "on" else "-",
                p50 <= 40.0 if other == "on" else None,
            )
        )
    if "ctqa torch" in lat:
        report.add(
            Row(
                "1 warm query",
                f"Bot.answer ({shipped}), torch backend, {what}",
                f"{lat['ctqa torch']} ({over['ctqa torch']:+.1f} ms vs encode)",
                f"bare SentenceTransformer.encode {lat['bare']}",
                ratio(lat["ctqa torch"].p50_ms, lat["bare"].p50_ms),
            )
        )
    if peer is not None:
        r = ratio(lat["ctqa"].p50_ms, lat["peer"].p50_ms)
        report.add(
            Row(
                "2 peer",
                f"Bot.answer ({shipped}, {backend}) vs {peer.package} FAISS similarity_search k=3",
                f"p50 {lat['ctqa'].p50_ms:.1f} ms",
                f"peer {lat['peer']} ({over['peer']:+.1f} ms vs encode)",
                r,
                "<= 1.0",
                r <= 1.0,
            )
        )
    report.details["warm"] = {
        "latency": {name: vars(v) for name, v in lat.items()},
        "overhead_over_encode_ms": over,
        "backend": backend,
    }


def reader_batching(report: Report, bot, questions: list[Question], rounds: int) -> None:
    """Section 1: how the reader reads the passages retrieval proposes for each question: as
    shipped (side by side, each on one thread), one padded batch on every thread (as before
    commit 93cb315) and one passage at a time on every thread (commit 93cb315)."""
    from ctqa.reader import load_reader

    reading = like(bot, reader="on")
    shipped = reading.reader()
    one_by_one = load_reader(bot.settings.threads, side_by_side=False)
    n = shipped.calibration.candidates
    proposed = {
        q.text: [h.passage.text for h in reading.load().search(q.text, n).hits[:n]]
        for q in questions
    }

    def batched(q: Question):
        return one_by_one.read_padded(q.text, proposed[q.text])

    calls = {
        "shipped": lambda q: shipped.read(q.text, proposed[q.text]),
        "batch": batched,
        "one by one": lambda q: one_by_one.read(q.text, proposed[q.text]),
    }
    same = all(
        [r.span for r in calls["shipped"](q)] == [r.span for r in batched(q)] for q in questions
    )
    samples = interleaved(calls, questions, rounds=rounds)
    lat = {name: Latency.of(values) for name, values in samples.items()}
    threads = bot.settings.threads
    report.add(
        Row(
            "1 warm query",
            f"reader: the {n} passages retrieval proposes read side by side, each on one of "
            f"{threads} threads (as shipped), {len(questions)} statement questions x{rounds}; "
            f"same spans as the batch: {'yes' if same else 'NO'}",
            f"{lat['shipped']} (one at a time on {threads} threads: {lat['one by one']})",
            f"one batch padded to its longest pair, on {threads} threads {lat['batch']}",
            ratio(lat["shipped"].p50_ms, lat["batch"].p50_ms),
        )
    )
    report.details["reader_batching"] = {
        "latency": {name: vars(v) for name, v in lat.items()},
        "same_spans": same,
    }


def chat_turns(report: Report, bot, rounds: int) -> None:
    """Section 1: a chat's turn, asked after the 3 questions before it, with the searches kept
    from the turns before (as shipped, recent.py) and searching every earlier turn again; the
    same questions alone besides."""
    asked = [q.text for q in statement_questions() if not q.history]
    chat = [Question(q, tuple(asked[max(0, i - 3) : i])) for i, q in enumerate(asked)][3:]
    calls = {
        "kept": ask(like(bot)),
        "again": ask(like(bot, recent_searches=0)),
        "alone": lambda q: bot.answer(q.text, k=3),
    }
    lat = {n: Latency.of(v) for n, v in interleaved(calls, chat, rounds=rounds).items()}
    report.add(
        Row(
            "1 warm query",
            f"Bot.answer, a chat's turn after its 3 earlier questions, earlier searches kept "
            f"(as shipped; {len(chat)} statement questions in order x{rounds})",
            f"{lat['kept']} (the same questions alone: {lat['alone']})",
            f"every earlier turn searched again {lat['again']}",
            ratio(lat["kept"].p50_ms, lat["again"].p50_ms),
        )
    )
    report.details["chat"] = {"latency": {name: vars(v) for name, v in lat.items()}}


def like(bot, **changes):
    """A bot like `bot`, on the same encoder and index, with these settings changed."""
    from dataclasses import replace

    from ctqa import Bot

    settings = replace(bot.settings, **changes)
    return Bot(bot.corpus, bot.index_dir, settings=settings, encoder=bot.load().encoder, log=print)


@dataclass(frozen=True)
class Backend:
    """An encoder to compare: its label and object (a ctqa Encoder or an OnnxEncoder)."""

    label: str
    encoder: object


def statement_bot(encoder, index_dir: Path):
    """A bot over seeds/ with its own index, built by `encoder`."""
    from ctqa import Bot

    return Bot(corpus=ROOT / "seeds", index=index_dir, encoder=encoder, log=lambda _: None)


def hit_at_1(bot) -> float:
    """Hit@1 over the answerable statement questions, follow-ups included."""
    from ctqa.evaluate import default_sets, run_set

    results = [
        r for rep in run_set(bot, default_sets()["statement"]) for r in rep.results if r.answerable
    ]
    return sum(r.rank == 1 for r in results) / max(1, len(results))


def onnx_backends(threads: int, folder: Path) -> list[Backend]:
    """ctqa's ONNX fp32 encoder (its cached export) and an int8 quantisation of it."""
    from bench_onnx import quantize_int8

    from ctqa.encoder import load_encoder
    from ctqa.onnx_encoder import load_onnx_encoder, onnx_files

    fp32 = load_encoder(threads, backend="onnx")
    int8 = quantize_int8(onnx_files()[0], folder / "model_int8.onnx")
    return [
        Backend("onnx fp32", fp32),
        Backend("onnx int8", load_onnx_encoder(threads, path=int8)),
    ]


def torch_one_thread(encoder) -> Callable[[Question], object]:
    """The PyTorch encoder run on one thread for this call, then set back."""
    import torch

    def call(q: Question):
        before = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return encoder.encode([q.text])
        finally:
            torch.set_num_threads(before)

    return call


def onnx_section(report: Report, encoder, threads: int, questions, rounds: int) -> None:
    """Section 6: single-question encode, Bot.answer and Hit@1, PyTorch (`encoder`) against
    ONNX Runtime."""
    import torch

    torch_threads = torch.get_num_threads()
    with tempfile.TemporaryDirectory(prefix="ctqa-bench-onnx-") as tmp:
        try:
            backends = [Backend("torch", encoder), *onnx_backends(threads, Path(tmp))]
        except ImportError as exc:
            report.notes.append(f"ONNX skipped: {exc}; install onnxruntime and onnx.")
            return
        bots = {b.label: statement_bot(b.encoder, Path(tmp) / b.label) for b in backends}
        hits = {label: hit_at_1(bot) for label, bot in bots.items()}
        calls = {f"encode {b.label}": (lambda q, e=b.encoder: e.encode([q.text])) for b in backends}
        if torch_threads > 1:
            calls["encode torch 1 thread"] = torch_one_thread(encoder)
        calls |= {f"answer {label}": ask(bot) for label, bot in bots.items()}
        samples = interleaved(calls, questions, rounds=rounds)
    lat = {name: Latency.of(values) for name, values in samples.items()}
    floor = lat["encode torch"]
    for b in backends[1:]:
        speedup = ratio(floor.p50_ms, lat[f"encode {b.label}"].p50_ms)
        close = abs(hits[b.label] - hits["torch"]) <= 0.01
        report.add(
            Row(
                "6 onnx",
                f"encode one question on {b.label}: speed-up over torch ({torch_threads} threads)",
                f"{lat[f'encode {b.label}']}, Hit@1 {hits[b.label]:.3f}",
                f"torch {floor}, Hit@1 {hits['torch']:.3f}",
                speedup,
                ">= 1.5, Hit@1 within 0.01",
                speedup >= 1.5 and close,
            )
        )
    if "encode torch 1 thread" in lat:
        one = lat["encode torch 1 thread"]
        report.add(
            Row(
                "6 onnx",
                "encode one question on torch with 1 thread: speed-up",
                str(one),
                f"torch {floor}",
                ratio(floor.p50_ms, one.p50_ms),
            )
        )
    for b in backends[1:]:
        answer = lat[f"answer {b.label}"]
        r = ratio(answer.p50_ms, floor.p50_ms)
        report.add(
            Row(
                "6 onnx",
                f"Bot.answer on {b.label} vs the PyTorch encode floor",
                str(answer),
                f"bare torch encode {floor}",
                r,
            )
        )
    report.details["onnx"] = {
        "latency": {name: vars(v) for name, v in lat.items()},
        "hit_at_1": hits,
        "torch_threads": torch_threads,
        "onnx_threads": threads,
    }
