"""The shipped reader: verified on load, and reading the statement as a person would."""

import shutil

import numpy as np
import pytest
from conftest import SEED

from ctqa.errors import ModelError
from ctqa.reader import (
    MODEL_FOLDER,
    Calibration,
    Reading,
    best_span,
    encode_pair,
    load_reader,
    rerank,
)

PARAGRAPHS = SEED.read_text(encoding="utf-8").split("date 2021-11-17", 1)[1].strip().split("\n\n")


@pytest.fixture(scope="module")
def reader():
    return load_reader(threads=2)


def test_the_reader_finds_the_answer_span_and_prefers_the_answering_paragraph(reader):
    question = "Who led the Indian delegation?"
    found = reader.read(question, PARAGRAPHS[:3])
    assert np.argmax([r.logit for r in found]) == 2
    start, end = found[2].span
    assert "Mahaveer Singhvi" in PARAGRAPHS[2][start:end]


def test_reading_passages_one_by_one_gives_what_a_padded_batch_gives(reader):
    question = "Where was the meeting held?"
    found = reader.read(question, PARAGRAPHS[:4])
    batched = reader.read_padded(question, PARAGRAPHS[:4])
    pairs = [encode_pair(reader.tokenizer, question, p) for p in PARAGRAPHS[:4]]
    assert len({len(p.ids) for p in pairs}) > 1  # the batch is padded
    assert [r.span for r in found] == [r.span for r in batched]
    assert [r.logit for r in found] == pytest.approx([r.logit for r in batched], abs=1e-3)


def test_reading_side_by_side_gives_what_reading_one_at_a_time_gives(reader):
    question = "Who led the French delegation?"
    alone = load_reader(threads=2, side_by_side=False).read(question, PARAGRAPHS)
    found = reader.read(question, PARAGRAPHS)
    assert [r.span for r in found] == [r.span for r in alone]
    assert [r.logit for r in found] == pytest.approx([r.logit for r in alone], abs=1e-4)


def test_nothing_to_read_gives_nothing(reader):
    assert reader.read("Who?", []) == []


def copy_of_models(tmp_path):
    folder = tmp_path / "models"
    shutil.copytree(MODEL_FOLDER, folder)
    return folder


def test_a_damaged_reader_file_is_refused(tmp_path):
    folder = copy_of_models(tmp_path)
    onnx = folder / "reader.onnx"
    data = bytearray(onnx.read_bytes())
    data[len(data) // 2] ^= 0xFF
    onnx.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="sha256 .* not the .* its record pins"):
        load_reader(2, folder)


@pytest.mark.parametrize("damage", ["missing", "garbled"])
def test_a_missing_or_garbled_record_is_refused(tmp_path, damage):
    folder = copy_of_models(tmp_path)
    record = folder / "reader.json"
    if damage == "missing":
        record.unlink()
    else:
        record.write_text("{not json", encoding="utf-8")
    with pytest.raises(ModelError, match="record .* is unreadable"):
        load_reader(2, folder)


def test_missing_weights_are_refused(tmp_path):
    folder = copy_of_models(tmp_path)
    (folder / "reader.onnx").unlink()
    with pytest.raises(ModelError, match="weights .* are missing"):
        load_reader(2, folder)


def test_the_best_span_never_ends_before_it_starts_nor_runs_too_long():
    start = np.array([0.0, 0.0, 9.0, 0.0, 0.0])
    end = np.array([0.0, 8.0, 0.0, 1.0, 7.0])
    assert best_span(start, end, 1, 4) == (2, 4, 16.0)
    assert best_span(start, end, 1, 4, longest=2) == (2, 3, 10.0)


def test_rerank_orders_by_the_calibrated_probability():
    calibration = Calibration(1.0, 0.5, 2.0, 1.5, -1.0, abstain_below=0.5, candidates=3)
    found = [Reading(0.0, (0, 1), 0.0), Reading(1.0, (0, 1), -4.0), Reading(0.5, (0, 1), 0.0)]
    order = rerank([0.9, 0.1, 0.2], found, calibration, agreement=0.4)
    # z = logit + 0.5 * span margin + 2 * retrieval + 1.5 * 0.4 - 1: 1.4, -1.2, 0.5
    assert [i for i, _ in order] == [0, 2, 1]
    assert order[0][1] == pytest.approx(1 / (1 + np.exp(-1.4)))
