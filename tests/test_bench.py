"""Smoke tests of the benchmark code (eval/bench*.py) on tiny inputs: it runs and writes its
table. No figure is asserted: timings belong to `make bench`, not to tests."""

from __future__ import annotations

import doctest
import json
import sys
from pathlib import Path

import numpy as np
import pytest

EVAL = Path(__file__).resolve().parents[1] / "eval" / "bench"
sys.path.insert(0, str(EVAL))

import bench_build  # noqa: E402
import bench_cold  # noqa: E402
import bench_common  # noqa: E402
import bench_query  # noqa: E402
import bench_scale  # noqa: E402
from bench_common import Latency, Report, Row, interleaved, write_report  # noqa: E402


@pytest.mark.parametrize("module", [bench_common, bench_cold, bench_scale])
def test_doctests(module):
    assert doctest.testmod(module).failed == 0


def test_interleaved_times_every_call_on_every_item():
    seen = []
    times = interleaved({"a": seen.append, "b": len}, ["x", "yy", "zzz"], rounds=2, warmup=1)
    assert {k: len(v) for k, v in times.items()} == {"a": 6, "b": 6}
    assert len(seen) == 7  # one warm-up call, then two rounds of three
    assert Latency.of(times["a"]).n == 6


def test_report_is_written_as_markdown_and_json(tmp_path):
    report = Report("quick")
    report.add(Row("1 warm query", "Bot.answer", "p50 1.0 ms", "p50 1.0 ms", 1.0, "<= 1.25", True))
    report.notes.append("a note")
    md, js = write_report(report, tmp_path, "python eval/bench/bench.py --quick")
    assert "| 1 warm query | Bot.answer |" in md.read_text()
    assert json.loads(js.read_text())["rows"][0]["holds"] is True


def test_generated_corpus_is_reproducible(tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    (source / "one.txt").write_text(
        "Warsaw is the capital of Poland. It stands on the Vistula. It has many parks.\n\n"
        "The oil crisis began in 1973. Prices rose fourfold. Queues formed at stations.\n",
        encoding="utf-8",
    )
    a = bench_scale.generate_corpus(tmp_path / "a", 25, seed=7, source=source)
    b = bench_scale.generate_corpus(tmp_path / "b", 25, seed=7, source=source)
    texts = [sorted(p.read_text() for p in g.folder.glob("*.txt")) for g in (a, b)]
    assert texts[0] == texts[1]
    paragraphs = "\n\n".join(texts[0]).split("\n\n")
    assert len([p for p in paragraphs if p.strip()]) == 25
    assert bench_scale.generate_corpus(tmp_path / "a", 25, seed=7, source=source) == a


def test_memo_encoder_embeds_each_text_once(fake_encoder):
    memo = bench_scale.MemoEncoder(fake_encoder)
    texts = ["alpha beta", "gamma", "alpha beta", "gamma", "delta"]
    vectors = memo.encode(texts)
    assert np.allclose(vectors, fake_encoder.encode(texts))
    assert (memo.requested, memo.encoded) == (5, 3)
    assert sorted(memo.skipped_sample) == ["alpha beta", "gamma"]


def test_build_section_runs_on_a_small_corpus(corpus, fake_encoder):
    from ctqa import Settings

    fake_encoder.model = fake_encoder  # stands in for the SentenceTransformer too
    report = Report("test")
    bench_build.build_section(report, fake_encoder, Settings(), rounds=1, corpus=corpus)
    assert [r.section for r in report.rows] == ["4 index build"] * 3
    assert report.details["build"]["passages"] > 0


def test_warm_section_runs_with_a_fake_bot(fake_bot, fake_encoder):
    fake_encoder.model = fake_encoder
    questions = [bench_query.Question("Who led the delegation?"), bench_query.Question("And?")]
    report = Report("test")
    bench_query.warm_and_peer(
        report, fake_bot, questions, rounds=1, with_peer=False, with_reader=False
    )
    assert report.rows[0].section == "1 warm query"
    assert set(report.details["warm"]["latency"]) == {"bare", "ctqa"}


def test_composed_encoder_embeds_sentences_once_and_composes_passages(fake_encoder):
    passage = "Alpha beta. Gamma delta."
    composed = bench_scale.ComposedEncoder(fake_encoder, {passage: ("Alpha beta.", "Gamma delta.")})
    vectors = composed.encode([passage, "Alpha beta.", "Gamma delta.", "Alpha beta."])
    parts = fake_encoder.encode(["Alpha beta.", "Gamma delta."])
    mean = parts.mean(axis=0)
    assert np.allclose(vectors[0], mean / np.linalg.norm(mean))
    assert np.allclose(vectors[1], parts[0]) and np.allclose(vectors[3], parts[0])
    assert (composed.requested, composed.encoded, composed.composed_count) == (4, 2, 1)


def test_chat_section_runs_with_a_fake_bot(fake_bot):
    report = Report("test")
    bench_query.chat_turns(report, fake_bot, rounds=1)
    row = report.rows[0]
    assert row.section == "1 warm query" and "3 earlier questions" in row.measure
    assert set(report.details["chat"]["latency"]) == {"kept", "again", "alone"}
    assert report.details["chat"]["latency"]["kept"]["n"] == 165  # 168 standalone, from the 4th
