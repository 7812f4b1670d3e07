"""Shared fixtures: a deterministic fake encoder for fast exact tests, the real parts for the rest,
and every cache path pointed at a temporary folder."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SEEDS = ROOT / "seeds"
SEED = SEEDS / "india-france-joint-working-group-on-counter-terrorism.txt"
SQUAD_CORPUS = ROOT / "eval" / "squad" / "corpus"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require(condition: bool, reason: str) -> None:
    """Skip outside CI when something the test needs is missing; fail in CI."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"missing in CI: {reason}")
    pytest.skip(reason)


class FakeEncoder:
    """Deterministic bag-of-words vectors: each word hashes to a few signed dimensions.
    Texts sharing words have high cosine; good enough for exact assertions on small corpora."""

    name = "fake-bag-of-words"
    weights_sha256 = "0" * 64
    dim = 64

    def __init__(self):
        self.calls: list[list[str]] = []

    def encode(self, texts, batch_size=32, progress=False):
        self.calls.append(list(texts))
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in text.lower().split():
                word = "".join(c for c in word if c.isalnum())
                if not word:
                    continue
                digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
                for i in range(0, 8, 2):
                    out[row, digest[i] % self.dim] += 1 if digest[i + 1] % 2 else -1
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        norms[norms == 0] = 1
        return out / norms

    @property
    def encoded(self) -> list[str]:
        return [t for call in self.calls for t in call]


@pytest.fixture(scope="session", autouse=True)
def model_cache(tmp_path_factory):
    """One ONNX export of the bundled model for the whole session (made by the first test that
    loads the real encoder, about 10 s), outside the user's cache; set before any fixture of
    any scope loads the encoder."""
    folder = tmp_path_factory.mktemp("models")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CTQA_MODEL_CACHE", str(folder))
        yield folder


@pytest.fixture(autouse=True)
def _isolated(tmp_path_factory, monkeypatch):
    """No test writes to the user's cache (the model cache: `model_cache`); Gradio analytics
    stay off."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture
def fake_encoder():
    return FakeEncoder()


@pytest.fixture
def corpus(tmp_path) -> Path:
    """A small corpus: a copy of the seed and a second statement."""
    folder = tmp_path / "statements"
    folder.mkdir()
    shutil.copy(SEED, folder / SEED.name)
    (folder / "space-cooperation.txt").write_text(
        "date 2022-03-01\nThe agencies agreed to launch a joint satellite in 2025.\n\n"
        "Engineers from Bengaluru and Toulouse will build the payload together.\n",
        encoding="utf-8",
    )
    return folder


@pytest.fixture
def fake_bot(corpus, tmp_path, fake_encoder):
    from ctqa import Bot, Settings

    return Bot(
        corpus=corpus,
        index=tmp_path / "index",
        encoder=fake_encoder,
        settings=Settings(abstain_below=0.2, reader="off"),
        log=lambda msg: None,
    )


@pytest.fixture(scope="session")
def real_bot():
    """The default bot: the bundled model over seeds/ and the committed embeddings/."""
    from ctqa.bot import default_bot

    return default_bot()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serving(app, bot, auth=None):
    """`app` served as `ctqa serve` serves it, on a free loopback port; yields its URL."""
    from ctqa.server import launch_options

    port = free_port()
    app.launch(
        server_name="127.0.0.1",
        server_port=port,
        prevent_thread_lock=True,
        quiet=True,
        **launch_options(bot, auth),
    )
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        app.close()


# Fixed questions whose hits show which generation of an index answered.
INDEX_QUESTIONS = [
    "Who led the Indian delegation?",
    "Where was the meeting held?",
    "Which terrorist groups were named?",
    "When will the satellite launch?",
    "Who builds the payload?",
]


def index_answers(index_dir, encoder=None) -> list:
    """Hits of `INDEX_QUESTIONS` on the current generation: (doc, start, end, score)."""
    from ctqa.config import Settings
    from ctqa.manifest import index_settings
    from ctqa.retrieval import Retriever
    from ctqa.store import load_index

    encoder = encoder or FakeEncoder()
    settings = Settings()
    shaping = index_settings(settings, encoder.name, encoder.weights_sha256, encoder.dim)
    retriever = Retriever(load_index(index_dir, shaping), encoder, settings)
    return [
        [(h.passage.doc_id, h.passage.start, h.passage.end, round(h.score, 5)) for h in hits]
        for hits in (retriever.search(q, 3).hits for q in INDEX_QUESTIONS)
    ]
