"""The encoder backends: ONNX Runtime (the default) gives PyTorch's vectors and answers, loads
without torch, and anything that keeps it from working falls back to PyTorch with a message."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT, SEED

from ctqa.errors import CtqaError, ModelError
from ctqa.evaluate import load_questions

pytestmark = pytest.mark.slow

PROBE = """
import sys, json
from ctqa.encoder import load_encoder
encoder = load_encoder(backend=sys.argv[1])
vector = encoder.encode(["Who led the French delegation?"])[0]
print(json.dumps({"backend": encoder.backend, "torch": "torch" in sys.modules,
                  "vector": [float(x) for x in vector[:8]]}))
"""


def probe(backend: str, cache, extra: str = "") -> tuple[dict, str]:
    """Load the encoder in a fresh process with `cache` as its model cache."""
    env = {**os.environ, "CTQA_MODEL_CACHE": str(cache)}
    done = subprocess.run(
        [sys.executable, "-c", extra + PROBE, backend],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr


@pytest.fixture(scope="module")
def both():
    from ctqa.encoder import load_encoder

    return load_encoder(backend="onnx"), load_encoder(backend="torch")


def statement_texts() -> list[str]:
    paragraphs = SEED.read_text(encoding="utf-8").split("\n\n")
    questions = load_questions(ROOT / "eval" / "statement" / "answerable.jsonl")
    return paragraphs + [q.question for q in questions]


def test_onnx_gives_the_vectors_of_pytorch(both):
    onnx, torch = both
    assert (onnx.backend, torch.backend) == ("onnx", "torch")
    assert (onnx.name, onnx.weights_sha256, onnx.dim) == (torch.name, torch.weights_sha256, 384)
    texts = statement_texts()
    a, b = onnx.encode(texts), torch.encode(texts)
    assert a.shape == b.shape == (len(texts), 384) and a.dtype == np.float32
    assert np.abs(a - b).max() < 1e-4
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    # batch composition does not change a vector
    assert np.abs(onnx.encode(texts[:1]) - a[:1]).max() < 1e-5
    assert onnx.encode([]).shape == (0, 384)


def test_both_backends_cite_the_same_passages(both, tmp_path):
    from ctqa import Bot, Settings

    onnx, torch = both
    settings = Settings.from_env()
    questions = statement_texts()[-40:]
    index = tmp_path / "index"
    by_onnx = Bot(corpus=ROOT / "seeds", index=index, encoder=onnx, settings=settings)
    by_torch = Bot(corpus=ROOT / "seeds", index=index, encoder=torch, settings=settings)
    for question in questions:
        a, b = by_onnx.answer(question), by_torch.answer(question)
        assert [c.paragraph for c in a.citations] == [c.paragraph for c in b.citations], question
        assert a.abstained == b.abstained
        assert a.confidence == pytest.approx(b.confidence, abs=1e-4)


def test_the_export_is_made_once_then_loaded_without_torch(tmp_path):
    first, told = probe("auto", tmp_path)
    assert first["backend"] == "onnx" and "Exporting it from the bundled weights" in told
    second, told_again = probe("auto", tmp_path)
    assert second["backend"] == "onnx" and second["torch"] is False
    assert "Exporting" not in told_again
    assert np.allclose(first["vector"], second["vector"], atol=1e-6)
    record = json.loads(next(tmp_path.glob("*/model.json")).read_text())
    assert record["max_difference_from_torch"] < 1e-4


@pytest.mark.parametrize("damage", ["flip", "truncate", "record"])
def test_a_damaged_export_is_made_again(damage, tmp_path, model_cache, both):
    cache = tmp_path / "models"
    shutil.copytree(model_cache, cache)
    model = next(cache.glob("*/model.onnx"))
    if damage == "flip":
        data = bytearray(model.read_bytes())
        data[len(data) // 2] ^= 0xFF  # one weight changes: the file still loads, wrongly
        model.write_bytes(bytes(data))
    elif damage == "truncate":
        model.write_bytes(model.read_bytes()[:1000])
    else:
        model.with_name("model.json").write_text("{not json", encoding="utf-8")
    result, told = probe("onnx", cache)
    assert result["backend"] == "onnx" and "Exporting it" in told
    expected = both[1].encode(["Who led the French delegation?"])[0][:8]
    assert np.allclose(result["vector"], expected, atol=1e-4)


def test_without_onnxruntime_auto_falls_back_to_pytorch(tmp_path):
    hide = "import sys; sys.modules['onnxruntime'] = None\n"
    result, told = probe("auto", tmp_path, extra=hide)
    assert result["backend"] == "torch" and "onnxruntime is not installed" in told
    env = {**os.environ, "CTQA_MODEL_CACHE": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", hide + PROBE, "onnx"], capture_output=True, text=True, env=env
    )
    assert done.returncode != 0 and "onnxruntime is not installed" in done.stderr


def test_an_unwritable_cache_falls_back_to_pytorch(tmp_path):
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder", encoding="utf-8")
    result, told = probe("auto", blocked / "models")
    assert result["backend"] == "torch"
    assert "the ONNX export failed" in told and "encoding with PyTorch" in told


def test_an_export_that_differs_from_pytorch_is_not_kept(tmp_path, monkeypatch, both):
    from ctqa import onnx_encoder

    monkeypatch.setattr(onnx_encoder, "EXPORT_TOLERANCE", 0.0)
    with pytest.raises(ModelError, match="differs from PyTorch"):
        onnx_encoder.export_onnx(both[1], threads=1, cache_dir=tmp_path)
    assert not list(tmp_path.rglob("model.onnx")) and not list(tmp_path.rglob("model.json"))


def test_an_unknown_backend_is_refused_with_the_choices():
    from ctqa.encoder import load_encoder

    with pytest.raises(CtqaError, match="auto, onnx, torch"):
        load_encoder(backend="tensorflow")


def test_the_cli_names_a_bad_backend_setting(tmp_path):
    env = {**os.environ, "CTQA_ENCODER_BACKEND": "gpu"}
    done = subprocess.run(
        [sys.executable, "-m", "ctqa", "ask", "Who led the French delegation?"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
    )
    assert done.returncode != 0
    assert "unknown encoder backend 'gpu'" in done.stderr and "Traceback" not in done.stderr
