import pytest
from conftest import SEEDS, SQUAD_CORPUS

from ctqa.chunking import (
    Span,
    chunk_document,
    chunk_documents,
    paragraph_spans,
    sentence_spans,
)
from ctqa.corpus import load_corpus, parse_document
from ctqa.minilm import token_counter

COUNT = token_counter()


@pytest.mark.parametrize("folder", [SEEDS, SQUAD_CORPUS], ids=["seed", "squad"])
def test_every_offset_points_at_its_text(folder):
    documents = load_corpus(folder)
    assert any(any(ord(c) > 127 for c in d.text) for d in documents)  # non-ASCII is covered
    for doc in documents:
        raw = (folder / f"{doc.id}.txt").read_bytes().decode("utf-8")
        passages = chunk_document(doc, COUNT, 256)
        assert passages
        for p in passages:
            assert raw[p.start : p.end] == p.text
            assert COUNT(p.text) <= 256
            assert p.sentences[0].start == p.start and p.sentences[-1].end == p.end
            for s in p.sentences:
                assert p.start <= s.start < s.end <= p.end
                assert raw[s.start : s.end].strip() == raw[s.start : s.end]
            assert "\n\n" not in p.text  # never crosses a paragraph


def test_seed_has_eight_whole_paragraphs():
    [doc] = load_corpus(SEEDS)
    passages = chunk_document(doc, COUNT, 256)
    assert [p.paragraph for p in passages] == list(range(1, 9))
    assert all(p.part == 1 for p in passages)
    assert passages[2].text.startswith("The two countries held the 15th Meeting")
    assert [len(p.sentences) for p in passages][2] == 2
    assert "al-Qa’ida" in passages[4].text


def test_long_paragraphs_split_at_sentence_boundaries(tmp_path):
    sentence = "The delegation discussed cooperation against terrorism in detail today. "
    text = "Short opening.\n\n" + sentence * 40 + "\n\nClosing words."
    doc = parse_document(tmp_path / "long.txt", text.encode())
    passages = chunk_document(doc, COUNT, 64)
    middle = [p for p in passages if p.paragraph == 2]
    assert len(middle) > 1
    assert [p.part for p in middle] == list(range(1, len(middle) + 1))
    for p in middle:
        assert COUNT(p.text) <= 64
        assert p.text.endswith("today.")
    assert "".join(p.text for p in middle).replace(" ", "") == (sentence * 40).replace(" ", "")
    assert [p.paragraph for p in passages][-1] == 3


def test_an_overlong_sentence_is_split_at_words(tmp_path):
    text = " ".join(["word"] * 600) + "."
    doc = parse_document(tmp_path / "w.txt", text.encode())
    passages = chunk_document(doc, COUNT, 100)
    assert len(passages) >= 6
    assert all(COUNT(p.text) <= 100 for p in passages)
    assert all(doc.text[p.start : p.end] == p.text for p in passages)


def test_paragraphs_and_sentences():
    text = "A first. And more.\n \nB second\nline.\n\n\n"
    assert paragraph_spans(text) == [Span(0, 18), Span(21, 35)]
    assert sentence_spans(text, Span(0, 18)) == [Span(0, 8), Span(9, 18)]


def test_chunking_in_worker_processes_gives_the_same_passages(monkeypatch):
    import ctqa.chunking

    pooled = []
    in_pool = ctqa.chunking.chunk_in_pool  # raises when its workers cannot run

    def counted(*args):
        pooled.append(in_pool(*args))
        return pooled[-1]

    monkeypatch.setattr(ctqa.chunking, "chunk_in_pool", counted)
    documents = load_corpus(SQUAD_CORPUS)
    alone = [chunk_document(doc, COUNT, 256) for doc in documents]
    assert chunk_documents(documents, COUNT, 256, workers=2, parallel_from=0) == alone
    assert len(pooled) == 1  # the workers chunked it
    assert chunk_documents(documents, COUNT, 256, workers=2) == alone  # too little text: here
    assert len(pooled) == 1


def test_chunking_falls_back_to_one_process(monkeypatch):
    import ctqa.chunking

    def no_pool(*args):
        raise OSError("Resource temporarily unavailable")

    monkeypatch.setattr(ctqa.chunking, "chunk_in_pool", no_pool)
    documents = load_corpus(SQUAD_CORPUS)[:3]
    chunked = chunk_documents(documents, COUNT, 256, workers=2, parallel_from=0)
    assert chunked == [chunk_document(doc, COUNT, 256) for doc in documents]
